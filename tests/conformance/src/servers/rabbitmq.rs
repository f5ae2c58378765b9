//! RabbitMQ (Debian's rabbitmq-server 3.10) as a plain process on loopback ports, with an epmd
//! of its own, so that nothing listens beyond 127.0.0.1 and parallel test binaries do not
//! collide.
//!
//! RabbitMQ boots in several seconds, so a test binary shares one server ([`shared`]) and only
//! the restart check starts its own ([`Rabbitmq::start`]). A shared server lives in a static,
//! which Rust never drops: every process started here is therefore wrapped in a watchdog that
//! kills it (and removes its directory) within a second of the test process exiting.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Server, free_port, require};

/// How long RabbitMQ may take to boot (it takes 5–8 s on the CI machine).
const BOOT: Duration = Duration::from_secs(60);

/// A RabbitMQ node and its epmd.
pub struct Rabbitmq {
    // Field order is drop order: the node goes before its epmd.
    server: Server,
    _epmd: Server,
    /// How long the last (re)start took until the AMQP port accepted connections.
    pub boot_time: Duration,
}

/// `sh -c` arguments that run `command` (a shell command that ends by `exec`ing the server,
/// so that the server keeps the shell's pid) under a watchdog: if the test process (this one)
/// exits while the server runs, the server is killed
/// and `dir_to_remove` removed. The watchdog ends by itself when the command ends first.
fn guarded(command: &str, dir_to_remove: Option<&str>) -> Vec<String> {
    let cleanup = dir_to_remove
        .map(|d| format!("; rm -rf '{d}'"))
        .unwrap_or_default();
    let script = format!(
        "me=$$; parent={parent}; \
         ( while kill -0 $parent && kill -0 $me; do sleep 1; done; \
           if ! kill -0 $parent; then kill -9 $me{cleanup}; fi ) >/dev/null 2>&1 & \
         {command}",
        parent = std::process::id(),
    );
    vec!["-c".to_owned(), script]
}

impl Rabbitmq {
    /// Starts epmd and a RabbitMQ node on free loopback ports, each in a fresh temporary
    /// directory, and waits until the node accepts AMQP connections.
    pub fn start() -> Rabbitmq {
        let rabbit = require("rabbitmq-server");
        let epmd_bin = require("epmd");
        let sh = Path::new("/bin/sh");
        let epmd_port = free_port();
        let epmd = Server::start(
            "epmd",
            sh,
            &guarded(
                &format!(
                    "exec '{}' -address 127.0.0.1 -port {epmd_port}",
                    epmd_bin.display()
                ),
                Some("{dir}"),
            ),
            &[],
            SocketAddr::from(([127, 0, 0, 1], epmd_port)),
            Duration::from_secs(10),
        );
        // Debian's /usr/sbin/rabbitmq-server switches to the `rabbitmq` user and cds into
        // /var/lib/rabbitmq; the script under /usr/lib/rabbitmq/bin runs as we are.
        let script = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        let script = if script.is_file() {
            script.to_path_buf()
        } else {
            rabbit
        };
        let port = free_port();
        let dist_port = free_port();
        let env = [
            ("HOME", "{dir}".to_owned()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", port.to_string()),
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            ("RABBITMQ_NODENAME", format!("rmicro-{port}@localhost")),
            ("RABBITMQ_MNESIA_BASE", "{dir}/mnesia".to_owned()),
            ("RABBITMQ_LOG_BASE", "{dir}/log".to_owned()),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                "{dir}/enabled_plugins".to_owned(),
            ),
            ("RABBITMQ_CONFIG_FILE", "{dir}/rabbitmq".to_owned()),
            (
                "RABBITMQ_CONF_ENV_FILE",
                "{dir}/rabbitmq-env.conf".to_owned(),
            ),
            // Exec the VM in place of the script (so killing the pid kills RabbitMQ), without
            // an Erlang shell, with Erlang distribution on loopback only.
            ("RABBITMQ_ALLOW_INPUT", "1".to_owned()),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-noinput -kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
            ("ERL_EPMD_PORT", epmd_port.to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        // The files the node reads are written by the same shell that execs it, so that a
        // restart (which may wipe the directory) finds them again.
        let command = format!(
            "printf '[].\\n' > {{dir}}/enabled_plugins && \
             printf 'disk_free_limit.absolute = 1MB\\nloopback_users.guest = true\\n' > {{dir}}/rabbitmq.conf && \
             exec '{}'",
            script.display()
        );
        let started = Instant::now();
        let server = Server::start(
            "rabbitmq-server",
            sh,
            &guarded(&command, Some("{dir}")),
            &env,
            SocketAddr::from(([127, 0, 0, 1], port)),
            BOOT,
        );
        Rabbitmq {
            server,
            _epmd: epmd,
            boot_time: started.elapsed(),
        }
    }

    /// The AMQP URL of the node (user `guest`, vhost `/`).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.server.addr)
    }

    /// The AMQP address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Kills the node (as a crash would) and starts it again with its data, on the same
    /// ports; returns when it accepts connections again.
    pub fn restart(&mut self) {
        let started = Instant::now();
        self.server.restart(false, BOOT);
        self.boot_time = started.elapsed();
    }

    /// Kills the node.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The node's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// The node shared by every test of this test binary, started on first use.
pub fn shared() -> &'static Rabbitmq {
    static SHARED: OnceLock<Rabbitmq> = OnceLock::new();
    SHARED.get_or_init(|| {
        let node = Rabbitmq::start();
        eprintln!(
            "rabbitmq: shared node on {} booted in {:.1} s",
            node.addr(),
            node.boot_time.as_secs_f64()
        );
        node
    })
}
