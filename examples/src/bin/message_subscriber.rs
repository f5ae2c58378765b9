//! The seed's server.go: subscribes to `go.micro.srv.message` and prints each student with
//! its `name` header and the content type it travelled as (JSON or protobuf: the payload is
//! decoded by the message's `Content-Type`).
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
    println!(
        "received: {} (name header: {name}) as {content_type}",
        serde_json::to_string(event.payload()).unwrap_or_default()
    );
    Ok(())
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    MessageSubscriber.run().await
}
