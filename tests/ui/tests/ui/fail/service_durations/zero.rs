use rmicro::prelude::*;

#[service(name = "student_service", ttl = 0, interval = "0s")]
struct StudentService;

fn main() {}
