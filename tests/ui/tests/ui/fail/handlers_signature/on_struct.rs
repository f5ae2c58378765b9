use rmicro::prelude::*;

#[handlers]
struct StudentService;

fn main() {}
