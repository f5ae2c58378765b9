//! The macros' output under the lints strict users turn on: `cargo clippy --all-targets`
//! checks this file with every warning, clippy's and pedantic ones included, denied. It also
//! runs `#[rmicro::main]` on a function that is not `main`.
#![deny(warnings, clippy::all, clippy::pedantic)]

use rmicro::prelude::*;

/// A request.
#[derive(Debug, Serialize, Deserialize)]
pub struct StudentRequest {
    /// Who.
    pub name: String,
}

/// A reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct Student {
    /// Who.
    pub name: String,
    /// How well.
    pub grade: i32,
}

/// A service with every kind of route.
#[service(
    name = "student_service",
    version = "v1.0.0",
    ttl = "1m",
    interval = 20,
    metadata(region = "eu")
)]
#[derive(Debug, Default)]
pub struct StudentService {
    grade: i32,
}

#[handlers]
impl StudentService {
    /// An endpoint.
    ///
    /// # Errors
    ///
    /// Never.
    pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student {
            name: req.name,
            grade: self.grade,
        })
    }

    /// A subscriber.
    #[subscribe("students.graded", queue = "graders")]
    async fn on_graded(&self, event: Event<Student>) -> rmicro::Result<()> {
        if event.grade < self.grade {
            return Err(rmicro::Error::bad_request(
                "student_service",
                "grades only go up",
            ));
        }
        Ok(())
    }
}

/// A free subscriber.
///
/// # Errors
///
/// Never.
#[subscribe("go.micro.srv.message")]
pub async fn on_message(student: Student) -> Result<(), rmicro::Error> {
    println!("{} got {}", student.name, student.grade);
    Ok(())
}

#[rmicro::main]
async fn answer() -> u32 {
    tokio_yield().await;
    42
}

async fn tokio_yield() {
    rmicro::__private::tokio::task::yield_now().await;
}

#[test]
fn main_runs_its_body_on_a_runtime() {
    assert_eq!(answer(), 42);
    drop(StudentService::default().run());
}
