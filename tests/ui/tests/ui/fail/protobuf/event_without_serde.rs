// A prost message without serde derives as a free subscriber's payload.
use rmicro::prelude::*;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Student {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[subscribe("go.micro.srv.message")]
async fn on_message(event: Event<Student>) -> Result<()> {
    println!("{}", event.name);
    Ok(())
}

fn main() {}
