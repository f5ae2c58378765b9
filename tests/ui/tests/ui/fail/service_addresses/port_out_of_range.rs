use rmicro::prelude::*;

#[service(
    name = "student_service",
    address = ":99999",
    advertise = "10.0.0.1:http"
)]
struct StudentService;

fn main() {}
