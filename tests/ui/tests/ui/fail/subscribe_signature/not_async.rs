use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("go.micro.srv.message")]
fn on_message(event: Event<Student>) -> rmicro::Result<()> {
    println!("{}", event.name);
    Ok(())
}

fn main() {}
