use rmicro::prelude::*;

#[subscribe("go.micro.srv.message")]
async fn on_message<T>(payload: T) -> rmicro::Result<()> {
    let _ = payload;
    Ok(())
}

fn main() {}
