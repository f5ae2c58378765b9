use std::cell::Cell;

use rmicro::prelude::*;

// Calls are served concurrently, so a service must be `Send + Sync`.
#[service(name = "student_service")]
struct StudentService {
    calls: Cell<u64>,
}

fn main() {}
