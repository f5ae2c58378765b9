//! The seed's client.go: publishes the seed's student, with header `name`, to
//! `go.micro.srv.message`.
//!
//! ```text
//! cargo run --bin message_publisher
//! ```

use std::process::ExitCode;

use rmicro::Client;
use rmicro::registry::Metadata;
use rmicro_examples::{Student, TOPIC};

#[rmicro::main]
async fn main() -> ExitCode {
    let client = Client::from_args();
    let student = Student::davie();
    let mut header = Metadata::new();
    header.insert("name".to_owned(), student.name.clone());
    let published = match client.publisher(TOPIC) {
        Ok(publisher) => publisher.publish_with_header(&student, header).await,
        Err(err) => Err(err),
    };
    match published {
        Ok(()) => {
            println!("published to {TOPIC}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("publish failed: {err}");
            ExitCode::FAILURE
        }
    }
}
