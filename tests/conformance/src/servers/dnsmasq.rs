//! dnsmasq (Debian's dnsmasq-base) as an authoritative DNS server for the test's own records
//! on a free loopback port (UDP and TCP): no configuration file, no upstream, no /etc/hosts,
//! and `--local=/local/` so that unknown names under `local` get NXDOMAIN rather than REFUSED.
//! Records are dnsmasq flags, e.g. `--srv-host=_greeter._tcp.local,node1.local,8080` and
//! `--host-record=node1.local,127.0.0.1`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Server, free_port, require};

/// How long dnsmasq may take to listen.
const BOOT: Duration = Duration::from_secs(10);

/// A dnsmasq serving fixed records.
pub struct Dnsmasq {
    server: Server,
}

fn launch(addr: SocketAddr, records: &[String]) -> Server {
    let program = require("dnsmasq");
    let mut args = vec![
        "--keep-in-foreground".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        "--pid-file=".to_owned(),
        format!("--port={}", addr.port()),
        "--listen-address=127.0.0.1".to_owned(),
        "--bind-interfaces".to_owned(),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        "--local=/local/".to_owned(),
        "--log-facility=-".to_owned(),
    ];
    args.extend(records.iter().cloned());
    Server::start("dnsmasq", &program, &args, &[], addr, BOOT)
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port of 127.0.0.1 serving `records` (dnsmasq flags).
    pub fn start(records: &[String]) -> Dnsmasq {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Dnsmasq {
            server: launch(addr, records),
        }
    }

    /// The address to send queries to, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Stops dnsmasq and starts it again on the same port serving `records` instead.
    pub fn serve(&mut self, records: &[String]) {
        let addr = self.server.addr;
        self.server.stop();
        self.server = launch(addr, records);
    }
}
