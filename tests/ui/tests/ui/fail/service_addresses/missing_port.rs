use rmicro::prelude::*;

#[service(name = "student_service", address = "127.0.0.1")]
struct StudentService;

#[service(name = "lecture_service", address = "127.0.0.1:")]
struct LectureService;

fn main() {}
