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
    let handle = server.serve(bound.endpoints, opts);
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
