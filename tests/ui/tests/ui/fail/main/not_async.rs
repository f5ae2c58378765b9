#[rmicro::main]
fn main() {}
