//! mosquitto and nats-server for the broker plugin tests: one process on a free loopback port,
//! its config file in a temporary directory, killed (and the directory removed) on drop.
#![allow(dead_code)]

#[path = "../ports/mod.rs"]
mod ports;

use ports::free_port;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process.
pub struct Proc {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    dir: PathBuf,
    pub addr: SocketAddr,
}

fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: run `bash scripts/setup.sh`"))
}

impl Proc {
    /// mosquitto with `listener <port> 127.0.0.1`, anonymous access, no persistence.
    pub fn mosquitto() -> Proc {
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n"
        );
        Proc::start("mosquitto", port, "mosquitto.conf", &config, |conf| {
            vec!["-c".to_owned(), conf]
        })
    }

    /// nats-server on 127.0.0.1 with `max_payload` raised to 4 MiB.
    pub fn nats() -> Proc {
        let port = free_port();
        Proc::start(
            "nats-server",
            port,
            "nats.conf",
            "max_payload: 4194304\n",
            |conf| {
                vec![
                    "-a".to_owned(),
                    "127.0.0.1".to_owned(),
                    "-p".to_owned(),
                    port.to_string(),
                    "-c".to_owned(),
                    conf,
                ]
            },
        )
    }

    fn start(
        name: &'static str,
        port: u16,
        conf_name: &str,
        conf: &str,
        args: impl FnOnce(String) -> Vec<String>,
    ) -> Proc {
        let dir = std::env::temp_dir().join(format!("rmicro-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conf_path = dir.join(conf_name);
        std::fs::write(&conf_path, conf).expect("config file");
        let mut p = Proc {
            name,
            program: program(name),
            args: args(conf_path.display().to_string()),
            child: None,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        p.spawn();
        p
    }

    /// Starts the process (again) and waits until its port accepts connections.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log");
        let err = log.try_clone().expect("log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {}",
                self.name,
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (as a crash would) and waits until its port is closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
