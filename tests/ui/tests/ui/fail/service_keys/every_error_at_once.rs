use rmicro::prelude::*;

#[service(
    name = "student service",
    regsitry = "consul",
    broker = "kestrel",
    address = "localhost",
    ttl = 10,
    interval = 10,
    metadata(region = "eu", region = "us")
)]
struct StudentService;

fn main() {}
