//! Programs run as real processes by the tests: [`Proc`] for one that runs beside the test
//! (its output read line by line), [`run`] for one that runs to completion.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running program, its output lines collected as they come; killed when dropped.
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
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
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

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
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
