use rmicro::prelude::*;

struct StudentService;

#[handlers]
impl Default for StudentService {
    fn default() -> Self {
        StudentService
    }
}

fn main() {}
