use rmicro::prelude::*;

#[service(name = "student_service", registry = "consol")]
struct StudentService;

#[service(name = "lecture_service", registry = "eureka")]
struct LectureService;

fn main() {}
