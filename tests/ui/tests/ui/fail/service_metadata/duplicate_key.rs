use rmicro::prelude::*;

#[service(
    name = "student_service",
    metadata(region = "eu", zone = "a", region = "us")
)]
struct StudentService;

fn main() {}
