//! ActiveMQ Artemis 2.40 (Apache-2.0; Maven Central's jars, fetched and cached by
//! `scripts/activemq.sh`) as an MQTT server on a free loopback port, its configuration and
//! data in a temporary directory. [`ActiveMq::start_with_login`] turns security on: JAAS's
//! properties login module with one user (`etc/login.config`, `etc/users.properties`,
//! `etc/roles.properties`), every permission on every address for that user's role, and
//! anonymous clients refused. Artemis's `embedded.Main` cannot authenticate anyone (its JAAS
//! security manager has no login configuration name), so that server is started by
//! `tests/servers/artemis/ArtemisWithLogin.java`, a single-source Java program run by `java`
//! itself, which names the `activemq` entry. Artemis's own embedded main class,
//! `java -cp '<jars>/*' org.apache.activemq.artemis.core.server.embedded.Main <dir>`, reads
//! `<dir>/etc/broker.xml`: one acceptor, `tcp://127.0.0.1:<port>?protocols=MQTT` (MQTT 3.1,
//! 3.1.1 and 5), anonymous clients, no JMX, no critical analyzer, no disk-usage limit (a full
//! disk would otherwise block publishers). [`ActiveMq::start`] keeps nothing on disk (a
//! restart forgets every session, subscription and retained message, as mosquitto's fixture
//! does); [`ActiveMq::start_persistent`] keeps a journal in `<dir>/data` across restarts.
//!
//! # Why Artemis, not ActiveMQ Classic
//!
//! The go-micro lesson's "ActiveMQ" is Classic. Both were tried with mosquitto-clients 2.0.11
//! (QoS 1 throughout), Artemis 2.40.0 as configured here and Classic 6.3.1 started as
//! `broker:(mqtt://127.0.0.1:<port>)?persistent=false&useJmx=false`:
//!
//! | behaviour | Artemis 2.40.0 | Classic 6.3.1 |
//! | --- | --- | --- |
//! | 2 subscribers on `$share/g/t`, 10 messages to `t`, MQTT 3.1.1 | 5 + 5, each once | SUBACK grants QoS 1, then **nothing** is delivered |
//! | the same with MQTT 5 | 5 + 5 | **no MQTT 5**: the server closes the connection |
//! | retained QoS 1 message to a later subscriber | yes | yes |
//! | 1.4 MB payload | yes (limit 256 MiB, acceptor parameter `maximumPacketSize`) | yes (256 MiB, `wireFormat.maxFrameSize`) |
//! | persistent: QoS 1 message published while a clean_session=false subscriber is away, then kill -9 and restart: delivered on its return | yes, 3.1.1 and 5 | yes, 3.1.1 |
//! | launch to first CONNACK (2 busy cores) | about 1–2 s, 1.3 s of CPU | about 0.4 s, 0.5 s of CPU |
//! | resident memory once serving (`-Xmx256m`) | about 135 MB | about 60–70 MB |
//!
//! Classic cannot serve the MQTT broker's queues (`$share/<queue>/<topic>`), so it fails the
//! broker suite; Artemis passes every behaviour above.
//!
//! # What Artemis does differently from mosquitto
//!
//! - **A race on new shared subscriptions.** When two clients subscribe to the same shared
//!   subscription that does not exist yet at the same instant, one of them may get its
//!   connection closed instead of a SUBACK (the log shows `AMQ834002` and `AMQ229019: Queue
//!   <group>.<topic> already exists`; 3 times in 15 tries of two `mosquitto_sub`s started
//!   together). Once it reconnects and subscribes again, it is served; messages published
//!   meanwhile go to the group's other member. The MQTT broker restores subscriptions after
//!   a reconnect by itself, so this costs it a reconnect, not a message.
//! - Every MQTT subscription is an Artemis queue and every topic an address (`/` and `.`
//!   swapped inside the server, invisible to clients: `a.b/c` and `a/b.c` stay distinct).
//! - It accepts TCP a moment (up to half a second here) before it answers MQTT, so
//!   [`ActiveMq::start`] waits for a CONNACK, not for the port.
//!
//! The configuration path of the main class also lists `/config/`; where that directory
//! does not exist (the usual case) the server logs a warning and goes on.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Server, free_port, require, script_once};

/// How long Artemis may take to serve MQTT (1–2 s here; a JVM on a busy machine more).
const BOOT: Duration = Duration::from_secs(60);

/// The jars' directory, fetched once per test process.
fn jars() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    script_once(&DIR, "activemq.sh")
}

/// An ActiveMQ Artemis server with one MQTT listener.
pub struct ActiveMq {
    server: Server,
    persistent: bool,
    /// The user and password clients log in with, when security is on.
    login: Option<(String, String)>,
}

/// Artemis's permission types, all granted to the logged-in user's role.
const PERMISSIONS: &[&str] = &[
    "createNonDurableQueue",
    "deleteNonDurableQueue",
    "createDurableQueue",
    "deleteDurableQueue",
    "createAddress",
    "deleteAddress",
    "consume",
    "browse",
    "send",
    "manage",
];

impl ActiveMq {
    /// Starts Artemis on a free port of 127.0.0.1, keeping nothing on disk, and waits until
    /// it answers an MQTT CONNECT.
    pub fn start() -> ActiveMq {
        ActiveMq::launch(false, None)
    }

    /// Like [`ActiveMq::start`], but clients must log in as `user` with `password` (letters
    /// and digits only); anonymous clients and wrong passwords are refused.
    pub fn start_with_login(user: &str, password: &str) -> ActiveMq {
        ActiveMq::launch(false, Some((user, password)))
    }

    /// Like [`ActiveMq::start`], but with a journal: sessions of clients that connected with
    /// clean_session=false, their subscriptions, the QoS 1 messages queued for them and
    /// retained messages outlive [`ActiveMq::restart`] (and a kill -9).
    pub fn start_persistent() -> ActiveMq {
        ActiveMq::launch(true, None)
    }

    fn launch(persistent: bool, login: Option<(&str, &str)>) -> ActiveMq {
        let java = require("java");
        let port = free_port();
        // The journal needs no fsync for the tests: a killed process's writes are in the page
        // cache already. Pool files are fixed to silence a start-up warning.
        let secure = login.is_some();
        let settings = if secure {
            let permissions: String = PERMISSIONS
                .iter()
                .map(|p| format!("<permission type=\"{p}\" roles=\"clients\"/>"))
                .collect();
            format!(
                "<security-settings><security-setting match=\"#\">{permissions}</security-setting></security-settings>"
            )
        } else {
            String::new()
        };
        // JAAS: the properties login module reads its files relative to login.config's
        // directory.
        let launcher = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../servers/artemis/ArtemisWithLogin.java"
        );
        let (jaas, jaas_flag, main) = match login {
            Some((user, password)) => (
                format!(
                    "printf 'activemq {{\\n org.apache.activemq.artemis.spi.core.security.jaas.PropertiesLoginModule required\\n org.apache.activemq.jaas.properties.user=\"users.properties\"\\n org.apache.activemq.jaas.properties.role=\"roles.properties\";\\n}};\\n' > '{{dir}}/etc/login.config' && \
                     printf '{user}={password}\\n' > '{{dir}}/etc/users.properties' && \
                     printf 'clients={user}\\n' > '{{dir}}/etc/roles.properties' && "
                ),
                " -Djava.security.auth.login.config='{dir}/etc/login.config'".to_owned(),
                format!("'{launcher}'"),
            ),
            None => (
                String::new(),
                String::new(),
                "org.apache.activemq.artemis.core.server.embedded.Main".to_owned(),
            ),
        };
        let config = format!(
            "<configuration xmlns=\"urn:activemq\"><core xmlns=\"urn:activemq:core\">\
             <persistence-enabled>{persistent}</persistence-enabled>\
             <security-enabled>{secure}</security-enabled>{settings}\
             <jmx-management-enabled>false</jmx-management-enabled>\
             <critical-analyzer>false</critical-analyzer>\
             <max-disk-usage>-1</max-disk-usage>\
             <journal-type>NIO</journal-type>\
             <paging-directory>{{dir}}/data/paging</paging-directory>\
             <bindings-directory>{{dir}}/data/bindings</bindings-directory>\
             <journal-directory>{{dir}}/data/journal</journal-directory>\
             <large-messages-directory>{{dir}}/data/large</large-messages-directory>\
             <journal-pool-files>10</journal-pool-files>\
             <journal-datasync>false</journal-datasync>\
             <acceptors><acceptor name=\"mqtt\">tcp://127.0.0.1:{port}?protocols=MQTT</acceptor></acceptors>\
             </core></configuration>\\n"
        );
        // The config is written by the shell into the server's own directory (again at each
        // restart); `exec` keeps the JVM's pid the one `Server` kills. C1 only and the serial
        // collector take a third off the start-up's CPU; the audit loggers would log every
        // message, bodies included.
        let script = format!(
            "mkdir -p '{{dir}}/etc' && printf '{config}' > '{{dir}}/etc/broker.xml' && {jaas}\
             exec '{}' -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData{jaas_flag} \
             -Dorg.slf4j.simpleLogger.log.org.apache.activemq.audit=warn -cp '{}/*' \
             {main} '{{dir}}'",
            java.display(),
            jars().display()
        );
        let server = Server::start(
            "activemq",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            &[],
            SocketAddr::from(([127, 0, 0, 1], port)),
            BOOT,
        );
        let mq = ActiveMq {
            server,
            persistent,
            login: login.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        mq.wait_serving();
        mq
    }

    /// Waits until the server answers an MQTT 3.1.1 CONNECT (clean session) with a CONNACK
    /// that accepts it: the port accepts TCP a moment before the MQTT protocol is served.
    fn wait_serving(&self) {
        let deadline = Instant::now() + BOOT;
        let login = self.login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        while !connack(self.addr(), login) {
            assert!(
                Instant::now() < deadline,
                "activemq not serving MQTT on {} within {BOOT:?}:\n{}",
                self.addr(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address clients connect to, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `mqtt://127.0.0.1:<port>`, with the user and password when security is on.
    pub fn url(&self) -> String {
        match &self.login {
            Some((user, password)) => format!("mqtt://{user}:{password}@{}", self.server.addr),
            None => format!("mqtt://{}", self.server.addr),
        }
    }

    /// Whether the server keeps a journal ([`ActiveMq::start_persistent`]).
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Kills the server (as a crash would) and starts it again on the same port: with its
    /// journal when persistent, otherwise empty (sessions and subscriptions are gone).
    pub fn restart(&mut self) {
        self.server.restart(!self.persistent, BOOT);
        self.wait_serving();
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// Whether `addr` accepts an MQTT 3.1.1 CONNECT (clean session, client id `rmicro-ready`,
/// logging in when `login` is given): a CONNACK with return code 0. A clean DISCONNECT
/// follows, so no session is left behind.
fn connack(addr: SocketAddr, login: Option<(&str, &str)>) -> bool {
    const ID: &[u8] = b"rmicro-ready";
    // "MQTT", level 4, flags (clean session; user name and password), keep-alive 60 s,
    // then the payload: client id, user name, password, each with its u16 length.
    let mut body = vec![0, 4];
    body.extend_from_slice(b"MQTT");
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    body.extend_from_slice(&[4, flags, 0, 60]);
    let fields = std::iter::once(ID).chain(
        login
            .into_iter()
            .flat_map(|(u, p)| [u.as_bytes(), p.as_bytes()]),
    );
    for field in fields {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut connect = vec![0x10, body.len() as u8];
    connect.extend_from_slice(&body);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let mut ack = [0u8; 4];
    let accepted = stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(2))))
        .and_then(|()| stream.write_all(&connect))
        .and_then(|()| stream.read_exact(&mut ack))
        .is_ok()
        && ack == [0x20, 0x02, 0x00, 0x00];
    if accepted {
        let _ = stream.write_all(&[0xe0, 0x00]);
    }
    accepted
}
