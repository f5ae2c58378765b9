//! Google Cloud Pub/Sub on a free loopback port, for the googlepubsub broker's tests, one of two
//! ways:
//!
//! - **emulator**: the Pub/Sub emulator of the Google Cloud SDK (Java, 0.8.20 here), where
//!   `gcloud`'s SDK directory has it (`<sdk>/platform/pubsub-emulator`) and `java` is
//!   installed: `cloud-pubsub-emulator --host=127.0.0.1 --port=<port>` (the launcher `exec`s
//!   java, so the process we kill is the JVM). It serves gRPC and REST (HTTP/1.1 JSON,
//!   `PUT /v1/projects/<p>/topics/<t>`, ...) on that one port. About 1.2-1.8 s to serve and
//!   110-200 MB resident here.
//! - **pstest**: otherwise, Google's in-process fake (`cloud.google.com/go/pubsub/v2/pstest`
//!   v2.9.0) behind `tests/servers/pstest` (`pstest -addr 127.0.0.1:<port>`), built from the Go
//!   module proxy by `scripts/pstest.sh` into `~/.cache/rmicro/bin/pstest`. gRPC only. About
//!   20 ms to serve and 15 MB resident.
//!
//! `RMICRO_PUBSUB=emulator` or `RMICRO_PUBSUB=pstest` forces one.
//!
//! [`PubSub::start_cloud_like`] stands in for Google Cloud's endpoint instead (pstest always):
//! gRPC over TLS with a test certificate, every call refused with UNAUTHENTICATED unless it
//! carries `authorization: Bearer <token>`, as Google's does.
//!
//! Clients reach either as they reach the emulator: `PUBSUB_EMULATOR_HOST=<host()>`, plaintext
//! gRPC (HTTP/2 without TLS), no credentials, any project id.
//!
//! Both keep everything in memory only: [`PubSub::restart`] comes back empty (no topic, no
//! subscription, no message), as a wiped registry would.
//!
//! Differences seen here that tests may meet (both: CreateTopic/CreateSubscription answer
//! ALREADY_EXISTS for an existing one, Publish to a missing topic NOT_FOUND, StreamingPull,
//! Pull, Acknowledge, ModifyAckDeadline (0 = nack, redelivered at once), redelivery when the
//! ack deadline expires, DeleteSubscription; each message of a subscription goes to one of its
//! streams):
//! - names: the emulator checks them as the service does (a topic or subscription id has 3 to
//!   255 characters, starts with a letter, no `/`: `t` is INVALID_ARGUMENT;
//!   `go.micro.topic` is fine); pstest takes any name.
//! - size: pstest's gRPC server keeps grpc-go's 4 MiB limit on a request (a 5 MiB publish is
//!   RESOURCE_EXHAUSTED); the emulator took 5 MiB (the service allows 10 MB).
//! - ack deadlines: both accept 1..=600 s on CreateSubscription (0 means 10 s); pstest uses a
//!   StreamingPull's `stream_ack_deadline_seconds` as given, so a stream opened without it
//!   (0) has every message redelivered within ~10 ms.
//! - a StreamingPull the client *cancels* (RST_STREAM, e.g. a dropped response stream) is not
//!   noticed by this emulator (its gRPC jar throws NoSuchMethodError in onRstStreamRead): it
//!   keeps handing messages to the dead stream, which come back only when their ack deadline
//!   expires. A stream the client half-closes (ends its request stream) ends cleanly on both.
//!   pstest handles both.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::tls::Certs;
use super::{Server, free_port, program, require, run_script};

/// How long the emulator may take to serve (about 1.5 s here; a JVM on a busy machine more).
const EMULATOR_BOOT: Duration = Duration::from_secs(60);
/// How long pstest may take to serve (it listens before it prints anything).
const PSTEST_BOOT: Duration = Duration::from_secs(10);

/// Which server runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Emulator,
    Pstest,
}

/// The emulator's launcher in `gcloud`'s SDK directory (`<sdk>/bin/gcloud`, often reached
/// through a symbolic link such as /usr/bin/gcloud), if the SDK has the component.
fn emulator_launcher() -> Option<PathBuf> {
    let gcloud = program("gcloud")?.canonicalize().ok()?;
    let sdk = gcloud.parent()?.parent()?;
    let launcher = sdk.join("platform/pubsub-emulator/bin/cloud-pubsub-emulator");
    launcher.is_file().then_some(launcher)
}

/// The pstest binary, built (or found up to date) once per test process by
/// `scripts/pstest.sh`, which prints its path on its last line.
fn pstest_binary() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let built = run_script("pstest.sh").and_then(|p| {
            if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "`bash scripts/pstest.sh` printed {}, not a binary",
                    p.display()
                ))
            }
        });
        // Without Go, a binary built before (possibly from older sources) still serves.
        built.or_else(|message| {
            program("pstest").ok_or(message).inspect(|p| {
                eprintln!(
                    "pubsub: scripts/pstest.sh failed; using the pstest found at {}",
                    p.display()
                );
            })
        })
    });
    match bin {
        Ok(bin) => bin,
        Err(message) => panic!("{message}"),
    }
}

/// Whether the server at `addr` speaks HTTP/2 (so gRPC): it answers the client connection
/// preface and an empty SETTINGS frame with a SETTINGS frame of its own, which it sends only
/// once its services are set up.
fn speaks_http2(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // Frame header: length 0 (3 bytes), type 4 (SETTINGS), flags 0, stream 0.
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let mut header = [0u8; 9];
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_ok()
        && stream.write_all(&hello).is_ok()
        && stream.read_exact(&mut header).is_ok()
        && header[3] == 4
        && header[5..] == [0, 0, 0, 0]
}

/// A Cloud Pub/Sub server (the SDK's emulator or pstest) on 127.0.0.1. Its state lives in
/// memory only: a restart loses every topic, subscription and message.
pub struct PubSub {
    server: Server,
    kind: Kind,
}

impl PubSub {
    /// Starts the Pub/Sub emulator when `gcloud`'s SDK has it and `java` is installed, else
    /// pstest (built by `scripts/pstest.sh` when missing or out of date), on a free port of
    /// 127.0.0.1, and waits until it serves gRPC. `RMICRO_PUBSUB=emulator|pstest` chooses.
    pub fn start() -> PubSub {
        let kind = match std::env::var("RMICRO_PUBSUB").unwrap_or_default().as_str() {
            "emulator" => Kind::Emulator,
            "pstest" => Kind::Pstest,
            "" if emulator_launcher().is_some() && program("java").is_some() => Kind::Emulator,
            "" => Kind::Pstest,
            other => panic!("RMICRO_PUBSUB={other}: expected `emulator` or `pstest`"),
        };
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = match kind {
            Kind::Emulator => {
                let launcher = emulator_launcher().unwrap_or_else(|| {
                    panic!(
                        "RMICRO_PUBSUB=emulator, but `gcloud`'s SDK has no \
                         platform/pubsub-emulator (`gcloud components install pubsub-emulator`, \
                         or the google-cloud-cli-pubsub-emulator package of Google's apt repository)"
                    )
                });
                require("java");
                Server::start(
                    "pubsub-emulator",
                    &launcher,
                    &["--host=127.0.0.1".to_owned(), format!("--port={port}")],
                    &[],
                    addr,
                    EMULATOR_BOOT,
                )
            }
            Kind::Pstest => Server::start(
                "pstest",
                pstest_binary(),
                &["-addr".to_owned(), addr.to_string()],
                &[],
                addr,
                PSTEST_BOOT,
            ),
        };
        let pubsub = PubSub { server, kind };
        pubsub.wait_serving();
        pubsub
    }

    /// pstest as Google Cloud's endpoint would be: TLS with `certs`' server certificate, and
    /// a bearer `token` required on every call. Clients reach it at [`PubSub::endpoint`].
    pub fn start_cloud_like(certs: &Certs, token: &str) -> PubSub {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Server::start(
            "pstest-tls",
            pstest_binary(),
            &[
                "-addr".to_owned(),
                addr.to_string(),
                "-tls-cert".to_owned(),
                certs.cert().display().to_string(),
                "-tls-key".to_owned(),
                certs.key().display().to_string(),
                "-token".to_owned(),
                token.to_owned(),
            ],
            &[],
            addr,
            PSTEST_BOOT,
        );
        // It listens before it says so; Server::start waited for the port.
        PubSub {
            server,
            kind: Kind::Pstest,
        }
    }

    /// `https://127.0.0.1:<port>`, for a server started with [`PubSub::start_cloud_like`].
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.server.addr)
    }

    fn boot(&self) -> Duration {
        match self.kind {
            Kind::Emulator => EMULATOR_BOOT,
            Kind::Pstest => PSTEST_BOOT,
        }
    }

    /// Waits until the server speaks HTTP/2 on its port.
    fn wait_serving(&self) {
        let within = self.boot();
        let deadline = Instant::now() + within;
        while !speaks_http2(self.addr()) {
            assert!(
                Instant::now() < deadline,
                "{} not serving gRPC on {} within {within:?}:\n{}",
                self.server.name,
                self.addr(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`: what `PUBSUB_EMULATOR_HOST` holds for clients of this server.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `"emulator"` (the Cloud SDK's Pub/Sub emulator) or `"pstest"` (Google's Go fake).
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Emulator => "emulator",
            Kind::Pstest => "pstest",
        }
    }

    /// Kills the server and starts it again on the same port. Both keep their state in memory
    /// only, so it comes back empty: every topic, subscription and message is gone (clients
    /// must create them again).
    pub fn restart(&mut self) {
        self.server.restart(false, self.boot());
        self.wait_serving();
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}
