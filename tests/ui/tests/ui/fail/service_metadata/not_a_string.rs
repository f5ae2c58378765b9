use rmicro::prelude::*;

#[service(name = "student_service", metadata(replicas = 3, primary = true, "" = "empty key"))]
struct StudentService;

fn main() {}
