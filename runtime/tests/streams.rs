//! Streaming endpoints on the wire go-micro's default stack speaks (see `rmicro::rpc::stream`):
//! a raw TCP caller writes what go-micro's http transport writes, one `POST /` per message on
//! a connection of the stream's own, and reads the server's unpaired `200 OK`s.

use std::time::Duration;

use rmicro::__private::Handlers as _;
use rmicro::Routes;
use rmicro::prelude::*;
use rmicro::rpc::server::{Server, ServerOptions};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Tick {
    n: u32,
}

struct Counter;

#[handlers]
impl Counter {
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
    pub async fn double(&self, mut requests: Requests<Tick>, replies: Replies<Tick>) -> Result<()> {
        while let Some(tick) = requests.next().await {
            let tick = tick?;
            if tick.n == 13 {
                return Err(Error::bad_request("counter", "13 is unlucky"));
            }
            replies.send(Tick { n: tick.n * 2 }).await?;
        }
        Ok(())
    }

    /// Waits forever for a request that never comes (cancellation).
    pub async fn hang(&self, mut requests: Requests<Tick>) -> Result<Tick> {
        let _ = requests.next().await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Tick { n: 0 })
    }
}

async fn serve() -> (rmicro::rpc::server::ServerHandle, std::net::SocketAddr) {
    let bound = Counter::routes().bind(std::sync::Arc::new(Counter));
    let server = Server::bind("127.0.0.1:0".parse().expect("test I/O and parsing"))
        .await
        .expect("test I/O and parsing");
    let addr = server.local_addr();
    let opts = ServerOptions {
        name: "counter".to_owned(),
        ..ServerOptions::default()
    };
    let handle = server.serve_streaming(bound.endpoints, bound.streams, opts);
    (handle, addr)
}

/// A caller speaking go-micro's stream framing.
struct Caller {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
    endpoint: &'static str,
}

impl Caller {
    /// Connects and sends go-micro's placeholder first message.
    async fn open(addr: std::net::SocketAddr, endpoint: &'static str) -> Caller {
        let (read, write) = TcpStream::connect(addr)
            .await
            .expect("test I/O and parsing")
            .into_split();
        let mut caller = Caller {
            read: BufReader::new(read),
            write,
            endpoint,
        };
        caller.send_raw(&[], b"{}\n").await;
        caller
    }

    async fn send_raw(&mut self, extra: &[(&str, &str)], body: &[u8]) {
        let mut head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Micro-Service: counter\r\nMicro-Endpoint: {0}\r\nMicro-Method: {0}\r\n\
             Micro-Id: 0\r\nMicro-Stream: 0\r\n",
            self.endpoint
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if body.is_empty() {
            // What Go's client sends for an empty body.
            head.push_str("Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
            self.write
                .write_all(head.as_bytes())
                .await
                .expect("test I/O and parsing");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            self.write
                .write_all(head.as_bytes())
                .await
                .expect("test I/O and parsing");
            self.write
                .write_all(body)
                .await
                .expect("test I/O and parsing");
        }
    }

    async fn send(&mut self, n: u32) {
        self.send_raw(&[], format!("{{\"n\":{n}}}\n").as_bytes())
            .await;
    }

    async fn end(&mut self) {
        self.send_raw(&[("Micro-Error", "EOS")], b"").await;
    }

    /// The next response: its `Micro-Error` (if any) and body.
    async fn recv(&mut self) -> Option<(Option<String>, String)> {
        let mut line = String::new();
        if self.read.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        assert_eq!(line, "HTTP/1.1 200 OK\r\n");
        let (mut error, mut length) = (None, 0);
        loop {
            let mut header = String::new();
            self.read
                .read_line(&mut header)
                .await
                .expect("test I/O and parsing");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (k, v) = header.split_once(": ").expect("test I/O and parsing");
            if k.eq_ignore_ascii_case("micro-error") {
                error = Some(v.to_owned());
            }
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().expect("test I/O and parsing");
            }
        }
        let mut body = vec![0; length];
        self.read
            .read_exact(&mut body)
            .await
            .expect("test I/O and parsing");
        Some((
            error,
            String::from_utf8(body).expect("test I/O and parsing"),
        ))
    }
}

#[tokio::test]
async fn server_stream_sends_every_reply_then_eos() {
    let (_server, addr) = serve().await;
    let mut caller = Caller::open(addr, "Counter.Count").await;
    caller.send(3).await;
    for n in 1..=3 {
        let (error, body) = caller.recv().await.expect("a reply");
        assert_eq!(error, None);
        assert_eq!(
            serde_json::from_str::<Tick>(&body).expect("test I/O and parsing"),
            Tick { n }
        );
    }
    assert_eq!(
        caller.recv().await,
        Some((Some("EOS".to_owned()), String::new()))
    );
}

#[tokio::test]
async fn client_stream_answers_once_after_the_callers_eos() {
    let (_server, addr) = serve().await;
    let mut caller = Caller::open(addr, "Counter.Sum").await;
    for n in [1, 2, 3, 4] {
        caller.send(n).await;
    }
    caller.end().await;
    let (error, body) = caller.recv().await.expect("the sum");
    assert_eq!(error, None);
    assert_eq!(
        serde_json::from_str::<Tick>(&body).expect("test I/O and parsing"),
        Tick { n: 10 }
    );
    assert_eq!(
        caller.recv().await,
        Some((Some("EOS".to_owned()), String::new()))
    );
}

#[tokio::test]
async fn bidirectional_stream_answers_as_it_reads_and_ends_with_the_handlers_error() {
    let (_server, addr) = serve().await;
    let mut caller = Caller::open(addr, "Counter.Double").await;
    for n in [1, 5] {
        caller.send(n).await;
        let (error, body) = caller.recv().await.expect("a reply");
        assert_eq!(error, None);
        assert_eq!(
            serde_json::from_str::<Tick>(&body).expect("test I/O and parsing"),
            Tick { n: n * 2 }
        );
    }
    // A message that does not decode is the handler's to see; this handler gives up on it.
    caller.send(13).await;
    let (error, body) = caller.recv().await.expect("the error");
    assert!(body.is_empty());
    let error = Error::parse(&error.expect("Micro-Error"));
    assert_eq!(error.code, 400);
    assert_eq!(error.detail, "13 is unlucky");
}

#[tokio::test]
async fn a_caller_that_vanishes_cancels_the_handler_and_frees_the_server() {
    let (server, addr) = serve().await;
    let mut caller = Caller::open(addr, "Counter.Hang").await;
    caller.send(1).await;
    // The handler is running (and counted in flight) until the caller goes.
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stream is in flight");
    drop(caller);
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.in_flight() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the handler was cancelled when its caller went away");
}

#[tokio::test]
async fn a_stream_to_another_service_is_refused() {
    let (_server, addr) = serve().await;
    let (read, mut write) = TcpStream::connect(addr)
        .await
        .expect("test I/O and parsing")
        .into_split();
    write
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nMicro-Service: other\r\nMicro-Endpoint: Counter.Count\r\n\
              Micro-Stream: 0\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .expect("test I/O and parsing");
    let mut caller = Caller {
        read: BufReader::new(read),
        write,
        endpoint: "Counter.Count",
    };
    let (error, _) = caller.recv().await.expect("an answer");
    let error = Error::parse(&error.expect("Micro-Error"));
    assert_eq!(error.code, 404);
    assert!(
        error.detail.contains("`other` is not served here"),
        "{error}"
    );
}

#[tokio::test]
async fn unary_calls_still_work_beside_streams() {
    // A server with streaming endpoints reads each connection's first head itself; a plain
    // call (no `Micro-Stream`) still goes to the unary path, here one that does not exist.
    let (_server, addr) = serve().await;
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("test I/O and parsing");
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Micro-Service: counter\r\nMicro-Endpoint: Counter.Nope\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await
        .expect("test I/O and parsing");
    let mut reply = vec![0; 4096];
    let n = stream.read(&mut reply).await.expect("test I/O and parsing");
    let reply = String::from_utf8_lossy(&reply[..n]).to_lowercase();
    assert!(reply.starts_with("http/1.1 200 ok"), "{reply}");
    assert!(
        reply.contains("unknown service endpoint `counter.nope`"),
        "{reply}"
    );
}

#[test]
fn streaming_endpoints_are_advertised_as_streams() {
    let routes: Routes<Counter> = Counter::routes();
    let count = routes
        .endpoints()
        .find(|e| e.name == "Counter.Count")
        .expect("advertised");
    assert_eq!(count.metadata["stream"], "true");
    assert_eq!(count.metadata["stream_kind"], "server");
    let kinds: Vec<&str> = routes
        .endpoints()
        .map(|e| e.metadata["stream_kind"].as_str())
        .collect();
    assert_eq!(kinds, ["server", "client", "bidirectional", "client"]);
}

fn client() -> rmicro::Client {
    let registry = std::sync::Arc::new(rmicro::registry::memory::MemoryRegistry::new());
    rmicro::Client::new(registry, rmicro::rpc::ClientOptions::default())
}

fn at(addr: std::net::SocketAddr) -> rmicro::rpc::CallOptions {
    rmicro::rpc::CallOptions {
        address: Some(addr.to_string()),
        ..rmicro::rpc::CallOptions::default()
    }
}

#[tokio::test]
async fn the_client_reads_a_server_stream_to_its_end() {
    let (_server, addr) = serve().await;
    let mut stream = client()
        .stream_with::<Tick, Tick>("counter", "Counter.Count", at(addr))
        .await
        .expect("open");
    stream.send(&Tick { n: 3 }).await.expect("send");
    let mut got = Vec::new();
    while let Some(tick) = stream.recv().await.expect("recv") {
        got.push(tick.n);
    }
    assert_eq!(got, [1, 2, 3]);
    assert!(stream.recv().await.expect("after the end").is_none());
}

#[tokio::test]
async fn the_client_streams_requests_and_reads_the_one_reply() {
    let (_server, addr) = serve().await;
    let mut stream = client()
        .stream_with::<Tick, Tick>("counter", "Counter.Sum", at(addr))
        .await
        .expect("open");
    for n in 1..=4 {
        stream.send(&Tick { n }).await.expect("send");
    }
    stream.close_send().await.expect("close");
    let err = stream.send(&Tick { n: 5 }).await.expect_err("closed");
    assert!(err.detail.contains("closed for sending"), "{err}");
    assert_eq!(stream.recv().await.expect("the sum"), Some(Tick { n: 10 }));
    assert_eq!(stream.recv().await.expect("the end"), None);
}

#[tokio::test]
async fn both_sides_at_once_and_the_servers_error_reaches_the_client() {
    let (_server, addr) = serve().await;
    let stream = client()
        .stream_with::<Tick, Tick>("counter", "Counter.Double", at(addr))
        .await
        .expect("open");
    let (mut send, mut recv) = stream.split();
    let sending = tokio::spawn(async move {
        for n in [1, 5, 13] {
            send.send(&Tick { n }).await.expect("send");
        }
        send
    });
    assert_eq!(recv.recv().await.expect("2"), Some(Tick { n: 2 }));
    assert_eq!(recv.recv().await.expect("10"), Some(Tick { n: 10 }));
    let err = recv.recv().await.expect_err("the handler's error");
    assert_eq!((err.code, err.detail.as_str()), (400, "13 is unlucky"));
    assert_eq!(err.id, "counter");
    assert!(recv.recv().await.expect("ended").is_none());
    drop(sending.await.expect("sender"));
}

#[tokio::test]
async fn a_stream_to_no_node_is_go_micros_error() {
    let err = client()
        .stream::<Tick, Tick>("nobody", "Nobody.Count")
        .await
        .expect_err("no node");
    assert_eq!(err.detail, "error selecting nobody node: not found");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let err = client()
        .stream_with::<Tick, Tick>("counter", "Counter.Count", at(addr))
        .await
        .expect_err("refused");
    assert!(
        err.detail.starts_with("connection error: dial tcp"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stream_past_its_timeout_fails_on_the_callers_side_even_if_the_server_never_answers() {
    // A "server" that takes the connection and every byte, and never answers or closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("test I/O and parsing");
    let addr = listener.local_addr().expect("test I/O and parsing");
    let silent = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("test I/O and parsing");
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink).await;
    });
    let opts = rmicro::rpc::CallOptions {
        timeout: Some(Duration::from_millis(300)),
        ..at(addr)
    };
    let mut stream = client()
        .stream_with::<Tick, Tick>("counter", "Counter.Count", opts)
        .await
        .expect("open");
    stream.send(&Tick { n: 1 }).await.expect("send");
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), stream.recv())
        .await
        .expect("the caller's own deadline ends the wait")
        .expect_err("timed out");
    assert_eq!(err.code, 408, "{err}");
    assert!(err.detail.contains("past its timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(stream.recv().await.expect("ended").is_none());
    let err = stream
        .send(&Tick { n: 2 })
        .await
        .expect_err("past the deadline");
    assert_eq!(err.code, 408, "{err}");
    silent.abort();
}
