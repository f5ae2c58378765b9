//! The broker suite against the MQTT broker on a real mosquitto (one per test, on a free
//! loopback port). Every `broker()` is its own `MqttBroker`, with its own connections.
#![cfg(feature = "mqtt")]

use std::sync::Arc;

use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::mosquitto::Mosquitto;

fn fixture() -> OnServer<Mosquitto> {
    OnServer::new("mosquitto", Mosquitto::start(), |server| {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![server.url()];
        Ok(Arc::new(MqttBroker::new(opts)?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());

mod persistent_sessions {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use rmicro::broker::mqtt::{MqttBroker, MqttBrokerOptions};
    use rmicro::broker::{Broker as _, Message, PublishOptions, SubscribeOptions};
    use rmicro_conformance::broker::{body, recv, sink, topic};
    use rmicro_conformance::proxy::Proxy;
    use rmicro_conformance::servers::mosquitto::Mosquitto;
    use tokio::sync::mpsc;

    fn broker(address: String, session: Option<&str>) -> MqttBroker {
        let mut opts = MqttBrokerOptions::default();
        opts.addresses = vec![address];
        opts.session = session.map(str::to_owned);
        opts.max_backoff = Duration::from_millis(500);
        MqttBroker::new(opts).expect("options")
    }

    async fn drain(
        rx: &mut mpsc::UnboundedReceiver<rmicro::broker::Event>,
        want: usize,
    ) -> HashSet<String> {
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while seen.len() < want && Instant::now() < deadline {
            if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
            {
                seen.insert(body(&ev));
            }
        }
        // Anything more would be a duplicate or a stray.
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            seen.insert(body(&ev));
        }
        seen
    }

    /// A queue subscriber cut off from mosquitto (a partition, a proxy restart) with a session
    /// name gets, once the link heals, every message acknowledged to publishers meanwhile: the
    /// server kept its shared subscription and queued them. With a clean session (the
    /// default) those messages went to no one. `disconnect` ends the session.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_named_session_keeps_a_queues_messages_while_the_subscriber_is_cut_off() {
        const N: usize = 100;
        let server = Mosquitto::start();
        let link = Proxy::start(server.addr()).await;
        let via = format!("mqtt://{}", link.addr());
        let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let topic = topic("session");
        let kept = broker(via.clone(), Some(&name));
        let clean = broker(via, None);
        let (_k, mut kept_rx) = sink(&kept, &topic, SubscribeOptions::queue("kept")).await;
        let (_c, mut clean_rx) = sink(&clean, &topic, SubscribeOptions::queue("clean")).await;
        let publisher = broker(server.url(), None);
        let publish = |text: String| {
            let publisher = publisher.clone();
            let topic = topic.clone();
            async move {
                publisher
                    .publish(&topic, Message::new(text), PublishOptions::default())
                    .await
                    .expect("publish, acknowledged by the server");
            }
        };
        publish("before".into()).await;
        assert_eq!(body(&recv(&mut kept_rx, "kept, before").await), "before");
        assert_eq!(body(&recv(&mut clean_rx, "clean, before").await), "before");

        link.cut();
        // Until mosquitto has seen both subscribers go (the proxy closed its side too).
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..N {
            publish(format!("m{i}")).await;
        }
        link.heal();
        let seen = drain(&mut kept_rx, N).await;
        let lost = (0..N).filter(|i| !seen.contains(&format!("m{i}"))).count();
        let clean_seen = drain(&mut clean_rx, 0).await;
        println!(
            "measured: named session {} of {N} delivered after the heal, clean session {}",
            N - lost,
            clean_seen.len()
        );
        assert_eq!(lost, 0, "acknowledged messages lost by the named session");
        assert_eq!(
            clean_seen.len(),
            0,
            "a clean session got messages sent while it was away"
        );

        // `disconnect` ends the session: nothing is kept for the name afterwards.
        kept.disconnect().await.expect("disconnect");
        for i in 0..10 {
            publish(format!("gone{i}")).await;
        }
        let again = broker(format!("mqtt://{}", link.addr()), Some(&name));
        let (_a, mut again_rx) = sink(&again, &topic, SubscribeOptions::queue("kept")).await;
        publish("after".into()).await;
        assert_eq!(
            body(&recv(&mut again_rx, "after").await),
            "after",
            "messages were kept for an ended session"
        );
    }
}
