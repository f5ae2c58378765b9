//! Mosquitto (Debian's 2.0) on a free loopback port, configured by a file in its temporary
//! directory: one listener on 127.0.0.1, anonymous clients, no persistence (a restart forgets
//! every session and subscription, as a crashed server does). [`Mosquitto::start_tls`] makes
//! that listener a TLS one.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::tls::Certs;
use super::{Server, free_port, require};

/// How long mosquitto may take to listen.
const BOOT: Duration = Duration::from_secs(10);

/// A mosquitto server.
pub struct Mosquitto {
    server: Server,
}

impl Mosquitto {
    /// Starts mosquitto on a free port of 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> Mosquitto {
        Mosquitto::launch(None)
    }

    /// Like [`Mosquitto::start`], but the listener speaks TLS only (MQTT over TLS, as for
    /// `mqtts://`), presenting `certs`' server certificate; clients need no certificate.
    pub fn start_tls(certs: &Certs) -> Mosquitto {
        Mosquitto::launch(Some(certs))
    }

    fn launch(tls: Option<&Certs>) -> Mosquitto {
        let program = require("mosquitto");
        let port = free_port();
        // Listener options follow their `listener` line. Started as root, mosquitto drops to
        // user `mosquitto` before it reads the certificates, which then sit in a directory
        // only root may read: `user root` keeps it as it was started (as any other user, the
        // option does nothing).
        let tls = tls.map_or_else(String::new, |c| {
            format!(
                "user root\\ncafile {}\\ncertfile {}\\nkeyfile {}\\n",
                c.ca().display(),
                c.cert().display(),
                c.key().display()
            )
        });
        let config = format!(
            "listener {port} 127.0.0.1\\n{tls}allow_anonymous true\\npersistence false\\nlog_dest stdout\\nlog_type error\\nlog_type warning\\nlog_type notice\\nlog_type information\\n"
        );
        // The config is written by the shell into the server's own directory; `exec` keeps
        // the server's pid the one `Server` kills.
        let script = format!(
            "printf '{config}' > '{{dir}}/mosquitto.conf' && exec '{}' -c '{{dir}}/mosquitto.conf'",
            program.display()
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Server::start(
            "mosquitto",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            addr,
            BOOT,
        );
        Mosquitto { server }
    }

    /// The address clients connect to, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.server.addr)
    }

    /// `mqtts://127.0.0.1:<port>`, for a server started with [`Mosquitto::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("mqtts://{}", self.server.addr)
    }

    /// Kills the server and starts it again on the same port (sessions and subscriptions
    /// are gone, as after a crash).
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
