use rmicro::prelude::*;

#[service(name = "student service")]
struct StudentService;

#[service(name = "students/v2")]
struct StudentServiceV2;

fn main() {}
