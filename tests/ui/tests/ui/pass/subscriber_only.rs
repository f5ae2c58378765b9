// A service with no `#[handlers]` block: its free subscribers are all it does.
#![deny(warnings)]

use rmicro::prelude::*;

#[derive(Debug, Deserialize)]
struct Student {
    name: String,
}

#[service(name = "go.micro.srv", broker = "http")]
struct MessageService;

#[subscribe("go.micro.srv.message")]
async fn on_message(student: Student) -> rmicro::Result<()> {
    println!("received {}", student.name);
    Ok(())
}

fn assert_send<T: Send>(_: &T) {}

#[rmicro::main]
async fn main() {
    let serve = MessageService.run();
    assert_send(&serve);
    drop(serve);
}
