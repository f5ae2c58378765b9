//! Running the example programs as real processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

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

/// A running example; killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    /// The program's standard input, open until [`Proc::close_stdin`].
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Stream, String)>,
    pub seen: Vec<(Stream, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Proc {
    pub fn spawn(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn example");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, pipe) in [
            (Stream::Out, Box::new(out) as Box<dyn std::io::Read + Send>),
            (Stream::Err, Box::new(err)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            name: exe.rsplit('/').next().unwrap_or(exe).to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Closes the program's standard input (end of file for a program reading it).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `limit` for a line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        if let Some((_, l)) = self.seen.iter().find(|(_, l)| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.1.contains(needle);
                    self.seen.push(line.clone());
                    if hit {
                        return line.1;
                    }
                }
                Err(_) => panic!(
                    "{}: no line containing {needle:?} within {limit:?}; output so far:\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
    }

    /// Collects whatever arrives within `window`.
    pub fn drain(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
    }

    pub fn count(&self, needle: &str) -> usize {
        self.seen.iter().filter(|(_, l)| l.contains(needle)).count()
    }

    pub fn transcript(&self) -> String {
        self.seen
            .iter()
            .map(|(s, l)| format!("{s:?}: {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `address=` field of the "started" log line.
    pub fn address(&mut self) -> String {
        let line = self.wait_for("started", Duration::from_secs(30));
        field(&line, "address").unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.drain(Duration::from_millis(200));
                return status.code();
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {limit:?}:\n{}",
                    self.name,
                    self.transcript()
                );
            }
            self.drain(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a tracing log line (ANSI codes stripped).
pub fn field(line: &str, key: &str) -> Option<String> {
    let clean = strip_ansi(line);
    let pat = format!("{key}=");
    clean
        .split_whitespace()
        .find_map(|tok| tok.strip_prefix(&pat))
        .map(|v| v.trim_matches('"').to_owned())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a program to completion (bounded).
pub fn run(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("program did not finish within 60 s")
        .expect("wait")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds the go-micro programs once per test run (a no-op when they are up to date) and
/// returns the directory that holds them.
pub fn go_bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = DIR.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/interop.sh");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run `bash {script}`: {e}"))?;
        if !out.status.success() {
            let go = if Command::new("go").arg("version").output().is_err() {
                "the interop tests need the Go toolchain (`go` on PATH, https://go.dev/dl) to \
                 build the go-micro programs; "
            } else {
                ""
            };
            return Err(format!(
                "{go}`bash {script}` failed ({}):\n{}{}",
                out.status,
                stdout(&out),
                stderr(&out)
            ));
        }
        println!(
            "go-micro programs ready in {:?}: {}",
            started.elapsed(),
            stdout(&out).trim()
        );
        let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
        Ok(PathBuf::from(home).join(".cache/rmicro/interop-bin"))
    });
    match built {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

/// The path of one go-micro program: `client`, `service`, `publisher`, `subscriber`,
/// `inspect` (go-micro v4), `v5/registry` (go-micro v5).
pub fn go(program: &str) -> String {
    go_bin_dir().join(program).display().to_string()
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
