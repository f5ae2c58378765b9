//! nats-server (Debian's 2.9) on a free loopback port: `nats-server -a 127.0.0.1 -p <port>`
//! with a config file in its temporary directory that raises `max_payload` to 4 MiB (the
//! default 1 MB cannot carry a 1 MiB body in go-micro's base64 envelope). No monitoring port.
//! [`Nats::start_tls`] adds `--tls --tlscert --tlskey`: the server then requires TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::tls::Certs;
use super::{Server, free_port, require};

/// How long nats-server may take to listen.
const BOOT: Duration = Duration::from_secs(10);

/// A nats-server.
pub struct Nats {
    server: Server,
}

impl Nats {
    /// Starts nats-server on a free port of 127.0.0.1 and waits until it accepts
    /// connections.
    pub fn start() -> Nats {
        Nats::launch(None, None)
    }

    /// Like [`Nats::start`], but clients must log in as `user` with `password` (letters and
    /// digits only).
    pub fn start_with_login(user: &str, password: &str) -> Nats {
        Nats::launch(None, Some((user, password)))
    }

    /// Like [`Nats::start`], but the server requires TLS and presents `certs`' server
    /// certificate (clients need no certificate).
    pub fn start_tls(certs: &Certs) -> Nats {
        Nats::launch(Some(certs), None)
    }

    fn launch(tls: Option<&Certs>, login: Option<(&str, &str)>) -> Nats {
        let program = require("nats-server");
        let port = free_port();
        let tls = tls.map_or_else(String::new, |c| {
            format!(
                " --tls --tlscert '{}' --tlskey '{}'",
                c.cert().display(),
                c.key().display()
            )
        });
        let login = login.map_or_else(String::new, |(user, password)| {
            format!(" --user {user} --pass {password}")
        });
        let script = format!(
            "printf 'max_payload: 4194304\\n' > '{{dir}}/nats.conf' && exec '{}' -a 127.0.0.1 -p {port} -c '{{dir}}/nats.conf'{tls}{login}",
            program.display()
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Server::start(
            "nats-server",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            addr,
            BOOT,
        );
        Nats { server }
    }

    /// The address clients connect to, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.server.addr)
    }

    /// `tls://127.0.0.1:<port>`, for a server started with [`Nats::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("tls://{}", self.server.addr)
    }

    /// Kills the server and starts it again on the same port.
    pub fn restart(&mut self) {
        self.server.restart(false, BOOT);
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
