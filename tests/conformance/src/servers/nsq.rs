//! nsqd 1.3 (built by `scripts/nsq.sh` into `~/.cache/rmicro/bin`) on two free loopback ports,
//! its data in its temporary directory:
//! `nsqd --tcp-address=127.0.0.1:<tcp> --http-address=127.0.0.1:<http> --https-address=
//! --broadcast-address=127.0.0.1 --data-path=<dir> --max-msg-size=4194304`. Nothing else
//! listens (no HTTPS without TLS options, no lookupd, no statsd).
//!
//! - `--max-msg-size` is raised from 1 MiB to 4 MiB: a 1 MiB body in go-micro's JSON envelope
//!   (base64) is about 1.4 MB, which the default refuses (`E_BAD_MESSAGE PUB message too
//!   big`, or `413 MSG_TOO_BIG` over HTTP).
//! - The memory queues keep nsqd's default size (`--mem-queue-size=10000` messages per topic
//!   and per channel). An ephemeral channel (`<name>#ephemeral`, what go-micro's broadcast
//!   subscribers use) has no disk queue: it drops what does not fit in its memory queue, so
//!   with `--mem-queue-size=0` it would drop every message its consumer is not waiting for
//!   at that very moment.
//! - [`Nsqd::restart`] stops nsqd with SIGTERM, which writes every queued, in-flight and
//!   deferred message of the durable channels to disk first: they all come back (in-flight
//!   ones with their attempt count). [`Nsqd::crash_restart`] kills it (kill -9) instead:
//!   what was in memory is lost, in-flight and deferred messages included, and so may be the
//!   last messages written to disk (a disk queue records its positions every 2500 messages
//!   or 2 s).
//! - [`Nsqd::start_secure`] adds TLS (`--tls-cert --tls-key --tls-required=tcp-https`: the
//!   TCP protocol takes TLS connections only, the HTTP API stays plain for the fixture) and
//!   AUTH (`--auth-http-address`, an [`AuthServer`] of the test's: nsqd asks it, over HTTP,
//!   what each client's secret may do, as it would ask pynsqauthd or an estate's own).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tls::Certs;
use super::{Server, free_port, program, require};

/// How long nsqd may take to listen and answer `/ping` (well under a second here).
const BOOT: Duration = Duration::from_secs(15);

/// The nsqd program: found on PATH or in `~/.cache/rmicro/bin`, else built once per test
/// process by `scripts/nsq.sh`.
fn nsqd() -> &'static Path {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PROGRAM.get_or_init(|| {
        if let Some(found) = program("nsqd") {
            return Ok(found);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/nsq.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run `bash {script}`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`bash {script}` failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(require("nsqd"))
    });
    match found {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// An nsqd.
pub struct Nsqd {
    server: Server,
    http_port: u16,
}

impl Nsqd {
    /// Starts nsqd on free ports of 127.0.0.1 and waits until it answers `/ping`.
    pub fn start() -> Nsqd {
        Nsqd::start_secure(None, None)
    }

    /// Like [`Nsqd::start`], but with TLS required on the TCP protocol when `tls` is given
    /// (presenting its server certificate; clients need none), and AUTH required when `auth`
    /// is given (nsqd asks that server about each client's secret).
    pub fn start_secure(tls: Option<&Certs>, auth: Option<&AuthServer>) -> Nsqd {
        let program = nsqd();
        let tcp_port = free_port();
        let http_port = free_port();
        let mut secure = String::new();
        if let Some(certs) = tls {
            secure += &format!(
                " --tls-cert='{}' --tls-key='{}' --tls-required=tcp-https",
                certs.cert().display(),
                certs.key().display()
            );
        }
        if let Some(auth) = auth {
            secure += &format!(" --auth-http-address={}", auth.address());
        }
        // The shell writes its pid, which `exec` hands to nsqd, for `restart`.
        let script = format!(
            "echo $$ > '{{dir}}/nsqd.pid' && exec '{}' --tcp-address=127.0.0.1:{tcp_port} \
             --http-address=127.0.0.1:{http_port} --https-address= \
             --broadcast-address=127.0.0.1 --data-path='{{dir}}' --max-msg-size=4194304{secure}",
            program.display()
        );
        let server = Server::start(
            "nsqd",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            SocketAddr::from(([127, 0, 0, 1], tcp_port)),
            BOOT,
        );
        let mut nsqd = Nsqd { server, http_port };
        nsqd.server.extra_ports.push(http_port);
        nsqd.wait_ready();
        nsqd
    }

    /// Waits until `GET /ping` on the HTTP port answers `200 OK` (nsqd answers 500 while
    /// unhealthy).
    fn wait_ready(&self) {
        let deadline = Instant::now() + BOOT;
        while !self.ping() {
            assert!(
                Instant::now() < deadline,
                "nsqd did not answer /ping on {} within {BOOT:?}:\n{}",
                self.http_address(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ping(&self) -> bool {
        self.get("/ping").is_some_and(|body| body == "OK")
    }

    /// A plain HTTP/1.0 GET on nsqd's HTTP port: the body of a 200 answer, `None` otherwise.
    pub fn get(&self, path: &str) -> Option<String> {
        self.http("GET", path, b"")
    }

    /// A plain HTTP/1.0 POST (`/pub?topic=t` publishes the body as it is): the body of a
    /// 200 answer, `None` otherwise.
    pub fn post(&self, path: &str, body: &[u8]) -> Option<String> {
        self.http("POST", path, body)
    }

    fn http(&self, method: &str, path: &str, body: &[u8]) -> Option<String> {
        super::http(
            SocketAddr::from(([127, 0, 0, 1], self.http_port)),
            method,
            path,
            body,
        )
    }

    /// The address of nsqd's TCP protocol (what producers and consumers connect to),
    /// `127.0.0.1:<port>`.
    pub fn tcp_address(&self) -> String {
        self.server.addr.to_string()
    }

    /// The address of nsqd's HTTP API (`/pub`, `/stats`, `/ping`...), `127.0.0.1:<port>`.
    pub fn http_address(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// Stops nsqd with SIGTERM, waits until it has written its queues (in-flight and
    /// deferred messages included) to disk and exited, then starts it again on the same
    /// ports with the same data directory; waits until it answers `/ping`. Every message of
    /// a durable channel (or of a topic without channels) survives; ephemeral channels are
    /// gone, as their consumers were disconnected.
    pub fn restart(&mut self) {
        let pid = std::fs::read_to_string(self.server.dir().join("nsqd.pid"))
            .expect("nsqd's pid file")
            .trim()
            .to_owned();
        let status = Command::new("/bin/sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .expect("run /bin/sh");
        assert!(status.success(), "kill -TERM {pid} failed: {status}");
        // "NSQ: bye" is nsqd's last line, once every queue is flushed and closed.
        let deadline = Instant::now() + BOOT;
        while !self.log().contains("NSQ: bye") {
            assert!(
                Instant::now() < deadline,
                "nsqd did not stop within {BOOT:?} of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.server.restart(false, BOOT);
        self.wait_ready();
    }

    /// Kills nsqd (kill -9, as a crash would) and starts it again on the same ports with the
    /// same data directory; waits until it answers `/ping`. Messages nsqd held in memory are
    /// lost (see the module's documentation).
    pub fn crash_restart(&mut self) {
        self.server.restart(false, BOOT);
        self.wait_ready();
    }

    /// Kills nsqd (kill -9).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// nsqd's output so far (since its last start).
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// An nsqd auth server (nsqd's `--auth-http-address` protocol): nsqd sends
/// `GET /auth?remote_ip=..&tls=true|false&secret=..&common_name=..` for each client's `AUTH`
/// and takes a 200 with the client's authorizations, or any other status as a refusal. This
/// one grants publish and subscribe on every topic and channel to one secret, refuses every
/// other secret with a 403, and records each query.
pub struct AuthServer {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl AuthServer {
    /// Serves on a free port of 127.0.0.1, on a thread of its own, until dropped. `secret`
    /// is compared as nsqd sends it, URL-encoded (use letters and digits).
    pub fn start(secret: &str) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the auth server");
        let addr = listener.local_addr().expect("its address");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!("secret={secret}");
        let (seen, stopped) = (Arc::clone(&queries), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Acquire) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                // The request line, then the headers up to the empty line (read all of it
                // before answering: closing with unread data would reset the connection).
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header.trim() != "" {
                    header.clear();
                }
                let query = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|target| target.split_once('?'))
                    .map_or_else(String::new, |(_, q)| q.to_owned());
                let granted = query.split('&').any(|pair| pair == expected);
                seen.lock().expect("queries").push(query);
                let (status, body) = if granted {
                    (
                        "200 OK",
                        r#"{"ttl":3600,"identity":"rmicro-test","identity_url":"","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","publish"]}]}"#,
                    )
                } else {
                    ("403 Forbidden", r#"{"message":"NOT_AUTHORIZED"}"#)
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        AuthServer {
            addr,
            queries,
            stop,
        }
    }

    /// `127.0.0.1:<port>`, for nsqd's `--auth-http-address`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The query strings nsqd sent so far, one per `AUTH`.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().expect("queries").clone()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}
