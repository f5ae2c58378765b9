//! rmicro in one command: register -> discover -> call -> publish -> receive -> graceful
//! deregistration, on the embedded defaults (mdns on loopback + http broker), printing each
//! step. Exits 0 when every step worked.
//!
//! ```text
//! cargo run --bin quickstart
//! ```

use std::time::Duration;

use rmicro::prelude::*;
use rmicro::registry::Registry as _;
use rmicro_examples::{Student, StudentRequest, TOPIC};
use tokio::sync::mpsc;

#[service(name = "student_service", version = "v1.0.0", ttl = 10, interval = 5)]
struct StudentService {
    received: mpsc::Sender<Event<Student>>,
}

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

    /// Hands every published student to the main task.
    #[subscribe("go.micro.srv.message")]
    pub async fn on_message(&self, event: Event<Student>) -> Result<()> {
        self.received
            .send(event)
            .await
            .map_err(|_| Error::internal_server_error("student_service", "main task is gone"))
    }
}

fn step(n: u32, text: impl std::fmt::Display) {
    println!("[{n}/6] {text}");
}

fn fail(text: impl std::fmt::Display) -> Error {
    Error::internal_server_error("quickstart", text)
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    let (tx, mut rx) = mpsc::channel(8);
    let service = StudentService { received: tx }
        .into_builder()
        .configure_from_process()
        .start()
        .await?;
    service.registered().await?;
    let node = service.node().clone();
    step(
        1,
        format_args!(
            "registered {} {} as node {} at {} (registry {}, broker {})",
            service.record().name,
            service.record().version,
            node.id,
            node.address,
            service.registry().name(),
            service.broker().name(),
        ),
    );

    let client = service.client().clone();
    let found = service.registry().get_service("student_service").await?;
    let nodes: Vec<_> = found.iter().flat_map(|s| &s.nodes).map(|n| &n.id).collect();
    if !nodes.contains(&&node.id) {
        return Err(fail(format!("discovery did not find node {}", node.id)));
    }
    step(
        2,
        format_args!("discovered student_service nodes: {nodes:?}"),
    );

    let req = StudentRequest {
        name: "davie".to_owned(),
    };
    let student: Student = client
        .call("student_service", "StudentService.GetStudent", &req)
        .await?;
    step(
        3,
        format_args!(
            "called StudentService.GetStudent: {}",
            serde_json::to_string(&student).unwrap_or_default()
        ),
    );

    let mut header = rmicro::registry::Metadata::new();
    header.insert("name".to_owned(), student.name.clone());
    client
        .publisher(TOPIC)?
        .publish_with_header(&student, header)
        .await?;
    step(4, format_args!("published {} to {TOPIC}", student.name));

    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .map_err(|_| fail("no message arrived within 10s"))?
        .ok_or_else(|| fail("subscriber channel closed"))?;
    step(
        5,
        format_args!(
            "received on {}: {} (name header: {})",
            event.topic(),
            serde_json::to_string(event.payload()).unwrap_or_default(),
            event.header().get("name").map_or("", String::as_str)
        ),
    );

    let registry = service.registry().clone();
    service.stop().await?;
    let left = registry.get_service("student_service").await?;
    if left.iter().flat_map(|s| &s.nodes).any(|n| n.id == node.id) {
        return Err(fail(format!(
            "node {} is still registered after stop",
            node.id
        )));
    }
    step(6, format_args!("stopped: node {} deregistered", node.id));
    Ok(())
}
