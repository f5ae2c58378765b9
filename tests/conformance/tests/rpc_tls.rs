//! TLS and mutual TLS for the RPC transport, with certificates from throwaway CAs made at test
//! time (`openssl`, see `rmicro_conformance::servers::tls`), everything on 127.0.0.1: a call
//! over TLS arrives, a plain client and a client that does not trust the CA are refused, and
//! with a client CA only a client presenting a certificate it signed gets an answer. The server
//! serves on after every refusal. A service given TLS registers its node as go-micro's
//! `secure=true`.

use std::sync::Arc;
use std::time::Duration;

use rmicro::registry::Value;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::server::{Server, ServerHandle, ServerOptions};
use rmicro::rpc::stream::Replies;
use rmicro::rpc::tls::{ClientTls, SECURE_METADATA, ServerTls};
use rmicro::rpc::{CallOptions, Client, ClientOptions, Routes};
use rmicro_conformance::servers::tls::Certs;

struct Echo;

fn routes() -> Routes<Echo> {
    Routes::<Echo>::new()
        .endpoint(
            "Echo.Say",
            Value::default(),
            Value::default(),
            |_this, text: String| async move { Ok(format!("echo: {text}")) },
        )
        .server_stream(
            "Echo.Repeat",
            Value::default(),
            Value::default(),
            |_this, text: String, replies: Replies<String>| async move {
                for n in 1..=3 {
                    replies.send(format!("{n}: {text}")).await?;
                }
                Ok(())
            },
        )
}

fn read(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn serve(tls: ServerTls) -> ServerHandle {
    serve_with(tls, false).await
}

/// A TLS server, also speaking go-micro's grpc protocol when `grpc`.
async fn serve_with(tls: ServerTls, grpc: bool) -> ServerHandle {
    let server = Server::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind");
    let bound = routes().bind(Arc::new(Echo));
    server.serve_streaming(
        bound.endpoints,
        bound.streams,
        ServerOptions {
            name: "echo".into(),
            tls: Some(tls),
            grpc,
            ..ServerOptions::default()
        },
    )
}

/// Reads a stream to its end.
async fn drain(mut stream: rmicro::rpc::stream::CallStream<String, String>) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(reply) = stream.recv().await.expect("a reply") {
        got.push(reply);
    }
    got
}

fn client(tls: Option<ClientTls>) -> Client {
    Client::new(
        Arc::new(MemoryRegistry::new()),
        ClientOptions {
            retries: 0,
            request_timeout: Duration::from_secs(5),
            tls,
            ..ClientOptions::default()
        },
    )
}

async fn say(client: &Client, server: &ServerHandle) -> rmicro::Result<String> {
    let opts = CallOptions {
        address: Some(server.local_addr().to_string()),
        ..CallOptions::default()
    };
    client
        .call_with("echo", "Echo.Say", &"davie".to_owned(), opts)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_and_refusals() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = Certs::generate(&dir.path().join("trusted"), "rmicro trusted CA");
    let other = Certs::generate(&dir.path().join("other"), "rmicro other CA");
    let server =
        serve(ServerTls::from_files(&certs.cert(), &certs.key(), None).expect("server tls")).await;

    let trusting = client(Some(
        ClientTls::from_pem(&read(certs.ca()), None).expect("client tls"),
    ));
    assert_eq!(
        say(&trusting, &server).await.expect("over TLS"),
        "echo: davie"
    );

    let plain = client(None);
    let err = say(&plain, &server)
        .await
        .expect_err("plain HTTP to a TLS server");
    assert!(err.code >= 500, "{err}");

    let doubting = client(Some(
        ClientTls::from_pem(&read(other.ca()), None).expect("client tls"),
    ));
    let err = say(&doubting, &server)
        .await
        .expect_err("a certificate from an unknown CA");
    assert!(
        err.detail.contains("certificate") || err.detail.contains("UnknownIssuer"),
        "the error names the certificate: {err}"
    );

    // Still serving.
    assert_eq!(say(&trusting, &server).await.expect("again"), "echo: davie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_answers_only_clients_the_ca_signed() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = Certs::generate(&dir.path().join("trusted"), "rmicro trusted CA");
    let other = Certs::generate(&dir.path().join("other"), "rmicro other CA");
    let (cert, key) = certs.client("caller");
    let (stranger_cert, stranger_key) = other.client("stranger");
    let server =
        serve(ServerTls::from_files(&certs.cert(), &certs.key(), Some(&certs.ca())).expect("mtls"))
            .await;
    let ca = read(certs.ca());

    let anonymous = client(Some(ClientTls::from_pem(&ca, None).expect("tls")));
    let err = say(&anonymous, &server)
        .await
        .expect_err("no client certificate");
    assert!(err.code >= 500, "{err}");

    let stranger = client(Some(
        ClientTls::from_pem(&ca, Some((&read(stranger_cert), &read(stranger_key)))).expect("tls"),
    ));
    say(&stranger, &server)
        .await
        .expect_err("a client certificate from another CA");

    let caller = client(Some(
        ClientTls::from_pem(&ca, Some((&read(cert), &read(key)))).expect("tls"),
    ));
    assert_eq!(
        say(&caller, &server).await.expect("mutual TLS"),
        "echo: davie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_service_registers_as_secure_and_is_called_through_the_registry() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = Certs::generate(dir.path(), "rmicro service CA");
    let registry = MemoryRegistry::new();
    let service = rmicro::Service::builder("secure_echo")
        .with_registry(Arc::new(registry.clone()))
        .with_broker(Arc::new(rmicro::broker::memory::MemoryBroker::new()))
        .free_subscribers(false)
        .handler(Echo, routes())
        .tls(ServerTls::from_files(&certs.cert(), &certs.key(), None).expect("tls"))
        .start()
        .await
        .expect("start");
    tokio::time::timeout(Duration::from_secs(5), service.registered())
        .await
        .expect("in time")
        .expect("registered");
    assert_eq!(
        service.record().nodes[0]
            .metadata
            .get(SECURE_METADATA)
            .map(String::as_str),
        Some("true"),
        "{:?}",
        service.record().nodes[0].metadata
    );
    let caller = Client::new(
        Arc::new(registry),
        ClientOptions {
            tls: Some(ClientTls::from_pem(&read(certs.ca()), None).expect("tls")),
            ..ClientOptions::default()
        },
    );
    let reply: String = caller
        .call("secure_echo", "Echo.Say", &"davie".to_owned())
        .await
        .expect("through the registry, over TLS");
    assert_eq!(reply, "echo: davie");
    service.stop().await.expect("stop");
}

/// Streams over TLS (mucp's connection of its own), and go-micro's grpc protocol over TLS
/// (ALPN `h2`), unary and streaming, with mutual TLS: a plain client gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_grpc_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = Certs::generate(dir.path(), "rmicro stream CA");
    let (cert, key) = certs.client("caller");
    let server = serve_with(
        ServerTls::from_files(&certs.cert(), &certs.key(), Some(&certs.ca())).expect("mtls"),
        true,
    )
    .await;
    let address = server.local_addr().to_string();
    let tls = || {
        ClientTls::from_pem(
            &read(certs.ca()),
            Some((&read(cert.clone()), &read(key.clone()))),
        )
        .expect("tls")
    };
    let three = ["1: davie", "2: davie", "3: davie"];

    // mucp: a stream by address.
    let caller = client(Some(tls()));
    let opts = CallOptions {
        address: Some(address.clone()),
        ..CallOptions::default()
    };
    let mut stream = caller
        .stream_with::<String, String>("echo", "Echo.Repeat", opts.clone())
        .await
        .expect("a mucp stream over TLS");
    stream.send(&"davie".to_owned()).await.expect("send");
    assert_eq!(drain(stream).await, three);

    // grpc: the node's record says so.
    let registry = Arc::new(MemoryRegistry::new());
    let mut metadata = rmicro::registry::Metadata::new();
    metadata.insert("protocol".to_owned(), "grpc".to_owned());
    let record = rmicro::registry::Service {
        name: "echo".to_owned(),
        nodes: vec![rmicro::registry::Node {
            id: "echo-1".to_owned(),
            address,
            metadata,
        }],
        ..rmicro::registry::Service::default()
    };
    rmicro::registry::Registry::register(
        &*registry,
        &record,
        rmicro::registry::RegisterOptions::default(),
    )
    .await
    .expect("register");
    let through = |tls: Option<ClientTls>| {
        Client::new(
            registry.clone(),
            ClientOptions {
                retries: 0,
                request_timeout: Duration::from_secs(5),
                tls,
                ..ClientOptions::default()
            },
        )
    };
    let caller = through(Some(tls()));
    let reply: String = caller
        .call("echo", "Echo.Say", &"davie".to_owned())
        .await
        .expect("grpc over TLS");
    assert_eq!(reply, "echo: davie");
    let mut stream = caller
        .stream::<String, String>("echo", "Echo.Repeat")
        .await
        .expect("a grpc stream over TLS");
    stream.send(&"davie".to_owned()).await.expect("send");
    stream.close_send().await.expect("half-close");
    assert_eq!(drain(stream).await, three);

    // A client without TLS is refused, never answered in the clear.
    let plain = through(None);
    plain
        .call::<_, String>("echo", "Echo.Say", &"davie".to_owned())
        .await
        .expect_err("grpc without TLS");
    let refused = async {
        let mut stream = plain
            .stream::<String, String>("echo", "Echo.Repeat")
            .await?;
        stream.send(&"davie".to_owned()).await?;
        stream.recv().await
    };
    refused.await.expect_err("a grpc stream without TLS");
}

#[test]
fn bad_pem_is_named() {
    let err = ServerTls::from_pem(b"not pem", b"not pem", None).expect_err("bad");
    assert!(err.detail.contains("certificate"), "{err}");
    let err = ClientTls::from_pem(b"", None).expect_err("empty");
    assert!(err.detail.contains("the CA: no certificate"), "{err}");
}
