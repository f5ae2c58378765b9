//! `rmicro-chaos`: runs the fault scenarios and prints one table row each.
//!
//! ```text
//! cargo run --release -p rmicro-chaos              # the long plan, every scenario
//! cargo run --release -p rmicro-chaos -- --short   # the plan CI runs
//! cargo run --release -p rmicro-chaos -- --only kill-9,partition-etcd
//! ```

use std::process::ExitCode;

use rmicro_chaos::scenarios::{self, Ctx};
use rmicro_chaos::service::{ChaosService, ROLE};
use rmicro_chaos::{Plan, TABLE_HEADER};

const HELP: &str = "\
rmicro-chaos: rmicro's fault suite. Each scenario starts real servers and real service
processes on 127.0.0.1, drives a steady load, causes one fault, and prints one table row with
its figures and whether its aim was met. Exits 1 when an aim was missed, 2 on bad arguments.

The servers come from the test fixtures: run `bash scripts/setup.sh` once (Debian packages,
consul built from the Go module proxy).

Options:
  --short          the short plan (2 s steady, TTL 4 s, interval 2 s, registry down 6 s),
                   as CI runs it, without the rows that only measure and with one poison
                   row; default: the long plan (10 s, TTL 10 s, interval 5 s, 30 s)
  --only A,B       only these scenarios
  --plot DIR       write the growth rows' curves as SVG files into DIR
  --list           list the scenarios and exit
  -h, --help       this text
";

#[rmicro::main]
async fn main() -> ExitCode {
    if std::env::var_os(ROLE).is_some() {
        return match ChaosService.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let mut plan = Plan::long();
    let mut only: Option<Vec<String>> = None;
    let mut plot = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--list" => {
                for name in scenarios::ALL {
                    println!("{name}");
                }
                return ExitCode::SUCCESS;
            }
            "--short" => plan = Plan::short(),
            "--plot" => match args.next() {
                Some(dir) => plot = Some(std::path::PathBuf::from(dir)),
                None => return bad("`--plot` needs a directory"),
            },
            "--only" => match args.next() {
                Some(list) => only = Some(list.split(',').map(|s| s.trim().to_owned()).collect()),
                None => return bad("`--only` needs a comma-separated list of scenarios"),
            },
            other => return bad(&format!("unknown argument `{other}`")),
        }
    }
    let names: Vec<String> = match only {
        Some(names) => {
            if let Some(unknown) = names.iter().find(|n| !scenarios::ALL.contains(&n.as_str())) {
                return bad(&format!(
                    "unknown scenario `{unknown}` (`--list` lists them)"
                ));
            }
            names
        }
        None => scenarios::of(&plan)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe.display().to_string(),
        Err(e) => {
            eprintln!("rmicro-chaos: cannot find its own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx { plan, exe, plot };
    println!("{TABLE_HEADER}");
    let mut missed = 0;
    for name in &names {
        eprintln!("rmicro-chaos: running {name}");
        let row = scenarios::run(&ctx, name).await;
        println!("{}", row.markdown());
        if !row.passed() {
            missed += 1;
        }
    }
    if missed > 0 {
        eprintln!("rmicro-chaos: {missed} aim(s) missed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn bad(why: &str) -> ExitCode {
    eprintln!("rmicro-chaos: {why}\n\n{HELP}");
    ExitCode::from(2)
}
