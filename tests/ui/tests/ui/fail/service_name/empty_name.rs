use rmicro::prelude::*;

#[service(name = "")]
struct StudentService;

fn main() {}
