#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    Ok(())
}
