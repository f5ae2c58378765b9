use rmicro::prelude::*;

#[service(
    name = "student_service",
    registry_address = "",
    broker_address = "127.0.0.1:1, 127.0.0.1:2"
)]
struct StudentService;

#[service(name = "lecture_service", broker_address = "127.0.0.1:1,,127.0.0.1:2")]
struct LectureService;

fn main() {}
