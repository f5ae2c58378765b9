use rmicro::prelude::*;

#[service(name = student_service)]
struct StudentService;

const NAME: &str = "student_service";

#[service(name = NAME)]
struct OtherService;

fn main() {}
