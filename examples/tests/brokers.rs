//! The seed's message programs on the brokers of the lesson's second list, each by flag
//! alone: `message_subscriber`, a `message_worker` (queue group `students`) and
//! `message_publisher`, all started with `--broker=<name> --broker_address=<server>` against
//! a real server on loopback. The subscriber and the worker each get the student once.
//!
//! Where the Go module proxy serves go-micro's plugin for the broker (nsq v4 v1.1.0, kafka v4
//! v1.2.0; not googlepubsub, whose v4 v1.2.0 and v5 v1.0.0 it refuses), go-micro's programs
//! (`tests/interop/go`: publisher, subscriber) talk to rmicro's through it, both ways.
//!
//! Run one with `cargo test -p rmicro-examples --features nsq --test brokers`.

mod support;

#[cfg(any(feature = "nsq", feature = "kafka", feature = "googlepubsub"))]
use support::{DAVIE, PUBLISHER, Proc, SUBSCRIBER, UP, WORKER, run, stderr, stdout};
#[cfg(any(feature = "nsq", feature = "kafka"))]
use support::{TOPIC, go, received};

/// go-micro's publisher (plain `broker.Publish`, then `client.Publish`) -> rmicro's
/// subscriber, and rmicro's publisher -> go-micro's subscriber, through `broker`'s plugin on
/// both sides. `go_address` is the server as go-micro's plugin takes it.
#[cfg(any(feature = "nsq", feature = "kafka"))]
fn go_micro_both_ways(broker: &str, rust_flags: &[String], go_address: &str) {
    let args: Vec<&str> = rust_flags.iter().map(String::as_str).collect();
    let go_flags = [
        format!("--broker={broker}"),
        format!("--broker_address={go_address}"),
    ];
    let go_args: Vec<&str> = go_flags.iter().map(String::as_str).collect();

    let mut subscriber = Proc::spawn(SUBSCRIBER, &args, &[]);
    subscriber.wait_for("started", UP);
    let out = run(&go("publisher"), &go_args, &[]);
    assert_eq!(stdout(&out).trim(), "published", "stderr: {}", stderr(&out));
    // Seed style: only the `name` header, no Content-Type: decoded all the same.
    subscriber.wait_for(&format!("received: {DAVIE} (name header: davie)"), UP);
    let mut event_args = go_args.clone();
    event_args.push("--event");
    let out = run(&go("publisher"), &event_args, &[]);
    assert_eq!(stdout(&out).trim(), "published", "stderr: {}", stderr(&out));
    subscriber.wait_for(
        &format!("received: {DAVIE} (name header: ) as application/json"),
        UP,
    );

    let mut peer = Proc::spawn(&go("subscriber"), &go_args, &[]);
    peer.wait_for("ready", UP);
    let out = run(PUBLISHER, &args, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = peer.wait_for("received header=", UP);
    let (header, body) = received(&line);
    assert_eq!(body, DAVIE);
    assert_eq!(header["name"], "davie", "{header}");
    assert_eq!(header["Content-Type"], "application/json", "{header}");
    assert_eq!(header["Micro-Topic"], TOPIC, "{header}");
    assert!(header["Micro-ID"].is_string(), "{header}");
}

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

#[cfg(feature = "nsq")]
#[test]
fn go_micro_talks_to_rmicro_over_nsq_both_ways() {
    let server = rmicro_conformance::servers::nsq::Nsqd::start();
    go_micro_both_ways(
        "nsq",
        &[
            "--broker=nsq".to_owned(),
            format!("--broker_address={}", server.tcp_address()),
        ],
        &server.tcp_address(),
    );
}

#[cfg(feature = "kafka")]
#[test]
fn go_micro_talks_to_rmicro_over_kafka_both_ways() {
    let server = rmicro_conformance::servers::kafka::Kafka::start();
    go_micro_both_ways(
        "kafka",
        &[
            "--broker=kafka".to_owned(),
            format!("--broker_address={}", server.address()),
        ],
        &server.address(),
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
