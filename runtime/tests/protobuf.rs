//! Protobuf end to end, on real sockets on 127.0.0.1: RPC in both codecs, clients and servers
//! whose types speak different codecs, malformed protobuf, and events over the memory and http
//! brokers decoded by their `Content-Type`.
//!
//! The message types derive both serde and prost and are registered by nothing but the
//! `#[handlers]` block that names them (its probe registers their protobuf codecs when the
//! service's routes are built).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use rmicro::broker::http::{HttpBroker, HttpBrokerOptions};
use rmicro::broker::memory::MemoryBroker;
use rmicro::broker::{HEADER_CONTENT_TYPE, SharedBroker};
// What `#[handlers]` implements: the routes of a block, for the builder API.
use rmicro::__private::Handlers as _;
use rmicro::codec::{Encode, JSON, PROTOBUF};
use rmicro::prelude::*;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::CallOptions;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
struct Student {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    classes: String,
    #[prost(int32, tag = "3")]
    grade: i32,
    #[prost(string, tag = "4")]
    phone: String,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
struct StudentRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// The same JSON shapes without prost: what a JSON-only peer uses.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct JsonStudentRequest {
    name: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct JsonStudent {
    name: String,
    classes: String,
    grade: i32,
    phone: String,
}

fn davie() -> Student {
    Student {
        name: "davie".into(),
        classes: "软件工程专业".into(),
        grade: 80,
        phone: "12345678901".into(),
    }
}

type Inbox = mpsc::UnboundedSender<(String, Student)>;

/// Endpoints and a subscriber on prost + serde types.
struct StudentService {
    inbox: Inbox,
}

#[handlers]
impl StudentService {
    pub async fn get_student(&self, req: StudentRequest) -> Result<Student> {
        if req.name == "davie" {
            Ok(davie())
        } else {
            Err(Error::not_found(
                "student_service",
                format!("no student named `{}`", req.name),
            ))
        }
    }

    #[subscribe("protobuf.students")]
    pub async fn on_student(&self, event: Event<Student>) -> Result<()> {
        let content_type = event
            .header()
            .get(HEADER_CONTENT_TYPE)
            .cloned()
            .unwrap_or_default();
        let _ = self.inbox.send((content_type, event.into_payload()));
        Ok(())
    }
}

/// The same endpoint on serde-only types.
struct JsonStudents;

#[handlers]
impl JsonStudents {
    pub async fn get_student(&self, req: JsonStudentRequest) -> Result<JsonStudent> {
        Ok(JsonStudent {
            name: req.name,
            classes: "go".into(),
            grade: 99,
            phone: "555".into(),
        })
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().to_string()[..8])
}

async fn start(
    name: &str,
    registry: &MemoryRegistry,
    broker: SharedBroker,
) -> (Service, mpsc::UnboundedReceiver<(String, Student)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = Service::builder(name)
        .with_registry(Arc::new(registry.clone()))
        .with_broker(broker)
        .free_subscribers(false)
        .handler(StudentService { inbox: tx }, StudentService::routes())
        .handler(JsonStudents, JsonStudents::routes())
        .start()
        .await
        .expect("start");
    tokio::time::timeout(WAIT, service.registered())
        .await
        .expect("registered in time")
        .expect("registered");
    (service, rx)
}

#[tokio::test]
async fn rpc_round_trips_in_both_codecs_and_prost_types_default_to_protobuf() {
    let registry = MemoryRegistry::new();
    let name = unique("pb");
    let (service, _rx) = start(&name, &registry, Arc::new(MemoryBroker::new())).await;
    let client = service.client().clone();
    let req = StudentRequest {
        name: "davie".into(),
    };

    // Registered by the `#[handlers]` block: protobuf by default.
    assert_eq!(StudentRequest::default_content_type(), PROTOBUF);
    assert_eq!(JsonStudentRequest::default_content_type(), JSON);

    let got: Student = client
        .call(&name, "StudentService.GetStudent", &req)
        .await
        .expect("default (protobuf)");
    assert_eq!(got, davie());
    for content_type in [JSON, PROTOBUF] {
        let opts = CallOptions {
            content_type: Some(content_type.to_owned()),
            ..CallOptions::default()
        };
        let got: Student = client
            .call_with(&name, "StudentService.GetStudent", &req, opts)
            .await
            .unwrap_or_else(|e| panic!("{content_type}: {e}"));
        assert_eq!(got, davie(), "{content_type}");
    }

    // On the wire: a raw protobuf body gets a raw protobuf reply, and so does a body without
    // a content type (go-micro's rule).
    for content_type in [PROTOBUF, ""] {
        let reply = client
            .call_raw(
                &name,
                "StudentService.GetStudent",
                content_type,
                Bytes::from(req.encode_to_vec()),
            )
            .await
            .expect("raw protobuf");
        assert_eq!(Student::decode(reply).expect("protobuf reply"), davie());
    }
    let reply = client
        .call_raw(
            &name,
            "StudentService.GetStudent",
            JSON,
            Bytes::from_static(br#"{"name":"davie"}"#),
        )
        .await
        .expect("raw json");
    let json: serde_json::Value = serde_json::from_slice(&reply).expect("json reply");
    assert_eq!(json["classes"], "软件工程专业");
    assert_eq!(json["grade"], 80);

    // Errors still travel as go-micro's error JSON in both codecs.
    let err = client
        .call::<_, Student>(
            &name,
            "StudentService.GetStudent",
            &StudentRequest {
                name: "nobody".into(),
            },
        )
        .await
        .expect_err("not found");
    assert_eq!(err.code, 404, "{err}");
    service.stop().await.expect("stop");
}

#[tokio::test]
async fn json_and_protobuf_peers_meet() {
    let registry = MemoryRegistry::new();
    let name = unique("mixed");
    let (service, _rx) = start(&name, &registry, Arc::new(MemoryBroker::new())).await;
    let client = service.client().clone();

    // A JSON client (serde-only types) against the protobuf-typed server.
    let got: JsonStudent = client
        .call(
            &name,
            "StudentService.GetStudent",
            &JsonStudentRequest {
                name: "davie".into(),
            },
        )
        .await
        .expect("json client, prost server");
    assert_eq!(got.classes, "软件工程专业");

    // The reverse: a protobuf client against a serde-only server gets a clear 415 naming the
    // type, and the same call in JSON works.
    let req = StudentRequest {
        name: "davie".into(),
    };
    let err = client
        .call::<_, Student>(&name, "JsonStudents.GetStudent", &req)
        .await
        .expect_err("serde-only server cannot read protobuf");
    assert_eq!(err.code, 415, "{err}");
    assert!(err.detail.contains("`JsonStudentRequest`"), "{err}");
    assert!(err.detail.contains("has no protobuf codec"), "{err}");
    let opts = CallOptions {
        content_type: Some(JSON.to_owned()),
        ..CallOptions::default()
    };
    let got: Student = client
        .call_with(&name, "JsonStudents.GetStudent", &req, opts)
        .await
        .expect("prost client in JSON");
    assert_eq!((got.name.as_str(), got.grade), ("davie", 99));
    service.stop().await.expect("stop");
}

#[tokio::test]
async fn malformed_protobuf_is_a_400_and_the_service_keeps_serving() {
    let registry = MemoryRegistry::new();
    let name = unique("bad");
    let (service, _rx) = start(&name, &registry, Arc::new(MemoryBroker::new())).await;
    let client = service.client().clone();
    // Field 1, length-delimited, claims 200 bytes that are not there; then a bad wire type.
    for body in [&[0x0a, 0xc8, 0x01, b'x'][..], &[0x0f, 0x01][..]] {
        let err = client
            .call_raw(
                &name,
                "StudentService.GetStudent",
                PROTOBUF,
                Bytes::copy_from_slice(body),
            )
            .await
            .expect_err("malformed");
        assert_eq!(err.code, 400, "{err}");
        assert!(err.detail.starts_with("malformed protobuf body"), "{err}");
    }
    let got: Student = client
        .call(
            &name,
            "StudentService.GetStudent",
            &StudentRequest {
                name: "davie".into(),
            },
        )
        .await
        .expect("still serving");
    assert_eq!(got, davie());
    service.stop().await.expect("stop");
}

/// Publishes the student in each codec (the type's default, then each named one) and checks
/// that the subscriber decoded each by its `Content-Type`.
async fn events_round_trip(broker: SharedBroker, registry: &MemoryRegistry) {
    let name = unique("events");
    let (service, mut rx) = start(&name, registry, broker).await;
    let publisher = service
        .client()
        .publisher("protobuf.students")
        .expect("publisher");
    publisher.publish(&davie()).await.expect("default");
    for content_type in [JSON, PROTOBUF] {
        publisher
            .clone()
            .with_content_type(content_type)
            .publish(&davie())
            .await
            .unwrap_or_else(|e| panic!("{content_type}: {e}"));
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (content_type, student) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("delivered within 5 s")
            .expect("inbox open");
        assert_eq!(student, davie(), "{content_type}");
        seen.push(content_type);
    }
    seen.sort();
    assert_eq!(seen, [JSON, PROTOBUF, PROTOBUF]);
    service.stop().await.expect("stop");
}

#[tokio::test]
async fn events_in_both_codecs_over_the_memory_broker() {
    events_round_trip(Arc::new(MemoryBroker::new()), &MemoryRegistry::new()).await;
}

#[tokio::test]
async fn events_in_both_codecs_over_the_http_broker() {
    let registry = MemoryRegistry::new();
    let broker = HttpBroker::new(Arc::new(registry.clone()), HttpBrokerOptions::default());
    events_round_trip(Arc::new(broker), &registry).await;
}
