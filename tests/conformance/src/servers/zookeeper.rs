//! ZooKeeper 3.9 (Maven Central's jars, fetched and cached by `scripts/zookeeper.sh`) as a
//! standalone server on a free loopback port, its data in a temporary directory:
//! `java -cp '<jars>/*' org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg` with
//! `clientPortAddress=127.0.0.1`, no admin server (it would listen on 8080) and a tick of
//! 500 ms, so that sessions may be as short as 1 s (2 ticks) and as long as 10 s (20 ticks).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Server, free_port, require, script_once};

/// How long ZooKeeper may take to listen (about a second here; a JVM on a busy machine more).
const BOOT: Duration = Duration::from_secs(60);

/// The jars' directory, fetched once per test process.
fn jars() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    script_once(&DIR, "zookeeper.sh")
}

/// A ZooKeeper server.
pub struct Zookeeper {
    server: Server,
}

impl Zookeeper {
    /// Starts ZooKeeper on a free port of 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> Zookeeper {
        let java = require("java");
        let port = free_port();
        let config = format!(
            "tickTime=500\\ndataDir={{dir}}/data\\nclientPort={port}\\nclientPortAddress=127.0.0.1\\n\
             admin.enableServer=false\\n4lw.commands.whitelist=ruok,srvr\\n"
        );
        let script = format!(
            "printf '{config}' > '{{dir}}/zoo.cfg' && exec '{}' -Xmx256m -cp '{}/*' \
             org.apache.zookeeper.server.ZooKeeperServerMain '{{dir}}/zoo.cfg'",
            java.display(),
            jars().display()
        );
        let server = Server::start(
            "zookeeper",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            SocketAddr::from(([127, 0, 0, 1], port)),
            BOOT,
        );
        let zk = Zookeeper { server };
        zk.wait_serving();
        zk
    }

    /// Waits until the server's `srvr` answer shows it serving: it accepts TCP connections
    /// (and even answers `ruok`) a moment before it serves sessions.
    fn wait_serving(&self) {
        let deadline = Instant::now() + BOOT;
        loop {
            let answer = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"srvr")?;
                    let mut answer = String::new();
                    s.read_to_string(&mut answer)?;
                    Ok(answer)
                })
                .unwrap_or_default();
            if answer.starts_with("Zookeeper version") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "zookeeper not serving within {BOOT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address clients connect to, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Kills ZooKeeper and starts it again on the same port, without its data when `wipe`
    /// (every session and znode is then gone).
    pub fn restart(&mut self, wipe: bool) {
        self.server.restart(wipe, BOOT);
        self.wait_serving();
    }

    /// Kills ZooKeeper (as a crash would).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}
