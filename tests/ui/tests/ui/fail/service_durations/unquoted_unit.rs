use rmicro::prelude::*;

#[service(name = "student_service", ttl = 90s, interval = 30days)]
struct StudentService;

fn main() {}
