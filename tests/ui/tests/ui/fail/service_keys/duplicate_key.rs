use rmicro::prelude::*;

#[service(name = "student_service", version = "v1", version = "v2")]
struct StudentService;

fn main() {}
