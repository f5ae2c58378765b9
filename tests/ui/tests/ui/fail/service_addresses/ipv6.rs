use rmicro::prelude::*;

#[service(
    name = "student_service",
    address = "::1:8080",
    advertise = "[fe80::zz]:8080"
)]
struct StudentService;

fn main() {}
