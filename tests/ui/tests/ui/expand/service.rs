use rmicro::service;

#[service(
    name = "student_service",
    version = "v1.0.0",
    registry = "mdns",
    ttl = 10,
    interval = 5
)]
pub struct StudentService {
    pub classes: Vec<String>,
}

fn main() {}
