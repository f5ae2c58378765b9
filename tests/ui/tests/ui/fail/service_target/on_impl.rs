use rmicro::prelude::*;

struct StudentService;

#[service(name = "student_service")]
impl StudentService {}

fn main() {}
