use rmicro::prelude::*;

struct StudentService<Store>(Store);

#[handlers]
impl<Store> StudentService<Store> {}

fn main() {}
