//! The conformance suites: one for registries, one for brokers. Every plugin runs the same
//! checks against its real server, started on loopback by [`servers`].
//!
//! A plugin's test file builds a fixture and expands the suite:
//!
//! ```text
//! rmicro_conformance::registry_suite!(MyFixture::start());
//! ```

pub mod broker;
pub mod gomicro;
pub mod process;
pub mod proxy;
#[cfg(feature = "googlepubsub")]
pub mod pubsub_raw;
pub mod registry;
pub mod servers;
