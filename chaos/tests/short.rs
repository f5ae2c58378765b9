//! The fault suite's short plan, as CI runs it: every scenario against real servers and real
//! service processes (this package's executable), failing when an aim is missed. The table
//! rows are printed (`--nocapture`).

use rmicro_chaos::scenarios::{self, Ctx};
use rmicro_chaos::{Plan, TABLE_HEADER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_plan_meets_every_aim() {
    let ctx = Ctx {
        plan: Plan::short(),
        exe: env!("CARGO_BIN_EXE_rmicro-chaos").to_owned(),
        plot: None,
    };
    println!("{TABLE_HEADER}");
    let mut missed = Vec::new();
    for name in scenarios::of(&ctx.plan) {
        let row = scenarios::run(&ctx, name).await;
        println!("{}", row.markdown());
        if !row.passed() {
            missed.push(row.markdown());
        }
    }
    assert!(missed.is_empty(), "aims missed:\n{}", missed.join("\n"));
}
