//! go-micro's grpc protocol between rmicro peers: a server with `ServerOptions::grpc` answers
//! gRPC (h2c) and mucp on one port, and the client speaks gRPC to a node whose record says
//! `protocol=grpc`. (Against go-micro's own grpc server and client: the examples' interop
//! tests.)

use std::sync::Arc;

use rmicro::__private::Handlers as _;
use rmicro::prelude::*;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{Node, RegisterOptions, Registry as _, Service};
use rmicro::rpc::server::{Server, ServerOptions};
use rmicro::rpc::{CallOptions, ClientOptions};

#[derive(Clone, PartialEq, Serialize, Deserialize, prost::Message)]
struct Tick {
    #[prost(uint32, tag = "1")]
    n: u32,
}
rmicro::protobuf!(Tick);

struct Counter;

#[handlers]
impl Counter {
    pub async fn double(&self, tick: Tick) -> Result<Tick> {
        if tick.n == 13 {
            return Err(Error::bad_request("counter", "13 is unlucky"));
        }
        Ok(Tick { n: tick.n * 2 })
    }

    /// Counts from 1 to `n`, one reply each.
    pub async fn count(&self, upto: Tick, replies: Replies<Tick>) -> Result<()> {
        for n in 1..=upto.n {
            replies.send(Tick { n }).await?;
        }
        Ok(())
    }

    /// Adds up every request.
    pub async fn sum(&self, mut requests: Requests<Tick>) -> Result<Tick> {
        let mut n = 0;
        while let Some(tick) = requests.next().await {
            n += tick?.n;
        }
        Ok(Tick { n })
    }

    /// Answers each request with its double; fails on 13.
    pub async fn doubles(
        &self,
        mut requests: Requests<Tick>,
        replies: Replies<Tick>,
    ) -> Result<()> {
        while let Some(tick) = requests.next().await {
            let tick = tick?;
            if tick.n == 13 {
                return Err(Error::bad_request("counter", "13 is unlucky"));
            }
            replies.send(Tick { n: tick.n * 2 }).await?;
        }
        Ok(())
    }

    /// Reads one request, then waits forever (cancellation).
    pub async fn hang(&self, mut requests: Requests<Tick>) -> Result<Tick> {
        let _ = requests.next().await;
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        Ok(Tick { n: 0 })
    }
}

async fn serve(grpc: bool) -> (rmicro::rpc::server::ServerHandle, rmicro::Client) {
    let bound = Counter::routes().bind(Arc::new(Counter));
    let server = Server::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = server.local_addr().to_string();
    let opts = ServerOptions {
        name: "counter".to_owned(),
        grpc,
        ..ServerOptions::default()
    };
    let handle = server.serve_streaming(bound.endpoints, bound.streams, opts);
    let registry = Arc::new(MemoryRegistry::new());
    let mut metadata = rmicro::registry::Metadata::new();
    let protocol = if grpc { "grpc" } else { "mucp" };
    metadata.insert("protocol".to_owned(), protocol.to_owned());
    let record = Service {
        name: "counter".to_owned(),
        nodes: vec![Node {
            id: "counter-1".to_owned(),
            address,
            metadata,
        }],
        ..Service::default()
    };
    registry
        .register(&record, RegisterOptions::default())
        .await
        .expect("register");
    (
        handle,
        rmicro::Client::new(registry, ClientOptions::default()),
    )
}

#[tokio::test]
async fn a_grpc_node_is_called_over_grpc_in_both_codecs_with_its_errors() {
    let (_server, client) = serve(true).await;
    for content_type in ["application/protobuf", "application/json"] {
        let opts = || CallOptions {
            content_type: Some(content_type.to_owned()),
            ..CallOptions::default()
        };
        let got: Tick = client
            .call_with("counter", "Counter.Double", &Tick { n: 21 }, opts())
            .await
            .expect(content_type);
        assert_eq!(got, Tick { n: 42 });
        let err = client
            .call_with::<_, Tick>("counter", "Counter.Double", &Tick { n: 13 }, opts())
            .await
            .expect_err("the handler's error");
        assert_eq!(
            (err.code, err.id.as_str(), err.detail.as_str()),
            (400, "counter", "13 is unlucky"),
            "{content_type}"
        );
        let err = client
            .call_with::<_, Tick>("counter", "Counter.Triple", &Tick { n: 1 }, opts())
            .await
            .expect_err("no such endpoint");
        assert_eq!(err.code, 404, "{err}");
    }
}

#[tokio::test]
async fn a_grpc_server_still_answers_mucp_on_the_same_port() {
    let (server, _) = serve(true).await;
    let opts = CallOptions {
        address: Some(server.local_addr().to_string()),
        ..CallOptions::default()
    };
    let client = rmicro::Client::new(Arc::new(MemoryRegistry::new()), ClientOptions::default());
    let got: Tick = client
        .call_with("counter", "Counter.Double", &Tick { n: 4 }, opts)
        .await
        .expect("mucp");
    assert_eq!(got, Tick { n: 8 });
}

#[tokio::test]
async fn a_mucp_only_server_refuses_grpc() {
    // A node that claims grpc while its server does not serve it: the call fails, it does
    // not hang.
    let (_server, mucp_client) = serve(false).await;
    let registry = Arc::new(MemoryRegistry::new());
    let node = mucp_client
        .selector()
        .select("counter")
        .await
        .expect("a node")
        .pick()
        .expect("node")
        .clone();
    let mut metadata = node.metadata.clone();
    metadata.insert("protocol".to_owned(), "grpc".to_owned());
    let record = Service {
        name: "counter".to_owned(),
        nodes: vec![Node { metadata, ..node }],
        ..Service::default()
    };
    registry
        .register(&record, RegisterOptions::default())
        .await
        .expect("register");
    let opts = ClientOptions {
        retries: 0,
        request_timeout: std::time::Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let client = rmicro::Client::new(registry, opts);
    let err = client
        .call::<_, Tick>("counter", "Counter.Double", &Tick { n: 1 })
        .await
        .expect_err("not a grpc server");
    assert!(err.code >= 500, "{err}");
}

#[tokio::test]
async fn streams_to_a_grpc_node_go_over_grpc_in_every_shape() {
    let (_server, client) = serve(true).await;
    for content_type in ["application/protobuf", "application/json"] {
        let opts = || CallOptions {
            content_type: Some(content_type.to_owned()),
            ..CallOptions::default()
        };
        // Server stream: one request, replies to the end.
        let mut count = client
            .stream_with::<Tick, Tick>("counter", "Counter.Count", opts())
            .await
            .expect("open");
        count.send(&Tick { n: 3 }).await.expect("send");
        count.close_send().await.expect("half-close");
        let mut got = Vec::new();
        while let Some(tick) = count.recv().await.expect(content_type) {
            got.push(tick.n);
        }
        assert_eq!(got, [1, 2, 3], "{content_type}");

        // Client stream: requests, the half-close, one reply.
        let mut sum = client
            .stream_with::<Tick, Tick>("counter", "Counter.Sum", opts())
            .await
            .expect("open");
        for n in 1..=4 {
            sum.send(&Tick { n }).await.expect("send");
        }
        sum.close_send().await.expect("half-close");
        assert_eq!(sum.recv().await.expect("sum"), Some(Tick { n: 10 }));
        assert_eq!(sum.recv().await.expect("end"), None);

        // Bidirectional, both sides at once; the handler's error ends it as go-micro's.
        let (mut send, mut recv) = client
            .stream_with::<Tick, Tick>("counter", "Counter.Doubles", opts())
            .await
            .expect("open")
            .split();
        let sending = tokio::spawn(async move {
            for n in [1, 5, 13] {
                send.send(&Tick { n }).await.expect("send");
            }
            send
        });
        assert_eq!(recv.recv().await.expect("2"), Some(Tick { n: 2 }));
        assert_eq!(recv.recv().await.expect("10"), Some(Tick { n: 10 }));
        let err = recv.recv().await.expect_err("the handler's error");
        assert_eq!(
            (err.code, err.id.as_str(), err.detail.as_str()),
            (400, "counter", "13 is unlucky"),
            "{content_type}"
        );
        assert!(recv.recv().await.expect("ended").is_none());
        drop(sending.await.expect("sender"));
    }
}

#[tokio::test]
async fn a_grpc_caller_that_goes_away_cancels_the_handler() {
    let (server, client) = serve(true).await;
    let mut hang = client
        .stream::<Tick, Tick>("counter", "Counter.Hang")
        .await
        .expect("open");
    hang.send(&Tick { n: 1 }).await.expect("send");
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while server.in_flight() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    waited.await.expect("the stream is in flight");
    drop(hang);
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while server.in_flight() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    waited
        .await
        .expect("the handler was cancelled when its caller went away");
    // The server goes on serving.
    let got: Tick = client
        .call("counter", "Counter.Double", &Tick { n: 2 })
        .await
        .expect("after the cancellation");
    assert_eq!(got, Tick { n: 4 });
}

#[tokio::test]
async fn a_grpc_stream_past_its_timeout_ends_with_go_micros_timeout() {
    let (server, client) = serve(true).await;
    let opts = CallOptions {
        timeout: Some(std::time::Duration::from_millis(200)),
        ..CallOptions::default()
    };
    let mut hang = client
        .stream_with::<Tick, Tick>("counter", "Counter.Hang", opts)
        .await
        .expect("open");
    hang.send(&Tick { n: 1 }).await.expect("send");
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), hang.recv())
        .await
        .expect("ended by the server")
        .expect_err("timed out");
    // Both sides keep the deadline; whichever notices first, it is go-micro's 408.
    assert_eq!(err.code, 408, "{err}");
    // The server ended the handler itself, though the caller still holds the stream open.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while server.in_flight() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    waited
        .await
        .expect("the server's timeout ended the handler");
    drop(hang);
}
