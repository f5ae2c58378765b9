use rmicro::prelude::*;

#[service(name = "student_service", version, registry("mdns"))]
struct StudentService;

fn main() {}
