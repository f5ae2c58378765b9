//! The seed's client: finds `student_service` through the registry and calls
//! `StudentService.GetStudent` for "davie". On error it prints go-micro's error JSON and
//! exits with status 1.
//!
//! ```text
//! cargo run --bin student_client -- --registry=mdns
//! ```

use std::process::ExitCode;

use rmicro::Client;
use rmicro_examples::{Student, StudentRequest};

#[rmicro::main]
async fn main() -> ExitCode {
    let client = Client::from_args();
    let req = StudentRequest {
        name: "davie".to_owned(),
    };
    match client
        .call::<_, Student>("student_service", "StudentService.GetStudent", &req)
        .await
    {
        Ok(student) => {
            println!("{}", serde_json::to_string(&student).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("{err}");
            ExitCode::FAILURE
        }
    }
}
