use rmicro::prelude::*;

#[service(name = "student_service")]
enum StudentService {
    Primary,
    Replica,
}

fn main() {}
