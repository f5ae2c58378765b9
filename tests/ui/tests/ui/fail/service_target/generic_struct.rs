use rmicro::prelude::*;

#[service(name = "student_service")]
struct StudentService<Store> {
    store: Store,
}

fn main() {}
