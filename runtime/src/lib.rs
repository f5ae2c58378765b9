//! rmicro: go-micro's way of building microservices, as Rust attribute macros over a small
//! runtime.
//!
//! ```no_run
//! use rmicro::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! struct StudentRequest { name: String }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Student { name: String, grade: i32 }
//!
//! #[service(name = "student_service", version = "v1.0.0", ttl = 10, interval = 5)]
//! struct StudentService;
//!
//! #[handlers]
//! impl StudentService {
//!     pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
//!         Ok(Student { name: req.name, grade: 80 })
//!     }
//! }
//!
//! #[rmicro::main]
//! async fn main() -> rmicro::Result<()> {
//!     StudentService.run().await
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod broker;
pub mod codec;
pub mod config;
mod error;
mod event;
pub mod health;
mod id;
pub mod layer;
pub mod metrics;
#[cfg(feature = "nats")]
mod nats_conn;
#[cfg(feature = "otel")]
pub mod otel;
pub mod registry;
pub mod rpc;
pub mod service;
#[cfg(any(feature = "mqtt", feature = "nsq"))]
mod tls;

pub use error::{Error, Result, reason_phrase};
pub use event::Event;
pub use rpc::{Client, Routes};
pub use service::{Service, ServiceBuilder};

pub use rmicro_macros::{handlers, main, service, subscribe};

/// What a service file needs: the macros, the error and event types, serde's derives.
pub mod prelude {
    pub use crate::broker::Message;
    pub use crate::rpc::Client;
    pub use crate::rpc::stream::{Replies, Requests};
    pub use crate::{Error, Event, Result, Service};
    pub use crate::{handlers, service, subscribe};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
