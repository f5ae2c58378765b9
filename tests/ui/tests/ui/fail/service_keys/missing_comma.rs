use rmicro::prelude::*;

#[service(name = "student_service" version = "v1")]
struct StudentService;

fn main() {}
