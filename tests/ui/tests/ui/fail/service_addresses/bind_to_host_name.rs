use rmicro::prelude::*;

#[service(name = "student_service", address = "students.example.com:8080")]
struct StudentService;

fn main() {}
