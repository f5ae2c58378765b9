//! Credentials never reach the output: `student_service` started with a password in every
//! registry and broker address it accepts (and a Consul token in the environment), against
//! servers that are not there, prints its start, its failures and its stop without the
//! password anywhere. `--help` does not echo it either.
#![cfg(all(
    feature = "consul",
    feature = "etcd",
    feature = "mqtt",
    feature = "nats",
    feature = "rabbitmq",
    feature = "redis",
    feature = "nsq"
))]

mod support;

use std::time::Duration;

use rmicro_conformance::servers::consul;
use rmicro_conformance::servers::mosquitto::Mosquitto;
use support::{Proc, SERVICE, run, seed_lock, stderr, stdout};

const SECRET: &str = "Pw4rmicroLeakTest";

#[test]
fn no_password_in_any_output() {
    // Closed ports on loopback: every connection is refused, so every error path runs.
    let combos: Vec<(String, String, String, String)> = vec![
        (
            "etcd".into(),
            format!("http://user:{SECRET}@127.0.0.1:9"),
            "rabbitmq".into(),
            format!("amqp://user:{SECRET}@127.0.0.1:9/%2f"),
        ),
        (
            "consul".into(),
            "127.0.0.1:9".into(),
            "mqtt".into(),
            format!("mqtt://user:{SECRET}@127.0.0.1:9"),
        ),
        (
            "nats".into(),
            format!("nats://user:{SECRET}@127.0.0.1:9"),
            "nats".into(),
            format!("nats://user:{SECRET}@127.0.0.1:9"),
        ),
        (
            "etcd".into(),
            format!("http://user:{SECRET}@127.0.0.1:9"),
            "redis".into(),
            format!("redis://user:{SECRET}@127.0.0.1:9"),
        ),
        (
            "etcd".into(),
            format!("http://user:{SECRET}@127.0.0.1:9"),
            "nsq".into(),
            format!("tls://:{SECRET}@127.0.0.1:9"),
        ),
    ];
    let mut procs: Vec<(String, Proc)> = combos
        .iter()
        .map(|(registry, registry_address, broker, broker_address)| {
            let args = [
                format!("--registry={registry}"),
                format!("--registry_address={registry_address}"),
                format!("--broker={broker}"),
                format!("--broker_address={broker_address}"),
                "--server_address=127.0.0.1:0".to_owned(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let label = format!("{registry} + {broker}");
            let env = [("CONSUL_HTTP_TOKEN", SECRET), ("RUST_LOG", "debug")];
            (label, Proc::spawn(SERVICE, &args, &env))
        })
        .collect();
    // Long enough for the first registration and subscription attempts to fail and be logged.
    std::thread::sleep(Duration::from_secs(4));
    let mut masked = 0;
    for (label, proc) in &mut procs {
        proc.signal("TERM");
        let _ = proc.wait_exit(Duration::from_secs(20));
        let transcript = proc.transcript();
        assert!(!transcript.is_empty(), "{label}: no output at all");
        masked += usize::from(transcript.contains(":***@"));
        assert!(
            !transcript.contains(SECRET),
            "{label}: the password is in the output:\n{}",
            transcript
                .lines()
                .filter(|l| l.contains(SECRET))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The failures that name an address did run (and masked it).
    assert!(masked >= 3, "only {masked} runs printed a masked address");
    let help = run(
        SERVICE,
        &[
            "--help",
            &format!("--broker_address=mqtt://u:{SECRET}@127.0.0.1:9"),
        ],
        &[],
    );
    let text = format!("{}{}", stdout(&help), stderr(&help));
    assert!(
        !text.contains(SECRET),
        "--help echoes the password:\n{text}"
    );
}

/// Registered for real (a Consul agent, mosquitto, both on loopback, the Consul token and the
/// broker's password given), the service's record holds neither: not in Consul's catalog as
/// stored (`Meta`, tags), not in the record a go-micro client decodes from it.
#[test]
fn no_password_in_the_registry_record() {
    let _lock = seed_lock();
    let agent = consul::start();
    let broker = Mosquitto::start();
    let broker_address = broker.url().replace("://", &format!("://user:{SECRET}@"));
    let args = [
        "--registry=consul".to_owned(),
        format!("--registry_address={}", consul::address(&agent)),
        "--broker=mqtt".to_owned(),
        format!("--broker_address={broker_address}"),
        "--server_address=127.0.0.1:0".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut service = Proc::spawn(SERVICE, &args, &[("CONSUL_HTTP_TOKEN", SECRET)]);
    service.wait_for("registered", support::UP);

    let (status, catalog) = consul::get(agent.addr, "/v1/catalog/service/student_service", None)
        .expect("the catalog answers");
    assert_eq!(status, 200, "{catalog}");
    assert!(
        catalog.contains("student_service-"),
        "registered: {catalog}"
    );
    assert!(
        !catalog.contains(SECRET),
        "the catalog holds the password: {catalog}"
    );

    let mut opts = rmicro::config::Options::default();
    opts.registry = "consul".to_owned();
    opts.registry_address = consul::address(&agent);
    let registry = rmicro::service::registry_from(&opts, std::net::Ipv4Addr::LOCALHOST.into())
        .expect("registry");
    let record = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(registry.get_service("student_service"))
        .expect("the record");
    let decoded = serde_json::to_string(&record).expect("json");
    assert!(decoded.contains("\"broker\":\"mqtt\""), "{decoded}");
    assert!(
        !decoded.contains(SECRET),
        "the record holds the password: {decoded}"
    );
    assert!(
        !decoded.contains("user:"),
        "the record holds the broker's user: {decoded}"
    );

    service.signal("TERM");
    let _ = service.wait_exit(Duration::from_secs(20));
    assert!(!service.transcript().contains(SECRET));
}
