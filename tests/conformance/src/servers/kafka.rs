//! Apache Kafka 4.4 (Maven Central's jars, fetched and cached by `scripts/kafka.sh`) in KRaft
//! mode, without ZooKeeper: one process is both broker and controller, on two free loopback
//! ports, its data in a temporary directory. Its storage is formatted once
//! (`kafka.tools.StorageTool format`, about half a second), then it runs as
//! `java -cp '<jars>/*' kafka.Kafka server.properties`.
//!
//! Settings for tests: every internal topic has one replica (there is one broker) and
//! `__consumer_offsets` one partition, topics are created on first use with one partition (so
//! in a consumer group only one member is given messages: each message is still consumed
//! once), a group's first rebalance does not wait, and the broker heartbeats every 500 ms with
//! a 2 s session (Kafka's 2 s and 9 s would make a restart take 9 s more: a broker killed and
//! started again is refused until its old registration expires).
//!
//! The JVM: a 256 MiB heap, the serial collector, the C1 compiler only, and the
//! class-data-sharing archive `scripts/kafka.sh` makes when there is one. Kafka then serves
//! within about 1.5–2.5 s of the start (4–5 s without the archive on a busy machine), and
//! 3 s after a restart; it takes about 190 MB of memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::tls::Certs;
use super::{Server, free_port, require, script_once};

/// How long Kafka may take to serve (2–5 s here; a JVM on a busy machine more).
const BOOT: Duration = Duration::from_secs(90);

/// The cluster id the storage is formatted with (any 16 bytes in URL-safe base64).
const CLUSTER_ID: &str = "rmicro-kafka-test0000A";

/// The JVM flags, the same as `scripts/kafka.sh` makes its archive with (an archive is only
/// used by a JVM with the same class path and garbage collector).
const JVM_FLAGS: &str = "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1";

/// What the broker logs once it serves: the broker's listener opens, and this is logged, only
/// after the controller has unfenced the broker, when it takes produce requests.
const STARTED: &str = "Kafka Server started";

/// The jars' directory, fetched once per test process.
fn jars() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    script_once(&DIR, "kafka.sh")
}

/// The largest record the test server takes (its `message.max.bytes`).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A single-node Kafka cluster.
pub struct Kafka {
    server: Server,
}

impl Kafka {
    /// Formats a Kafka's storage in a fresh temporary directory, starts it on free ports of
    /// 127.0.0.1 and waits until it serves.
    pub fn start() -> Kafka {
        Self::start_with(None, None)
    }

    /// The same, with SASL/PLAIN on the client listener: clients log in as `user` with
    /// `password` (the broker itself as `admin`).
    pub fn start_sasl(user: &str, password: &str) -> Kafka {
        Self::start_with(Some((user, password)), None)
    }

    /// The same, the client listener speaking TLS only (`SSL`), presenting `certs`' server
    /// certificate from a PEM key store (key and certificate in one file); clients need no
    /// certificate.
    pub fn start_tls(certs: &Certs) -> Kafka {
        Self::start_with(None, Some(certs))
    }

    fn start_with(sasl: Option<(&str, &str)>, tls: Option<&Certs>) -> Kafka {
        let java = require("java");
        let jars = jars();
        let port = free_port();
        let controller = free_port();
        let listener = match (sasl.is_some(), tls.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SASL_PLAINTEXT",
            (false, true) => "SSL",
            (true, true) => "SASL_SSL",
        };
        let tls_config = tls.map(|certs| {
            let store = certs.dir().join("kafka-keystore.pem");
            let key = std::fs::read_to_string(certs.key()).expect("the server key");
            let cert = std::fs::read_to_string(certs.cert()).expect("the server certificate");
            std::fs::write(&store, format!("{key}{cert}")).expect("writing the key store");
            [
                format!(
                    "listener.security.protocol.map={listener}:{listener},CONTROLLER:PLAINTEXT"
                ),
                format!("inter.broker.listener.name={listener}"),
                "ssl.keystore.type=PEM".to_owned(),
                format!("ssl.keystore.location={}", store.display()),
                "ssl.truststore.type=PEM".to_owned(),
                format!("ssl.truststore.location={}", certs.ca().display()),
                "ssl.client.auth=none".to_owned(),
            ]
        });
        let config = [
            "process.roles=broker,controller".to_owned(),
            "node.id=1".to_owned(),
            format!("controller.quorum.voters=1@127.0.0.1:{controller}"),
            format!("listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
            "controller.listener.names=CONTROLLER".to_owned(),
            "log.dirs={dir}/data".to_owned(),
            "num.partitions=1".to_owned(),
            "auto.create.topics.enable=true".to_owned(),
            "offsets.topic.replication.factor=1".to_owned(),
            "offsets.topic.num.partitions=1".to_owned(),
            "transaction.state.log.replication.factor=1".to_owned(),
            "transaction.state.log.min.isr=1".to_owned(),
            "group.initial.rebalance.delay.ms=0".to_owned(),
            "group.min.session.timeout.ms=500".to_owned(),
            "broker.heartbeat.interval.ms=500".to_owned(),
            "broker.session.timeout.ms=2000".to_owned(),
            // The log cleaner (for compacted topics such as __consumer_offsets) would take
            // 128 MiB of the heap for itself.
            "log.cleaner.dedupe.buffer.size=4194304".to_owned(),
            // Records up to 4 MiB (the default is 1 MiB): a 1 MiB body is about 1.4 MB as
            // go-micro's envelope.
            format!("message.max.bytes={MAX_MESSAGE_BYTES}"),
        ]
        .into_iter()
        .chain(tls_config.into_iter().flatten())
        .chain(sasl.into_iter().flat_map(|(user, password)| {
            [
                "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
                    .to_owned(),
                "inter.broker.listener.name=SASL_PLAINTEXT".to_owned(),
                "sasl.enabled.mechanisms=PLAIN".to_owned(),
                "sasl.mechanism.inter.broker.protocol=PLAIN".to_owned(),
                format!(
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config=\
                     org.apache.kafka.common.security.plain.PlainLoginModule required \
                     username=\"admin\" password=\"admin-secret\" \
                     user_admin=\"admin-secret\" user_{user}=\"{password}\";"
                ),
            ]
        }))
        .collect::<Vec<_>>()
        .join("\\n");
        let mut flags = JVM_FLAGS.to_owned();
        let archive = jars.join("kafka.jsa");
        if archive.is_file() {
            flags += &format!(" -XX:SharedArchiveFile='{}'", archive.display());
        }
        flags += " -Dorg.slf4j.simpleLogger.showDateTime=true \
                   -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS";
        let java = java.display();
        let classpath = format!("{}/*", jars.display());
        // Formats the storage unless it is there already (a restart keeps the data).
        let script = format!(
            "printf '{config}\\n' > '{{dir}}/server.properties' && \
             {{ [ -e '{{dir}}/data/meta.properties' ] || '{java}' {flags} -cp '{classpath}' \
             kafka.tools.StorageTool format --config '{{dir}}/server.properties' \
             --cluster-id {CLUSTER_ID}; }} && \
             exec '{java}' {flags} -cp '{classpath}' kafka.Kafka '{{dir}}/server.properties'"
        );
        let mut server = Server::start(
            "kafka",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            SocketAddr::from(([127, 0, 0, 1], port)),
            BOOT,
        );
        server.extra_ports.push(controller);
        let kafka = Kafka { server };
        kafka.wait_serving();
        kafka
    }

    /// Waits until the broker's log says it started (the listener accepting connections,
    /// which [`Server`] waits for, comes a moment before).
    fn wait_serving(&self) {
        let deadline = Instant::now() + BOOT;
        loop {
            let log = self.log();
            if log.contains(STARTED) {
                return;
            }
            assert!(
                !log.contains("Exiting Kafka"),
                "kafka failed to start:\n{log}"
            );
            assert!(
                Instant::now() < deadline,
                "kafka not serving within {BOOT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address clients bootstrap from, `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// The address clients bootstrap from.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Kills Kafka (as a crash would) and starts it again on the same ports with the same
    /// data: topics, messages and committed offsets are kept.
    pub fn restart(&mut self) {
        self.server.restart(false, BOOT);
        self.wait_serving();
    }

    /// Kills Kafka (as a crash would).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}
