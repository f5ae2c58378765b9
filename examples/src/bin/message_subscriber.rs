//! The seed's server.go: subscribes to `go.micro.srv.message` and prints each student with
//! its `name` header, the content type it travelled as (JSON or protobuf: the payload is
//! decoded by the message's `Content-Type`) and its id (go-micro's `Micro-ID`), when it has
//! one (go-micro's plain `broker.Publish` sends none).
//!
//! ```text
//! cargo run --bin message_subscriber
//! ```

use rmicro::prelude::*;
use rmicro_examples::Student;

#[service(name = "go.micro.srv", version = "latest")]
struct MessageSubscriber;

/// Free functions with `#[subscribe]` are wired into the binary's service.
#[subscribe("go.micro.srv.message")]
async fn on_message(event: Event<Student>) -> Result<()> {
    let name = event.header().get("name").map_or("", String::as_str);
    let content_type = event
        .header()
        .get("Content-Type")
        .map_or("none", String::as_str);
    let id = event
        .id()
        .map_or_else(String::new, |id| format!(", id {id}"));
    println!(
        "received: {} (name header: {name}) as {content_type}{id}",
        serde_json::to_string(event.payload()).unwrap_or_default()
    );
    Ok(())
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    MessageSubscriber.run().await
}
