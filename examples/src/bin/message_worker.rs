//! A worker in queue group `students`: however many workers run, each message published to
//! `go.micro.srv.message` is handled by exactly one of them (competing consumers), while
//! every `message_subscriber` still gets its own copy.
//!
//! ```text
//! cargo run --bin message_worker
//! ```

use rmicro::prelude::*;
use rmicro_examples::Student;

#[service(name = "go.micro.srv.worker")]
struct MessageWorker;

#[subscribe("go.micro.srv.message", queue = "students")]
async fn work(student: Student) -> Result<()> {
    println!(
        "worked: {}",
        serde_json::to_string(&student).unwrap_or_default()
    );
    Ok(())
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    MessageWorker.run().await
}
