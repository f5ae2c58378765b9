// The attribute's error does not hide the body's own mistakes, nor invent new ones.
#[rmicro::main]
fn main() {
    let grade: i32 = "eighty";
}
