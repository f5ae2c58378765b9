use rmicro::prelude::*;

#[service(name = "student_service", ttl = "10 seconds", interval = "1m30")]
struct StudentService;

#[service(name = "lecture_service", ttl = "", interval = 1.5)]
struct LectureService;

fn main() {}
