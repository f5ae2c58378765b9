use rmicro::prelude::*;

#[subscribe("go.micro.srv.message")]
struct Student {
    name: String,
}

fn main() {}
