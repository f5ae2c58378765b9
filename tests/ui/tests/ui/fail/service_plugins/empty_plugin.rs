use rmicro::prelude::*;

#[service(name = "student_service", broker = "")]
struct StudentService;

fn main() {}
