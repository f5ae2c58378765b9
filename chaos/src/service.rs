//! The service the scenarios run as real processes: one endpoint that answers with its
//! process id. The runner starts its own executable with [`ROLE`] set, so the suite is one
//! binary.

use rmicro::prelude::*;
use serde::{Deserialize, Serialize};

/// The service's name in the registry.
pub const SERVICE: &str = "chaos_service";
/// Its one endpoint.
pub const ENDPOINT: &str = "ChaosService.Echo";
/// The environment variable that makes the executable the service instead of the runner.
pub const ROLE: &str = "RMICRO_CHAOS_ROLE";

#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    pub caller: usize,
    pub seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    pub seq: u64,
    pub pid: u32,
}

#[service(name = "chaos_service", version = "v1")]
pub struct ChaosService;

#[handlers]
impl ChaosService {
    /// Answers with the sequence number and the process id.
    pub async fn echo(&self, req: Ping) -> Result<Pong> {
        Ok(Pong {
            seq: req.seq,
            pid: std::process::id(),
        })
    }
}
