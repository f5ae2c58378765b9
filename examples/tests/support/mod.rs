//! Running the example programs as real processes.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[allow(unused_imports)]
pub use rmicro_conformance::process::{Proc, Stream, field, run, stderr, stdout};

/// The seed's programs, built by cargo for the tests.
pub const SERVICE: &str = env!("CARGO_BIN_EXE_student_service");
/// `student_client`.
pub const CLIENT: &str = env!("CARGO_BIN_EXE_student_client");
/// `message_subscriber`.
pub const SUBSCRIBER: &str = env!("CARGO_BIN_EXE_message_subscriber");
/// `message_worker`.
pub const WORKER: &str = env!("CARGO_BIN_EXE_message_worker");
/// `message_publisher`.
pub const PUBLISHER: &str = env!("CARGO_BIN_EXE_message_publisher");
/// The seed's student, as `student_client` prints it.
pub const DAVIE: &str =
    r#"{"name":"davie","classes":"软件工程专业","grade":80,"phone":"12345678901"}"#;
/// go-micro's error when no `student_service` node is found, to the letter.
pub const NOT_FOUND: &str = r#"{"id":"go.micro.client","code":500,"detail":"error selecting student_service node: not found","status":"Internal Server Error"}"#;
/// The seed's topic.
pub const TOPIC: &str = "go.micro.srv.message";
/// How long a program may take to start.
pub const UP: Duration = Duration::from_secs(30);

/// Tests that use the seed's fixed service names take this lock, so that no two of them
/// see each other's processes on the shared mDNS.
static SEED_NAMES: Mutex<()> = Mutex::new(());

pub fn seed_lock() -> MutexGuard<'static, ()> {
    SEED_NAMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds the go-micro programs once per test run (a no-op when they are up to date) and
/// returns the directory that holds them.
pub fn go_bin_dir() -> &'static PathBuf {
    rmicro_conformance::gomicro::bin_dir()
}

/// The path of one go-micro program: `client`, `service`, `publisher`, `subscriber`,
/// `inspect` (go-micro v4), `v5/registry` (go-micro v5).
pub fn go(program: &str) -> String {
    rmicro_conformance::gomicro::program(program)
}

/// The JSON after `label ` on the one line of `text` that starts with it.
pub fn labelled_json(text: &str, label: &str) -> serde_json::Value {
    let prefix = format!("{label} ");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("`{line}` is not JSON: {e}"))
}

/// The header JSON and the body of a go-micro subscriber's `received header=<json> body=<body>`
/// line.
pub fn received(line: &str) -> (serde_json::Value, String) {
    let rest = line
        .split_once("received header=")
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("not a received line: {line}"));
    let (header, body) = rest
        .split_once(" body=")
        .unwrap_or_else(|| panic!("no body in: {line}"));
    let header = serde_json::from_str(header).unwrap_or_else(|e| panic!("header {header}: {e}"));
    (header, body.to_owned())
}
