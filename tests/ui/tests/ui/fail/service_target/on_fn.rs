use rmicro::prelude::*;

#[service(name = "student_service")]
async fn student_service() {}

fn main() {}
