use rmicro::prelude::*;

#[service(version = "v1.0.0")]
struct StudentService;

fn main() {}
