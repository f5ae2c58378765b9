//! The seed's message programs on the brokers of the lesson's second list, each by flag
//! alone: `message_subscriber`, a `message_worker` (queue group `students`) and
//! `message_publisher`, all started with `--broker=<name> --broker_address=<server>` against
//! a real server on loopback. The subscriber and the worker each get the student once.
//!
//! Run one with `cargo test -p rmicro-examples --features nsq --test brokers`.

mod support;

#[cfg(any(feature = "nsq", feature = "kafka", feature = "googlepubsub"))]
use support::{DAVIE, PUBLISHER, Proc, SUBSCRIBER, UP, WORKER, run, stderr, stdout};

/// Runs the seed's scenario with `flags` and checks every program's part of it.
#[cfg(any(feature = "nsq", feature = "kafka", feature = "googlepubsub"))]
fn seed_scenario(broker: &str, flags: &[String], env: &[(&str, &str)]) {
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut subscriber = Proc::spawn(SUBSCRIBER, &args, env);
    let started = subscriber.wait_for("started", UP);
    assert!(started.contains(broker), "{started}");
    let mut worker = Proc::spawn(WORKER, &args, env);
    worker.wait_for("started", UP);
    // Subscriptions are in effect once the programs say they started; a broker may still be
    // joining groups (Kafka), which costs time, not messages.
    let out = run(PUBLISHER, &args, env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let want = format!("received: {DAVIE} (name header: davie)");
    subscriber.wait_for(&want, UP);
    worker.wait_for(&format!("worked: {DAVIE}"), UP);
    subscriber.drain(std::time::Duration::from_millis(500));
    assert_eq!(
        subscriber.count("received:"),
        1,
        "{}",
        subscriber.transcript()
    );
    assert_eq!(worker.count("worked:"), 1, "{}", worker.transcript());
}

#[cfg(feature = "nsq")]
#[test]
fn the_seed_runs_on_nsq_by_flag() {
    let server = rmicro_conformance::servers::nsq::Nsqd::start();
    seed_scenario(
        "nsq",
        &[
            "--broker=nsq".to_owned(),
            format!("--broker_address={}", server.tcp_address()),
        ],
        &[],
    );
}

#[cfg(feature = "kafka")]
#[test]
fn the_seed_runs_on_kafka_by_flag() {
    let server = rmicro_conformance::servers::kafka::Kafka::start();
    seed_scenario(
        "kafka",
        &[
            "--broker=kafka".to_owned(),
            format!("--broker_address={}", server.address()),
        ],
        &[],
    );
}

#[cfg(feature = "googlepubsub")]
#[test]
fn the_seed_runs_on_google_pubsub_by_flag() {
    let server = rmicro_conformance::servers::pubsub::PubSub::start();
    let host = server.host();
    // As go-micro's users reach an emulator: through PUBSUB_EMULATOR_HOST, no address flag.
    seed_scenario(
        "googlepubsub",
        &["--broker=googlepubsub".to_owned()],
        &[("PUBSUB_EMULATOR_HOST", host.as_str())],
    );
}
