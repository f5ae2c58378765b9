use rmicro::prelude::*;

#[service(name = "student_service", metadata = "region=eu")]
struct StudentService;

fn main() {}
