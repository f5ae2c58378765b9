//! The seed's student service: endpoint `StudentService.GetStudent`, and a subscriber of
//! `go.micro.srv.message`; beside the seed, three streaming endpoints as go-micro streams them:
//! `StudentService.ListStudents` (one request, a reply per student),
//! `StudentService.GetStudents` (a reply per request, both ways at once) and
//! `StudentService.TopStudent` (requests, then one reply once the caller ends its side).
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

    /// Streams every student of the class whose name starts with the request's name.
    pub async fn list_students(
        &self,
        req: StudentRequest,
        replies: Replies<Student>,
    ) -> Result<()> {
        for student in Student::roster() {
            if student.name.starts_with(&req.name) {
                replies.send(student).await?;
            }
        }
        Ok(())
    }

    /// Answers each request on the stream with that student; a name not in the class ends
    /// the stream with go-micro's 404.
    pub async fn get_students(
        &self,
        mut requests: Requests<StudentRequest>,
        replies: Replies<Student>,
    ) -> Result<()> {
        while let Some(req) = requests.next().await {
            replies.send(in_class(&req?.name)?).await?;
        }
        Ok(())
    }

    /// The student with the best grade among those named on the stream (sent once the caller
    /// ends its side); a name not in the class is go-micro's 404.
    pub async fn top_student(&self, mut requests: Requests<StudentRequest>) -> Result<Student> {
        let mut top: Option<Student> = None;
        while let Some(req) = requests.next().await {
            let student = in_class(&req?.name)?;
            if top.as_ref().is_none_or(|t| student.grade > t.grade) {
                top = Some(student);
            }
        }
        top.ok_or_else(|| Error::bad_request("student_service", "no student named on the stream"))
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

/// The student of the class named `name`, or go-micro's 404.
fn in_class(name: &str) -> Result<Student> {
    Student::roster()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Error::not_found("student_service", format!("no student named `{name}`")))
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    StudentService.run().await
}
