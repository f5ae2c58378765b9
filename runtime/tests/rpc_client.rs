//! The RPC client on 127.0.0.1 against real servers found through the in-memory registry:
//! selection, retries, the registry cache and publishing.

mod rpc_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmicro::broker::memory::MemoryBroker;
use rmicro::broker::{self, Broker as _, SubscribeOptions};
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{RegisterOptions, Registry as _};
use rmicro::rpc::{CallOptions, Client, ClientOptions, Strategy};
use rpc_support::*;
use tokio::sync::mpsc;

const GET: &str = "StudentService.GetStudent";

fn davie() -> StudentRequest {
    StudentRequest {
        name: "davie".into(),
    }
}

async fn served_by(client: &Client) -> String {
    let student: Student = client.call(SERVICE, GET, &davie()).await.expect("call");
    student.server
}

#[tokio::test]
async fn no_node_is_go_micros_exact_error() {
    let client = client(Arc::new(MemoryRegistry::new()), Strategy::Random);
    let err = client
        .call::<_, Student>(SERVICE, GET, &davie())
        .await
        .expect_err("nobody serves it");
    assert_eq!(
        err.to_string(),
        r#"{"id":"go.micro.client","code":500,"detail":"error selecting student_service node: not found","status":"Internal Server Error"}"#
    );
}

#[tokio::test]
async fn round_robin_alternates_between_nodes() {
    let registry = MemoryRegistry::new();
    let _a = start_registered(&registry, "a").await;
    let _b = start_registered(&registry, "b").await;
    let client = client(Arc::new(registry), Strategy::RoundRobin);
    let mut servers = Vec::new();
    for _ in 0..6 {
        servers.push(served_by(&client).await);
    }
    for pair in servers.windows(2) {
        assert_ne!(pair[0], pair[1], "{servers:?}");
    }
    assert!(servers.contains(&"a".to_owned()) && servers.contains(&"b".to_owned()));
}

#[tokio::test]
async fn a_dead_node_is_retried_on_another() {
    let registry = MemoryRegistry::new();
    let a = start_registered(&registry, "a").await;
    let b = start_registered(&registry, "b").await;
    let client = client(Arc::new(registry), Strategy::RoundRobin);
    // Both nodes have pooled connections now.
    let mut warm = vec![served_by(&client).await, served_by(&client).await];
    warm.sort();
    assert_eq!(warm, ["a", "b"]);

    // `b` dies but stays registered: every call still succeeds, on `a`.
    assert_eq!(b.handle.shutdown(Duration::from_secs(1)).await, 0);
    for _ in 0..4 {
        assert_eq!(served_by(&client).await, "a");
    }
    assert_eq!(a.calls.load(Ordering::SeqCst), 5);
}

/// A node that accepts connections and drops them (a wedged process, a proxy in front of a
/// dead one) costs three attempts, then is left out of selection: the calls go to the live
/// node without paying a retry each.
#[tokio::test]
async fn a_node_that_drops_every_connection_is_left_out_after_three() {
    use std::sync::atomic::AtomicU32;
    let registry = MemoryRegistry::new();
    let _a = start_registered(&registry, "a").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut flaky = start("unused").await.service;
    flaky.nodes[0].id = format!("{SERVICE}-flaky");
    flaky.nodes[0].address = listener.local_addr().expect("address").to_string();
    registry
        .register(&flaky, RegisterOptions::default())
        .await
        .expect("register");
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let client = client(Arc::new(registry), Strategy::RoundRobin);
    for _ in 0..40 {
        assert_eq!(served_by(&client).await, "a");
    }
    let tried = accepted.load(Ordering::SeqCst);
    assert!(
        (3..=4).contains(&tried),
        "the dropping node was tried {tried} times in 40 calls"
    );
}

#[tokio::test]
async fn application_errors_are_not_retried_but_timeouts_are() {
    let registry = MemoryRegistry::new();
    let server = start_registered(&registry, "a").await;
    let client = client(Arc::new(registry), Strategy::Random);

    let err = client
        .call::<_, Student>(SERVICE, "StudentService.Refuse", &davie())
        .await
        .expect_err("refused");
    assert_eq!(err.detail, "no student named davie");
    assert_eq!(
        server.calls.load(Ordering::SeqCst),
        1,
        "a 500 is not retried"
    );

    server.calls.store(0, Ordering::SeqCst);
    let student: Student = client
        .call(SERVICE, "StudentService.Flaky", &davie())
        .await
        .expect("the retry succeeds");
    assert_eq!(student.name, "davie");
    assert_eq!(
        server.calls.load(Ordering::SeqCst),
        2,
        "a 408 is retried once"
    );

    // With retries off, the 408 comes back.
    server.calls.store(0, Ordering::SeqCst);
    let err = client
        .call_with::<_, Student>(
            SERVICE,
            "StudentService.Flaky",
            &davie(),
            CallOptions {
                retries: Some(0),
                ..CallOptions::default()
            },
        )
        .await
        .expect_err("no retry");
    assert_eq!((err.code, err.detail.as_str()), (408, "busy, try again"));
}

#[tokio::test]
async fn a_warm_cache_makes_no_registry_round_trip() {
    let registry = Counting::new(MemoryRegistry::new());
    let _a = start_registered(&registry.inner, "a").await;
    let client = client(Arc::new(registry.clone()), Strategy::RoundRobin);
    assert_eq!(served_by(&client).await, "a");
    assert_eq!(registry.lookups(), 1);
    for _ in 0..20 {
        assert_eq!(served_by(&client).await, "a");
    }
    assert_eq!(
        registry.lookups(),
        1,
        "calls on a warm cache looked the service up"
    );

    // A node registered later reaches the cache through the watch alone.
    let b = start("b").await;
    registry
        .register(&b.service, RegisterOptions::default())
        .await
        .expect("register b");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served_by(&client).await != "b" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new node never got a call"
        );
    }
    // And a deregistered one leaves it.
    registry.deregister(&b.service).await.expect("deregister b");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let before = b.calls.load(Ordering::SeqCst);
        let mut servers = Vec::new();
        for _ in 0..4 {
            servers.push(served_by(&client).await);
        }
        if servers.iter().all(|s| s == "a") && b.calls.load(Ordering::SeqCst) == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old node kept getting calls"
        );
    }
    assert_eq!(registry.lookups(), 1);
}

#[tokio::test]
async fn an_address_bypasses_the_registry() {
    let server = start("a").await;
    let registry = Counting::new(MemoryRegistry::new());
    let client = client(Arc::new(registry.clone()), Strategy::Random);
    let student: Student = client
        .call_with(SERVICE, GET, &davie(), server.direct())
        .await
        .expect("direct call");
    assert_eq!(student.server, "a");
    assert_eq!(registry.lookups(), 0);
}

#[tokio::test]
async fn publishing_needs_a_broker_and_sets_go_micros_headers() {
    let client = Client::new(Arc::new(MemoryRegistry::new()), ClientOptions::default());
    let err = client
        .publisher("go.micro.srv.message")
        .expect_err("no broker");
    assert_eq!(
        err.detail,
        "cannot publish to `go.micro.srv.message`: the client has no broker, add one with `Client::with_broker`"
    );

    let broker = MemoryBroker::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = broker
        .subscribe(
            "go.micro.srv.message",
            broker::handler(move |event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event.message().clone());
                    Ok(())
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let client = client.with_broker(Arc::new(broker));
    let publisher = client.publisher("go.micro.srv.message").expect("publisher");
    let student = Student {
        name: "davie".into(),
        grade: 80,
        server: String::new(),
    };
    publisher
        .publish_with_header(&student, [("Who".to_owned(), "test".to_owned())].into())
        .await
        .expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("delivered within 5 s")
        .expect("message");
    assert_eq!(msg.header["Content-Type"], "application/json");
    assert_eq!(msg.header["Micro-Topic"], "go.micro.srv.message");
    assert_eq!(msg.header["Micro-ID"].len(), 36);
    assert_eq!(msg.header["Who"], "test");
    assert_eq!(
        serde_json::from_slice::<Student>(&msg.body).expect("JSON body"),
        student
    );
}
