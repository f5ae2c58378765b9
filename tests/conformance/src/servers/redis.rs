//! Redis (Debian's redis-server) on a free loopback port, without persistence: a restart
//! comes back empty (no streams, no consumer groups), which is the harder case for the redis
//! broker, whose queue subscribers must create their consumer groups again.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Server, free_port, require};

/// A redis-server process.
pub struct Redis {
    server: Server,
}

impl Redis {
    /// Starts redis-server on a free loopback port in a fresh temporary directory.
    pub fn start() -> Redis {
        let program = require("redis-server");
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "{dir}",
        ]
        .map(str::to_owned);
        let server = Server::start(
            "redis-server",
            &program,
            &args,
            &[],
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        );
        Redis { server }
    }

    /// The server's URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.server.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Kills the server and starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.server.restart(true, Duration::from_secs(10));
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}
