#[rmicro::main]
struct Main;

fn main() {}
