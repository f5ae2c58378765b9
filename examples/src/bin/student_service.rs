//! The seed's student service: endpoint `StudentService.GetStudent`, and a subscriber of
//! `go.micro.srv.message`.
//!
//! ```text
//! cargo run --bin student_service -- --register_ttl=10 --register_interval=5
//! ```

use rmicro::prelude::*;
use rmicro_examples::{Student, StudentRequest};

#[service(name = "student_service", version = "v1.0.0")]
struct StudentService;

#[handlers]
impl StudentService {
    /// Looks a student up by name.
    pub async fn get_student(&self, req: StudentRequest) -> Result<Student> {
        let davie = Student::davie();
        if req.name == davie.name {
            Ok(davie)
        } else {
            Err(Error::not_found(
                "student_service",
                format!("no student named `{}`", req.name),
            ))
        }
    }

    /// Prints every student published on the seed's topic.
    #[subscribe("go.micro.srv.message")]
    pub async fn on_message(&self, event: Event<Student>) -> Result<()> {
        println!(
            "received on {}: {}",
            event.topic(),
            serde_json::to_string(event.payload()).unwrap_or_default()
        );
        Ok(())
    }
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    StudentService.run().await
}
