//! The go-micro programs of the interop suite (`tests/interop`), built by
//! `scripts/interop.sh` into `~/.cache/rmicro/interop-bin` (a no-op when up to date).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// Builds the go-micro programs once per test process and returns the directory that holds
/// them; panics, saying what is missing, when they cannot be built.
pub fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = DIR.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/interop.sh");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run `bash {script}`: {e}"))?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
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
                text(&out.stdout),
                text(&out.stderr)
            ));
        }
        println!(
            "go-micro programs ready in {:?}: {}",
            started.elapsed(),
            text(&out.stdout).trim()
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
/// `inspect` (go-micro v4), `v5/registry`, `v5/tracecall`, `v5/traceserve` (go-micro v5).
pub fn program(name: &str) -> String {
    bin_dir().join(name).display().to_string()
}
