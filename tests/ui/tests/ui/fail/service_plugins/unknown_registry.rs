use rmicro::prelude::*;

#[service(name = "student_service", registry = "consol")]
struct StudentService;

#[service(name = "lecture_service", registry = "zookeeper")]
struct LectureService;

fn main() {}
