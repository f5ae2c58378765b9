use rmicro::prelude::*;

#[service(name = "student_service", ttl = 10, interval = 10)]
struct StudentService;

#[service(name = "lecture_service", ttl = "1m", interval = "1m30s")]
struct LectureService;

fn main() {}
