//! The seed's client.go: publishes the seed's student, with header `name`, to
//! `go.micro.srv.message`.
//!
//! As JSON, as the seed's scenario does, unless told otherwise: the program sets
//! `client_content_type` to `application/json` in code, and the flag or the environment
//! overrides it. `--client_content_type=application/protobuf` publishes protobuf, which
//! `message_subscriber` decodes on every broker.
//!
//! ```text
//! cargo run --bin message_publisher
//! cargo run --bin message_publisher -- --client_content_type=application/protobuf
//! ```

use std::process::ExitCode;

use rmicro::Client;
use rmicro::codec;
use rmicro::config::{Layer, Options};
use rmicro::registry::Metadata;
use rmicro_examples::{Student, TOPIC};

#[rmicro::main]
async fn main() -> ExitCode {
    let mut code = Layer::default();
    code.client_content_type = Some(codec::JSON.to_owned());
    let options = Options::from_process(&code);
    let client = match Client::from_options(&options) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("error: {}", err.detail);
            return ExitCode::from(2);
        }
    };
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
