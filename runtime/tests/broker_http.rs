//! go-micro's http broker over real sockets on 127.0.0.1: several `HttpBroker`s share one
//! in-process registry, as separate services share mDNS.
//!
//! `publish` returns after every chosen subscriber has run its handler and replied, so once it
//! returns, what the handlers saw is final: the tests count deliveries without waiting.

use std::sync::Arc;
use std::time::Duration;

use rmicro::broker::http::{BROADCAST_VERSION, HttpBroker, HttpBrokerOptions, SERVICE_NAME};
use rmicro::broker::{
    Broker, Event, HEADER_ID, HEADER_TOPIC, Handler, Message, PublishOptions, SubscribeOptions,
    handler,
};
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{Metadata, Node, RegisterOptions, Registry, Service, SharedRegistry};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

type Inbox = mpsc::UnboundedReceiver<(&'static str, Event)>;

/// A handler that forwards what it gets, tagged, to `tx`.
fn forward(tag: &'static str, tx: &mpsc::UnboundedSender<(&'static str, Event)>) -> Handler {
    let tx = tx.clone();
    handler(move |event: Event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((tag, event));
            Ok(())
        }
    })
}

/// Everything delivered so far.
fn drain(rx: &mut Inbox) -> Vec<(&'static str, Event)> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        out.push(item);
    }
    out
}

fn tags(items: &[(&'static str, Event)]) -> Vec<&'static str> {
    let mut v: Vec<_> = items.iter().map(|(t, _)| *t).collect();
    v.sort_unstable();
    v
}

fn shared() -> SharedRegistry {
    Arc::new(MemoryRegistry::new())
}

async fn connected(registry: &SharedRegistry) -> HttpBroker {
    let broker = HttpBroker::new(Arc::clone(registry), HttpBrokerOptions::default());
    broker.connect().await.expect("connect");
    broker
}

async fn publish(broker: &HttpBroker, topic: &str, msg: Message) -> rmicro::Result<()> {
    tokio::time::timeout(
        Duration::from_secs(10),
        broker.publish(topic, msg, PublishOptions::default()),
    )
    .await
    .expect("publish returns within 10 s")
}

/// Node ids of `micro.http.broker` registered for `topic`.
async fn nodes_for(registry: &SharedRegistry, topic: &str) -> Vec<(String, Node)> {
    registry
        .get_service(SERVICE_NAME)
        .await
        .expect("get")
        .into_iter()
        .flat_map(|s| {
            let version = s.version;
            s.nodes
                .into_iter()
                .map(move |n| (version.clone(), n))
                .collect::<Vec<_>>()
        })
        .filter(|(_, n)| n.metadata.get("topic").is_some_and(|t| t == topic))
        .collect()
}

/// One raw HTTP/1.1 exchange: `request` as bytes, the reply as (status, body).
async fn raw_http(address: &str, request: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.expect("read");
        reply
    };
    let reply = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("reply within 5 s");
    let text = String::from_utf8(reply).expect("utf-8 reply");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post(address: &str, path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn connect_binds_a_loopback_port_and_registers_go_micro_records() {
    let registry = shared();
    let broker = HttpBroker::new(Arc::clone(&registry), HttpBrokerOptions::default());
    assert_eq!(broker.name(), "http");
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = broker
        .subscribe("t", forward("x", &tx), SubscribeOptions::default())
        .await
        .expect_err("subscribe before connect");
    assert!(err.detail.contains("call `connect` first"), "{err}");

    broker.connect().await.expect("connect");
    broker.connect().await.expect("connect is idempotent");
    let address = broker.address();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert!(!address.ends_with(":0"), "{address}");

    let _b = broker
        .subscribe(
            "go.micro.srv.message",
            forward("b", &tx),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let _q = broker
        .subscribe(
            "go.micro.srv.message",
            forward("q", &tx),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("subscribe");
    let services = registry.get_service(SERVICE_NAME).await.expect("get");
    let versions: Vec<&str> = services.iter().map(|s| s.version.as_str()).collect();
    assert_eq!(versions, [BROADCAST_VERSION, "workers"]);
    for service in &services {
        assert_eq!(service.nodes.len(), 1);
        let node = &service.nodes[0];
        assert!(node.id.starts_with("go.micro.srv.message-"), "{}", node.id);
        // `<topic>-<uuid>`
        assert_eq!(node.id.len(), "go.micro.srv.message-".len() + 36);
        assert_eq!(node.address, address);
        assert_eq!(
            node.metadata,
            Metadata::from([
                ("broker".into(), "http".into()),
                ("secure".into(), "false".into()),
                ("topic".into(), "go.micro.srv.message".into()),
            ])
        );
    }
    assert_ne!(services[0].nodes[0].id, services[1].nodes[0].id);

    broker.disconnect().await.expect("disconnect");
    assert!(
        registry
            .get_service(SERVICE_NAME)
            .await
            .expect("get")
            .is_empty()
    );
    assert!(
        TcpStream::connect(&address).await.is_err(),
        "server stopped"
    );
    broker.disconnect().await.expect("disconnect is idempotent");
}

#[tokio::test]
async fn broadcast_reaches_every_subscriber_once() {
    let registry = shared();
    let (a, b, c) = (
        connected(&registry).await,
        connected(&registry).await,
        connected(&registry).await,
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let _s = c
        .subscribe("t", forward("c1", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let _s = c
        .subscribe("t", forward("c2", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let _s = a
        .subscribe("t", forward("a-self", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let _s = c
        .subscribe("other", forward("other", &tx), SubscribeOptions::default())
        .await
        .expect("sub");

    publish(&a, "t", Message::new("hello"))
        .await
        .expect("publish");
    let got = drain(&mut rx);
    assert_eq!(tags(&got), ["a-self", "b", "c1", "c2"]);
    let id = &got[0].1.message().header[HEADER_ID];
    for (_, event) in &got {
        assert_eq!(event.topic(), "t");
        assert_eq!(&event.message().body[..], b"hello");
        assert_eq!(&event.message().header[HEADER_ID], id);
    }

    // Nobody subscribes to this: not an error.
    publish(&a, "nobody", Message::new("x"))
        .await
        .expect("no subscribers is ok");
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn queue_group_gets_each_message_exactly_once() {
    let registry = shared();
    let (a, b, c) = (
        connected(&registry).await,
        connected(&registry).await,
        connected(&registry).await,
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe(
            "jobs",
            forward("b", &tx),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("sub");
    let _s = c
        .subscribe(
            "jobs",
            forward("c", &tx),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("sub");
    let _s = a
        .subscribe("jobs", forward("audit", &tx), SubscribeOptions::default())
        .await
        .expect("sub");

    let n = 40;
    for i in 0..n {
        publish(&a, "jobs", Message::new(format!("job {i}")))
            .await
            .expect("publish");
    }
    let got = drain(&mut rx);
    let count = |tag: &str| got.iter().filter(|(t, _)| *t == tag).count();
    assert_eq!(count("audit"), n);
    assert_eq!(count("b") + count("c"), n, "each job once in the group");
    let mut bodies: Vec<_> = got
        .iter()
        .filter(|(t, _)| *t != "audit")
        .map(|(_, e)| e.message().body.clone())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), n, "no job twice");
    // A random pick leaves one member out of 40 draws with odds 2 * 2^-40.
    assert!(
        count("b") > 0 && count("c") > 0,
        "b {} c {}",
        count("b"),
        count("c")
    );
}

#[tokio::test]
async fn body_and_headers_arrive_byte_for_byte() {
    let registry = shared();
    let (a, b) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("bytes", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");

    let body: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00, 0xc3]).collect();
    let msg = Message::new(body.clone())
        .with_header("Content-Type", "application/octet-stream")
        .with_header("x-quote", "\"<tag> & 'é' \u{1F980}\\")
        .with_header("empty", "")
        .with_header(HEADER_ID, "fixed-id");
    publish(&a, "bytes", msg.clone()).await.expect("publish");

    let got = drain(&mut rx);
    assert_eq!(got.len(), 1);
    let received = got[0].1.message();
    assert_eq!(&received.body[..], &body[..]);
    let mut expected = msg.header.clone();
    expected.insert(HEADER_TOPIC.into(), "bytes".into());
    assert_eq!(received.header, expected);
}

#[tokio::test]
async fn bad_requests_get_go_micro_errors_and_the_broker_keeps_serving() {
    let registry = shared();
    let (a, b) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let id = nodes_for(&registry, "t").await[0].1.id.clone();
    let address = b.address();
    let path = format!("/?id={id}");

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            post(&address, &path, "application/json", "{not json"),
            400,
            "malformed message envelope",
        ),
        (
            post(
                &address,
                &path,
                "application/json",
                r#"{"Header":{"Micro-Topic":"t"},"Body":"%%"}"#,
            ),
            400,
            "malformed message envelope",
        ),
        (
            post(
                &address,
                &path,
                "application/json",
                r#"{"Header":{},"Body":"aGk="}"#,
            ),
            400,
            "no `Micro-Topic` header",
        ),
        (
            post(
                &address,
                "/",
                "application/json",
                r#"{"Header":{"Micro-Topic":"t"},"Body":"aGk="}"#,
            ),
            400,
            "missing `id`",
        ),
        (
            post(
                &address,
                "/?id=t-nobody",
                "application/json",
                r#"{"Header":{"Micro-Topic":"t"},"Body":"aGk="}"#,
            ),
            404,
            "no subscription `t-nobody`",
        ),
        (
            post(
                &address,
                &path,
                "application/json",
                r#"{"Header":{"Micro-Topic":"u"},"Body":"aGk="}"#,
            ),
            404,
            "not to `u`",
        ),
        (
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            405,
            "method `GET` not allowed",
        ),
    ];
    for (request, status, detail) in cases {
        let (got_status, body) = raw_http(&address, &request).await;
        assert_eq!(got_status, status, "{body}");
        let err: rmicro::Error = serde_json::from_str(&body).expect("go-micro error JSON");
        assert_eq!(err.id, "go.micro.broker");
        assert_eq!(err.code, i32::from(status));
        assert!(!err.status.is_empty());
        assert!(
            err.detail.contains(detail),
            "{} should contain {detail}",
            err.detail
        );
    }
    // Garbage that is not HTTP at all.
    let _ = raw_http(&address, b"\x00\x01garbage\r\n\r\n").await;
    assert!(drain(&mut rx).is_empty());

    publish(&a, "t", Message::new("still here"))
        .await
        .expect("publish");
    assert_eq!(tags(&drain(&mut rx)), ["b"]);
}

#[tokio::test]
async fn oversized_envelope_gets_413() {
    let registry = shared();
    let mut opts = HttpBrokerOptions::default();
    opts.max_message_size = 1024;
    let b = HttpBroker::new(Arc::clone(&registry), opts);
    b.connect().await.expect("connect");
    let (tx, _rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let a = connected(&registry).await;
    let err = publish(&a, "t", Message::new(vec![7u8; 4096]))
        .await
        .expect_err("too large");
    assert!(err.detail.contains("413"), "{err}");
    assert!(
        err.detail.contains("larger than the limit of 1024 bytes"),
        "{err}"
    );
}

/// A declared body over the limit (100 MB here) is refused from its headers alone: the 413
/// comes back while the sender has not sent a byte of it.
#[tokio::test]
async fn a_declared_100_mb_body_gets_413_before_it_is_sent() {
    let registry = shared();
    let b = connected(&registry).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let request = format!(
        "POST /?id=x HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 104857600\r\nConnection: close\r\n\r\n",
        b.address()
    );
    let (status, body) = raw_http(&b.address(), request.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("larger than the limit of 4194304 bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn a_post_built_like_go_micro_is_accepted() {
    let registry = shared();
    let b = connected(&registry).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A topic that needs escaping in the query, as Go's `url.Values.Encode` does it.
    let _s = b
        .subscribe("a/b c", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let id = nodes_for(&registry, "a/b c").await[0].1.id.clone();
    let uuid = id.strip_prefix("a/b c-").expect("id is `<topic>-<uuid>`");
    let address = b.address();

    // What go-micro's publisher sends: `http.Post(uri, "application/json", envelope)`, with
    // json.Marshal's sorted keys, HTML escaping and base64 body.
    let envelope = r#"{"Header":{"Content-Type":"application/json","Micro-ID":"0b6c8d4e-1f2a-4b3c-9d8e-7f6a5b4c3d2e","Micro-Topic":"a/b c","x":"\u003cb\u003e \u0026"},"Body":"eyJuYW1lIjoiZGF2aWUifQ=="}"#;
    let request = format!(
        "POST /?id=a%2Fb+c-{uuid} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{envelope}",
        envelope.len()
    );
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let (topic, event) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("delivered within 5 s")
        .expect("open");
    assert_eq!(topic, "b");
    assert_eq!(event.topic(), "a/b c");
    assert_eq!(&event.message().body[..], br#"{"name":"davie"}"#);
    assert_eq!(event.message().header["x"], "<b> &");
    assert_eq!(
        event.message().header[HEADER_ID],
        "0b6c8d4e-1f2a-4b3c-9d8e-7f6a5b4c3d2e"
    );
    // Go keeps the connection alive; read the status line of the reply.
    let mut reply = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply))
        .await
        .expect("reply within 5 s")
        .expect("read");
    assert_eq!(&reply, b"HTTP/1.1 200");
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_deregisters() {
    let registry = shared();
    let (a, b) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = b
        .subscribe("t", forward("first", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let _second = b
        .subscribe("t", forward("second", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    publish(&a, "t", Message::new("1")).await.expect("publish");
    assert_eq!(tags(&drain(&mut rx)), ["first", "second"]);

    assert_eq!(first.topic(), "t");
    first.unsubscribe().await.expect("unsubscribe");
    first
        .unsubscribe()
        .await
        .expect("unsubscribe twice is fine");
    assert_eq!(nodes_for(&registry, "t").await.len(), 1);

    // `a` cached the two subscribers; it learns of the change and reports no error.
    publish(&a, "t", Message::new("2")).await.expect("publish");
    assert_eq!(tags(&drain(&mut rx)), ["second"]);
}

#[tokio::test]
async fn publisher_sees_a_new_subscriber_at_once() {
    let registry = shared();
    let (a, b) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("early", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    publish(&a, "t", Message::new("1")).await.expect("publish");
    assert_eq!(tags(&drain(&mut rx)), ["early"]);
    let _s = b
        .subscribe("t", forward("late", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    publish(&a, "t", Message::new("2")).await.expect("publish");
    assert_eq!(tags(&drain(&mut rx)), ["early", "late"]);
}

/// A `host:port` on loopback where nothing listens.
async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    address
}

async fn register_dead(registry: &SharedRegistry, topic: &str, version: &str, id: &str) -> String {
    let address = dead_address().await;
    let service = Service {
        name: SERVICE_NAME.into(),
        version: version.into(),
        nodes: vec![Node {
            id: id.into(),
            address: address.clone(),
            metadata: Metadata::from([
                ("broker".into(), "http".into()),
                ("secure".into(), "false".into()),
                ("topic".into(), topic.into()),
            ]),
        }],
        ..Service::default()
    };
    registry
        .register(&service, RegisterOptions::default())
        .await
        .expect("register");
    address
}

#[tokio::test]
async fn publish_to_a_dead_subscriber_is_an_error_naming_it() {
    let registry = shared();
    let (a, b) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("live", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    let dead = register_dead(&registry, "t", BROADCAST_VERSION, "t-dead-node").await;

    let err = publish(&a, "t", Message::new("x"))
        .await
        .expect_err("dead subscriber");
    assert_eq!(err.id, "go.micro.broker");
    assert!(err.detail.contains("cannot publish to `t`"), "{err}");
    assert!(err.detail.contains("`t-dead-node`"), "{err}");
    assert!(err.detail.contains(&dead), "{err}");
    assert!(err.detail.contains("unreachable"), "{err}");
    // The live subscriber got it all the same.
    assert_eq!(tags(&drain(&mut rx)), ["live"]);
}

#[tokio::test]
async fn queue_group_skips_a_dead_member() {
    let registry = shared();
    let (a, b) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("live", &tx), SubscribeOptions::queue("q"))
        .await
        .expect("sub");
    register_dead(&registry, "t", "q", "t-dead-member").await;
    for _ in 0..10 {
        publish(&a, "t", Message::new("x"))
            .await
            .expect("the live member takes it");
    }
    assert_eq!(drain(&mut rx).len(), 10);

    // With no live member left the group fails, naming the dead one.
    let dead_only = shared();
    let a = connected(&dead_only).await;
    let address = register_dead(&dead_only, "u", "q", "u-dead-member").await;
    let err = publish(&a, "u", Message::new("x"))
        .await
        .expect_err("nobody took it");
    assert!(err.detail.contains("queue `q`"), "{err}");
    assert!(err.detail.contains("`u-dead-member`"), "{err}");
    assert!(err.detail.contains(&address), "{err}");
}

#[tokio::test]
async fn heartbeat_keeps_subscriptions_registered_past_their_ttl() {
    let registry = shared();
    let mut opts = HttpBrokerOptions::default();
    opts.register_ttl = Duration::from_secs(1);
    opts.register_interval = Duration::from_millis(100);
    let b = HttpBroker::new(Arc::clone(&registry), opts);
    b.connect().await.expect("connect");
    let (tx, _rx) = mpsc::unbounded_channel();
    let _s = b
        .subscribe("t", forward("b", &tx), SubscribeOptions::default())
        .await
        .expect("sub");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(nodes_for(&registry, "t").await.len(), 1, "still registered");
    b.disconnect().await.expect("disconnect");
    assert!(nodes_for(&registry, "t").await.is_empty());
}

#[tokio::test]
async fn a_queue_member_that_times_out_is_not_retried_elsewhere() {
    let registry = shared();
    let mut opts = HttpBrokerOptions::default();
    opts.publish_timeout = Duration::from_secs(1);
    let a = HttpBroker::new(Arc::clone(&registry), opts);
    let (b, c) = (connected(&registry).await, connected(&registry).await);
    let (tx, mut started) = mpsc::unbounded_channel::<()>();
    let slow = move || {
        let tx = tx.clone();
        handler(move |_event: Event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(());
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            }
        })
    };
    let _s = b
        .subscribe("t", slow(), SubscribeOptions::queue("q"))
        .await
        .expect("sub");
    let _s = c
        .subscribe("t", slow(), SubscribeOptions::queue("q"))
        .await
        .expect("sub");

    let err = publish(&a, "t", Message::new("x"))
        .await
        .expect_err("timed out");
    assert!(err.detail.contains("did not answer within 1s"), "{err}");
    assert!(err.detail.contains("queue `q`"), "{err}");
    // The member that got it started its handler; the other was not tried.
    tokio::time::timeout(Duration::from_secs(5), started.recv())
        .await
        .expect("one handler started")
        .expect("open");
    assert!(
        started.try_recv().is_err(),
        "a second member got the message too"
    );
}
