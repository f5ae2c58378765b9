use rmicro::subscribe;

#[subscribe("go.micro.srv.message")]
async fn on_message(name: String) -> rmicro::Result<()> {
    let _ = name;
    Ok(())
}

fn main() {}
