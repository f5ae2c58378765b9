//! The seed's message types, shared by the example programs.
//!
//! They are generated from `proto/student.proto` by rmicro-build (see `build.rs`): prost
//! messages that derive serde too, so they speak both `application/json` and
//! `application/protobuf`; calls and published messages use protobuf by default, as
//! go-micro's do, unless `--client_content_type` (or `MICRO_CLIENT_CONTENT_TYPE`) says
//! otherwise.

/// Proto package `message`: `Student`, `StudentRequest`, and for service `StudentService`
/// the handler trait `StudentServiceHandler` and the typed client `StudentServiceClient`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod message {
    rmicro::include_proto!("message");
}

/// Proto package `school`: not part of the seed, the shapes the generator must also handle
/// (a camelCase field, nested messages, an enum, a oneof, a map, a streaming rpc).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod school {
    rmicro::include_proto!("school");
}

pub use message::{Student, StudentRequest, StudentServiceClient, StudentServiceHandler};

/// The topic the seed publishes students on.
pub const TOPIC: &str = "go.micro.srv.message";

impl Student {
    /// The seed's student.
    pub fn davie() -> Self {
        Self {
            name: "davie".to_owned(),
            classes: "软件工程专业".to_owned(),
            grade: 80,
            phone: "12345678901".to_owned(),
        }
    }

    /// The class the streaming examples list: the seed's student and two classmates.
    pub fn roster() -> Vec<Self> {
        let classmate = |name: &str, grade, phone: &str| Self {
            name: name.to_owned(),
            grade,
            phone: phone.to_owned(),
            ..Self::davie()
        };
        vec![
            Self::davie(),
            classmate("dora", 91, "12345678902"),
            classmate("doug", 73, "12345678903"),
        ]
    }
}
