use rmicro::prelude::*;

// The default interval is 30s, so a TTL of 20s expires between two heartbeats.
#[service(name = "student_service", ttl = 20)]
struct StudentService;

fn main() {}
