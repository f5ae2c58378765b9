//! Redis (Debian's redis-server) on a free loopback port, without persistence: a restart
//! comes back empty (no streams, no consumer groups), which is the harder case for the redis
//! broker, whose queue subscribers must create their consumer groups again.
//! [`Redis::start_tls`] serves TLS only (`--port 0 --tls-port <port>`).

use std::net::SocketAddr;
use std::time::Duration;

use super::tls::Certs;
use super::{Server, free_port, require};

/// A redis-server process.
pub struct Redis {
    server: Server,
}

impl Redis {
    /// Starts redis-server on a free loopback port in a fresh temporary directory.
    pub fn start() -> Redis {
        Redis::launch(None, false)
    }

    /// Like [`Redis::start`], with its append-only file on and synced on every write
    /// (`appendfsync always`): a write redis acknowledged survives a kill -9, and
    /// [`Redis::restart_with_data`] brings it back.
    pub fn start_durable() -> Redis {
        Redis::launch(None, true)
    }

    /// Like [`Redis::start`], but the port speaks TLS only, presenting `certs`' server
    /// certificate; clients need no certificate (`--tls-auth-clients no`).
    pub fn start_tls(certs: &Certs) -> Redis {
        Redis::launch(Some(certs), false)
    }

    fn launch(tls: Option<&Certs>, durable: bool) -> Redis {
        let program = require("redis-server");
        let port = free_port();
        let mut args: Vec<String> = match tls {
            None => vec!["--port".to_owned(), port.to_string()],
            Some(c) => [
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &c.cert().display().to_string(),
                "--tls-key-file",
                &c.key().display().to_string(),
                "--tls-ca-cert-file",
                &c.ca().display().to_string(),
                "--tls-auth-clients",
                "no",
            ]
            .map(str::to_owned)
            .to_vec(),
        };
        args.extend(["--bind", "127.0.0.1", "--save", "", "--dir", "{dir}"].map(str::to_owned));
        args.extend(
            if durable {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            }
            .map(str::to_owned),
        );
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

    /// `rediss://127.0.0.1:<port>`, for a server started with [`Redis::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://{}", self.server.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Kills the server and starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.server.restart(true, Duration::from_secs(10));
    }

    /// Kills the server and starts it again on the same port with its data (what its
    /// append-only file holds, for [`Redis::start_durable`]).
    pub fn restart_with_data(&mut self) {
        self.server.restart(false, Duration::from_secs(10));
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
