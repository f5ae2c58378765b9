//! Real servers for the tests, each started on a free loopback port in a temporary directory
//! and stopped (killed and reaped) when its handle drops.

pub mod activemq;
pub mod consul;
pub mod dnsmasq;
pub mod etcd;
pub mod jaeger;
pub mod kafka;
pub mod mosquitto;
pub mod nats;
pub mod nsq;
pub mod prometheus;
pub mod pubsub;
pub mod rabbitmq;
pub mod redis;
pub mod tls;
pub mod zookeeper;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// One plain HTTP/1.0 request to a server's API (`GET /ping`, `POST /pub?topic=t`): the
/// body of a `200` answer, `None` for any other answer or none within a few seconds. The
/// fixtures' servers (nsqd, Prometheus, Jaeger: Go's HTTP server) answer HTTP/1.0 in kind
/// and close the connection.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200 ").then(|| body.to_owned())
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take), never one
/// this process handed out before: servers started by tests running side by side would
/// otherwise be given the same port between its release and their bind (a RabbitMQ node once
/// took another node's epmd for itself booted, and its tests talked AMQP to epmd).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// Runs `bash scripts/<script>` (which fetches or builds a server and prints the path of
/// what it made on its last line) and returns that path; an error says what failed.
pub fn run_script(script: &str) -> Result<PathBuf, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(script);
    let shown = format!("bash scripts/{script}");
    let out = Command::new("bash")
        .arg(&path)
        .output()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .ok_or_else(|| format!("`{shown}` printed no path:\n{stdout}"))
}

/// [`run_script`] once per process, through `cell`; panics with the reason when it failed.
pub fn script_once(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    script: &str,
) -> &'static Path {
    match cell.get_or_init(|| run_script(script)) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// Finds a program on PATH or in the usual system directories (Debian puts some servers in
/// /usr/sbin, which a non-root PATH lacks).
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/sbin",
                "/usr/local/bin",
                "/usr/lib/rabbitmq/bin",
            ]
            .map(PathBuf::from),
        )
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/rmicro/bin")))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Like [`program`], but a missing program is a test failure that says how to install it.
pub fn require(name: &str) -> PathBuf {
    program(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed: run `bash scripts/setup.sh` (the test command does)")
    })
}

/// A running server process.
pub struct Server {
    pub name: &'static str,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The address clients connect to.
    pub addr: SocketAddr,
    /// Extra ports the server uses (cluster, management, ...).
    pub extra_ports: Vec<u16>,
    command: Vec<String>,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts `program args..` in a fresh temporary directory (the working directory) and
    /// waits until `addr` accepts TCP connections. `args` may use `{dir}` for that
    /// directory.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        addr: SocketAddr,
        ready_within: Duration,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut command = vec![program.display().to_string()];
        command.extend(args.iter().cloned());
        let mut server = Server {
            name,
            child: None,
            dir,
            addr,
            extra_ports: Vec::new(),
            command,
            env: env.to_vec(),
        };
        server.spawn(ready_within);
        server
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server again after [`Server::stop`], on the same address and data, and
    /// waits until it accepts connections.
    pub fn start_again(&mut self, ready_within: Duration) {
        self.spawn(ready_within);
    }

    fn spawn(&mut self, ready_within: Duration) {
        let dir = self.dir.path().display().to_string();
        let args: Vec<String> = self.command[1..]
            .iter()
            .map(|a| a.replace("{dir}", &dir))
            .collect();
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let err = log.try_clone().expect("log file");
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        for (k, v) in &self.env {
            cmd.env(k, v.replace("{dir}", &dir));
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
        self.wait_ready(ready_within);
    }

    fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status} before listening on {}:\n{}",
                    self.name,
                    self.addr,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not listen on {} within {within:?}:\n{}",
                    self.name,
                    self.addr,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server (as a crash would) and waits until its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server and starts it again on the same address, with the same data
    /// directory unless `wipe` (a registry that restarts empty).
    pub fn restart(&mut self, wipe: bool, ready_within: Duration) {
        self.stop();
        if wipe {
            for entry in std::fs::read_dir(self.dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.file_name() != "server.log" {
                    let p = entry.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
        }
        self.spawn(ready_within);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
