use rmicro::prelude::*;

// The default TTL is 90s.
#[service(name = "student_service", interval = "2m")]
struct StudentService;

fn main() {}
