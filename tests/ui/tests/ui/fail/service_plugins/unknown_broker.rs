use rmicro::prelude::*;

#[service(name = "student_service", broker = "nast")]
struct StudentService;

fn main() {}
