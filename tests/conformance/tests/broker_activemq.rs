//! The broker suite against the MQTT broker on ActiveMQ (Artemis 2.40, its MQTT acceptor;
//! one server per check, on a free loopback port): the same plugin and the same checks as on
//! mosquitto, so the plugin is not tuned to one server. ActiveMQ Classic is the lesson's
//! "ActiveMQ" but cannot serve queues (see the fixture's documentation).
#![cfg(feature = "mqtt")]

use std::sync::Arc;

use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::activemq::ActiveMq;

fn fixture() -> OnServer<ActiveMq> {
    OnServer::new("activemq", ActiveMq::start(), |server| {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![server.url()];
        Ok(Arc::new(MqttBroker::new(opts)?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());

/// With security on, the user and password of the address log in (a message goes round), and
/// a wrong password or none is refused at `connect` with the server's reason, the password
/// masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_log_in_and_wrong_ones_are_refused() {
    use rmicro::broker::{Broker as _, Message, PublishOptions, SubscribeOptions};
    use rmicro_conformance::broker::{body, recv, sink, topic};

    let server = tokio::task::block_in_place(|| ActiveMq::start_with_login("davie", "s3cret"));
    let broker = |url: String| {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![url];
        opts.connect_timeout = std::time::Duration::from_secs(5);
        MqttBroker::new(opts).expect("valid options")
    };
    let b = broker(server.url());
    b.connect().await.expect("the right password logs in");
    let t = topic("login");
    let (_sub, mut rx) = sink(&b, &t, SubscribeOptions::default()).await;
    b.publish(&t, Message::new("in"), PublishOptions::default())
        .await
        .expect("publish when logged in");
    assert_eq!(body(&recv(&mut rx, "the logged-in message").await), "in");
    let addr = server.addr();
    for (url, what) in [
        (format!("mqtt://davie:wrong@{addr}"), "a wrong password"),
        (format!("mqtt://{addr}"), "no login"),
    ] {
        let refused = broker(url);
        let e = refused.connect().await.expect_err(what);
        println!("{what}: {e}");
        assert!(e.detail.contains("refused the connection"), "{what}: {e}");
        assert!(
            !e.detail.contains("wrong"),
            "{what}: the password is masked: {e}"
        );
        let _ = refused.disconnect().await;
    }
    b.disconnect().await.expect("disconnect");
}
