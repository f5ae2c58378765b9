// The seed's student service: `#[service]` with registry, TTL and interval, a `#[handlers]`
// block, a free subscriber and `#[rmicro::main]`.
#![deny(warnings)]

use std::time::Duration;

use rmicro::__private::Handlers;
use rmicro::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct StudentRequest {
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Student {
    name: String,
    classes: String,
    grade: i32,
    phone: String,
}

#[service(
    name = "student_service",
    version = "v1.0.0",
    registry = "mdns",
    ttl = 10,
    interval = 5
)]
#[derive(Debug, Default)]
struct StudentService {
    classes: String,
}

#[handlers]
impl StudentService {
    /// go-micro's `StudentService.GetStudent`.
    pub async fn get_student(&self, req: StudentRequest) -> Result<Student, rmicro::Error> {
        Ok(Student {
            name: req.name,
            classes: self.classes.clone(),
            grade: 80,
            phone: "12345678901".to_owned(),
        })
    }
}

#[subscribe("go.micro.srv.message")]
async fn on_message(event: Event<Student>) -> rmicro::Result<()> {
    println!("received {} from {}", event.name, event.topic());
    Ok(())
}

#[rmicro::main]
async fn main() -> rmicro::Result<()> {
    let code = StudentService::service_builder();
    let code = code.code();
    assert_eq!(code.registry.as_deref(), Some("mdns"));
    assert_eq!(code.server_version.as_deref(), Some("v1.0.0"));
    assert_eq!(code.register_ttl, Some(Duration::from_secs(10)));
    assert_eq!(code.register_interval, Some(Duration::from_secs(5)));

    let routes = StudentService::routes();
    let endpoints: Vec<&str> = routes.endpoints().map(|e| e.name.as_str()).collect();
    assert_eq!(endpoints, ["StudentService.GetStudent"]);

    let subscriber = rmicro::__private::free_subscribers()
        .find(|s| s.name.ends_with("::on_message"))
        .expect("on_message is registered");
    assert_eq!(subscriber.topic, "go.micro.srv.message");

    // `run` serves until SIGINT/SIGTERM; building its future proves it type-checks.
    let serve = StudentService::default().run();
    drop(serve);
    Ok(())
}
