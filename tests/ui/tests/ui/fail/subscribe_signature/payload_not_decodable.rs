use rmicro::prelude::*;

struct Student {
    name: String,
}

#[subscribe("go.micro.srv.message")]
async fn on_message(event: Event<Student>) -> rmicro::Result<()> {
    println!("{}", event.name);
    Ok(())
}

fn main() {}
