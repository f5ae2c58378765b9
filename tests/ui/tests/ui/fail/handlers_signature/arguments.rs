use rmicro::prelude::*;

struct StudentService;

#[handlers(name = "Students")]
impl StudentService {}

fn main() {}
