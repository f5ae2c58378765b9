//! What the CLI's tests share: the seed's student service, run in the test's process.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmicro::broker::memory::MemoryBroker;
use rmicro::layer::{HandlerService, Layers};
use rmicro::registry::Metadata;
use rmicro::rpc::describe::describe;
use rmicro::{Error, Routes, Service, ServiceBuilder};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;

pub const RMICRO: &str = env!("CARGO_BIN_EXE_rmicro");
pub const UP: Duration = Duration::from_secs(30);
pub const DAVIE: &str =
    r#"{"classes":"软件工程专业","grade":80,"name":"davie","phone":"12345678901"}"#;

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

struct Students;

fn routes() -> Routes<Students> {
    Routes::new()
        .endpoint(
            "StudentService.GetStudent",
            describe::<StudentRequest>(),
            describe::<Student>(),
            |_: Arc<Students>, req: StudentRequest| async move {
                if req.name == "davie" {
                    Ok(Student {
                        name: "davie".to_owned(),
                        classes: "软件工程专业".to_owned(),
                        grade: 80,
                        phone: "12345678901".to_owned(),
                    })
                } else {
                    Err(Error::not_found(
                        "student_service",
                        format!("no student named `{}`", req.name),
                    ))
                }
            },
        )
        .description("StudentService.GetStudent", "Looks a student up by name.")
}

/// A service on the default registry (mDNS, loopback) under a name of its own; the headers
/// of every call it serves are kept in `seen`.
pub async fn student_service(name: &str, seen: Arc<Mutex<Vec<Metadata>>>) -> Service {
    start(Service::builder(name), seen).await
}

/// [`student_service`] from a builder of the test's (node metadata, ...).
pub async fn start(builder: ServiceBuilder, seen: Arc<Mutex<Vec<Metadata>>>) -> Service {
    let keep = tower::layer::layer_fn(move |inner: HandlerService| {
        let seen = Arc::clone(&seen);
        HandlerService::new(tower::service_fn(move |req: rmicro::rpc::Request| {
            seen.lock().expect("lock").push(req.header.clone());
            inner.clone().oneshot(req)
        }))
    });
    let service = builder
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .layers(&Layers::new().handler(keep))
        .handler(Students, routes())
        .start()
        .await
        .expect("start");
    service.registered().await.expect("registered");
    service
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid_like())
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            & 0xffff_ffff
    )
}
