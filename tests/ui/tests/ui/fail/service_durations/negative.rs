use rmicro::prelude::*;

#[service(name = "student_service", ttl = -10)]
struct StudentService;

fn main() {}
