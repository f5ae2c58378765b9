//! Streaming RPC, as go-micro's default stack (mucp over its http transport) streams.
//!
//! A stream is a connection of its own. The caller's first request names the endpoint and
//! carries `Micro-Stream: <id>`; its body is a placeholder (go-micro's generated clients send
//! an empty message first, and go-micro's server drops it), so the messages the handler sees
//! start with the second request. Every message either side sends is one HTTP/1.1 message:
//! `POST /` from the caller, `200 OK` from the server, not paired. The server ends its side
//! with a response whose `Micro-Error` is `EOS`, or the handler's error as go-micro's JSON;
//! the caller ends its side with a request whose `Micro-Error` is `EOS` and closes the
//! connection (go-micro has no half-close).
//!
//! Handlers see the stream as [`Requests`] (the caller's messages, decoded by the stream's
//! `Content-Type`) and [`Replies`] (sent in the `Accept` type). Both are bounded: a handler
//! that does not read stops the server reading the connection, and [`Replies::send`] waits
//! while the connection cannot take more. A caller that goes away ends [`Requests`] with an
//! error, fails the next [`Replies::send`], and cancels the handler (its future is dropped).
//!
//! The same handlers serve streams over go-micro's grpc protocol (a server with
//! `--server=grpc`), and [`crate::rpc::Client::stream`] opens one when the node's record says
//! `protocol=grpc`: one HTTP/2 stream each, messages length-prefixed, the caller's end its
//! half-close, the server's its status trailers. With TLS on the client, both go over TLS.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::CLIENT_ID;
use crate::codec::{self, Decode, Encode, Format};
use crate::registry::Metadata;
use crate::{Error, Result};

pub(crate) mod grpc;
pub(crate) mod wire;

/// How many messages wait in each direction before the other side is held back.
const DEPTH: usize = 16;

/// What arrived from the caller.
#[derive(Debug)]
pub(crate) enum Incoming {
    Message(Bytes),
    /// The caller's `EOS`: it sends no more.
    End,
    /// The caller's error, or the connection failed.
    Failed(Error),
}

/// The caller's messages on a stream, decoded as `T`.
pub struct Requests<T> {
    rx: mpsc::Receiver<Incoming>,
    service: Arc<str>,
    content_type: Arc<str>,
    done: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Requests<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requests")
            .field("content_type", &self.content_type)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Decode> Requests<T> {
    /// The next message; `None` once the caller has said it sends no more. A message that
    /// does not decode is an error and the stream goes on; a caller that went away is an
    /// error and the end.
    pub async fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Some(Incoming::Message(body)) => {
                Some(T::decode(&self.service, &self.content_type, &body))
            }
            Some(Incoming::End) => {
                self.done = true;
                None
            }
            Some(Incoming::Failed(err)) => {
                self.done = true;
                Some(Err(err))
            }
            None => {
                self.done = true;
                Some(Err(gone(&self.service)))
            }
        }
    }
}

/// Where a handler sends its messages on a stream, encoded from `T`.
pub struct Replies<T> {
    tx: mpsc::Sender<Bytes>,
    service: Arc<str>,
    accept: Arc<str>,
    _type: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for Replies<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replies")
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

impl<T: Encode> Replies<T> {
    /// Sends one message; waits while the connection cannot take more. Fails when the caller
    /// has gone away.
    pub async fn send(&self, reply: T) -> Result<()> {
        let body = reply.encode(&self.service, &self.accept)?;
        self.tx
            .send(Bytes::from(body))
            .await
            .map_err(|_| gone(&self.service))
    }
}

fn gone(service: &str) -> Error {
    Error::new(service, 499, "the caller closed the stream")
}

/// One stream as the server hands it to an endpoint.
pub struct StreamCall {
    /// `Micro-Service`.
    pub service: String,
    /// `Handler.Method`.
    pub endpoint: String,
    /// The caller's headers beyond the protocol's (its metadata).
    pub header: Metadata,
    content_type: Arc<str>,
    accept: Arc<str>,
    requests: mpsc::Receiver<Incoming>,
    replies: mpsc::Sender<Bytes>,
}

impl fmt::Debug for StreamCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamCall")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl StreamCall {
    /// A stream call for a handler, with the ends the server's side keeps: where the
    /// caller's messages go in, and where the handler's replies come out.
    pub(crate) fn channel(
        service: String,
        endpoint: String,
        header: Metadata,
        content_type: &str,
        accept: &str,
    ) -> (StreamCall, mpsc::Sender<Incoming>, mpsc::Receiver<Bytes>) {
        let (requests_tx, requests) = mpsc::channel(DEPTH);
        let (replies, replies_rx) = mpsc::channel::<Bytes>(DEPTH);
        let call = StreamCall {
            service,
            endpoint,
            header,
            content_type: Arc::from(content_type),
            accept: Arc::from(accept),
            requests,
            replies,
        };
        (call, requests_tx, replies_rx)
    }

    /// The stream's two directions, typed.
    pub fn split<Req, Resp>(self) -> (Requests<Req>, Replies<Resp>) {
        let service: Arc<str> = Arc::from(self.service);
        (
            Requests {
                rx: self.requests,
                service: Arc::clone(&service),
                content_type: self.content_type,
                done: false,
                _type: PhantomData,
            },
            Replies {
                tx: self.replies,
                service,
                accept: self.accept,
                _type: PhantomData,
            },
        )
    }
}

/// A type-erased streaming endpoint of a running service.
pub type StreamFn = Arc<dyn Fn(StreamCall) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// The kind of stream an endpoint serves, as go-micro's generated code has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One request, many replies.
    Server,
    /// Many requests, one reply.
    Client,
    /// Many of each.
    Bidirectional,
}

/// What the server passes to a stream connection.
pub(crate) struct Served<'a> {
    /// The id of the server's own errors.
    pub(crate) id: &'a str,
    /// The service served here (`ServerOptions::name`); empty: any.
    pub(crate) name: &'a str,
    pub(crate) peer: SocketAddr,
}

/// Serves one stream connection whose first message, `first` (read from `reader` already),
/// opened a stream to `call`; replies go to `write`.
pub(crate) async fn serve<R, W>(
    reader: wire::Reader<R>,
    mut write: W,
    first: wire::Message,
    call: StreamFn,
    served: Served<'_>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let Served { id, name, peer } = served;
    let echo = first.header.clone();
    let endpoint = first
        .micro("Micro-Endpoint")
        .or_else(|| first.micro("Micro-Method"))
        .unwrap_or_default()
        .to_owned();
    let service = first.micro("Micro-Service").unwrap_or(id).to_owned();
    let content_type = first
        .get("Content-Type")
        .map_or(codec::PROTOBUF, codec::normalize)
        .to_owned();
    let accept = first
        .get("Accept")
        .map(codec::normalize)
        .filter(|a| Format::of(a).is_some())
        .unwrap_or(&content_type)
        .to_owned();
    let end = |err: Option<&Error>| {
        let value = err.map_or_else(|| "EOS".to_owned(), Error::to_json);
        wire::response(
            &echo,
            &[("Micro-Error", &value), ("X-Micro-Error", &value)],
            b"",
        )
    };
    if !name.is_empty() && first.micro("Micro-Service").is_some_and(|s| s != name) {
        let err = Error::not_found(
            id,
            format!("service `{service}` is not served here, this is `{name}`"),
        );
        let _ = wire::write(&mut write, &end(Some(&err))).await;
        return;
    }
    if Format::of(&content_type).is_none() {
        let err = Error::new(
            &service,
            415,
            format!("unsupported content type `{content_type}`"),
        );
        let _ = wire::write(&mut write, &end(Some(&err))).await;
        return;
    }
    let timeout = first
        .get("Timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|ns| *ns > 0)
        .map(Duration::from_nanos);
    let header = first
        .header
        .iter()
        .filter(|(k, _)| !is_protocol_header(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (stream, requests_tx, mut replies_rx) = StreamCall::channel(
        service.clone(),
        endpoint.clone(),
        header,
        &content_type,
        &accept,
    );
    // The caller's side: every message after the placeholder, until its EOS or the end.
    let reader = tokio::spawn(read_requests(reader, requests_tx, service.clone()));
    let handler = within(timeout, service, call(stream));
    tokio::pin!(handler);
    let mut reader = reader;
    let mut reader_done = false;
    let result = loop {
        tokio::select! {
            result = &mut handler => break Some(result),
            Some(reply) = replies_rx.recv() => {
                let message = wire::response(&echo, &[("Content-Type", &accept)], &reply);
                if let Err(err) = wire::write(&mut write, &message).await {
                    tracing::debug!(%peer, %endpoint, error = %err, "rpc stream: the caller's connection failed");
                    break None;
                }
            }
            gone = &mut reader, if !reader_done => {
                reader_done = true;
                // The caller closed its connection without ending the stream: cancel.
                if matches!(gone, Ok(Closed::Abruptly)) {
                    tracing::debug!(%peer, %endpoint, "rpc stream: the caller went away; handler cancelled");
                    break None;
                }
            }
        }
    };
    if let Some(result) = result {
        // Replies still queued go first.
        while let Ok(reply) = replies_rx.try_recv() {
            let message = wire::response(&echo, &[("Content-Type", &accept)], &reply);
            if wire::write(&mut write, &message).await.is_err() {
                return;
            }
        }
        if let Err(err) = &result {
            tracing::debug!(%peer, %endpoint, error = %err, "rpc stream ended with an error");
        }
        let _ = wire::write(&mut write, &end(result.as_ref().err())).await;
        // go-micro's caller answers the end with its own EOS and closes; wait for that (or
        // a second) so that closing first does not reset what was just written.
        if !reader_done {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut reader).await;
        }
    }
    reader.abort();
}

/// A stream handler's run, ended with go-micro's timeout error once the caller's `timeout`
/// (if any) has passed.
pub(crate) async fn within(
    timeout: Option<Duration>,
    service: String,
    handler: BoxFuture<'static, Result<()>>,
) -> Result<()> {
    let Some(limit) = timeout else {
        return handler.await;
    };
    tokio::time::timeout(limit, handler)
        .await
        .unwrap_or_else(|_| {
            Err(Error::timeout(
                &service,
                format!("stream timed out after {limit:?}"),
            ))
        })
}

/// How the caller's side ended.
#[derive(Debug, PartialEq, Eq)]
enum Closed {
    /// With its EOS (or an error it sent).
    Ended,
    /// The connection closed or failed before the caller ended the stream.
    Abruptly,
}

async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: wire::Reader<R>,
    tx: mpsc::Sender<Incoming>,
    service: String,
) -> Closed {
    let mut ended = false;
    loop {
        let message = match reader.next().await {
            Ok(message) => message,
            Err(wire::ReadError::Closed) if ended => return Closed::Ended,
            Err(err) => {
                if ended {
                    return Closed::Ended;
                }
                let detail = match err {
                    wire::ReadError::TooLarge(n) => {
                        format!("a stream message of {n} bytes is over the limit")
                    }
                    wire::ReadError::Malformed(why) => format!("bad stream message: {why}"),
                    wire::ReadError::Io(e) => format!("the caller's connection failed: {e}"),
                    wire::ReadError::Closed => "the caller closed the stream".to_owned(),
                };
                let _ = tx
                    .send(Incoming::Failed(Error::new(&service, 499, detail)))
                    .await;
                return Closed::Abruptly;
            }
        };
        if ended {
            // After its EOS the caller has nothing more to say; go-micro closes.
            continue;
        }
        let incoming = match message.micro("Micro-Error") {
            Some("EOS") => {
                ended = true;
                Incoming::End
            }
            Some(error) => {
                ended = true;
                Incoming::Failed(Error::parse(error))
            }
            None => Incoming::Message(message.body),
        };
        // A handler that has finished no longer reads: the rest is dropped until the caller
        // ends.
        let _ = tx.send(incoming).await;
    }
}

/// Headers of the protocol itself, not handed to handlers as metadata.
fn is_protocol_header(name: &str) -> bool {
    const PROTOCOL: [&str; 12] = [
        "content-length",
        "content-type",
        "accept",
        "host",
        "transfer-encoding",
        "connection",
        "user-agent",
        "accept-encoding",
        "timeout",
        "micro-stream",
        "micro-error",
        "x-micro-error",
    ];
    PROTOCOL.iter().any(|p| name.eq_ignore_ascii_case(p))
}

/// Whether a request head opens a go-micro stream (it carries `Micro-Stream`).
pub(crate) fn opens_stream(first: &wire::Message) -> bool {
    first.micro("Micro-Stream").is_some()
}

/// The connection a caller's mucp stream runs on (plain TCP or TLS).
pub(crate) type Conn = super::tls::connect::Stream;

/// A stream a caller opened with [`crate::rpc::Client::stream`]: `Req` messages out, `Resp`
/// messages in, on a connection of its own (mucp, over TLS when the client has it) or an
/// HTTP/2 stream (go-micro's grpc protocol, chosen by the node's record). End the sending side
/// with [`CallStream::close_send`] (go-micro's `EOS`, gRPC's half-close); dropping the stream
/// closes it, which the server takes as the caller going away.
pub struct CallStream<Req, Resp> {
    sender: StreamSender<Req>,
    receiver: StreamReceiver<Resp>,
}

impl<Req, Resp> fmt::Debug for CallStream<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallStream")
            .field("service", &self.sender.service)
            .field("content_type", &self.sender.content_type)
            .finish_non_exhaustive()
    }
}

impl<Req: Encode, Resp: Decode> CallStream<Req, Resp> {
    /// Opens a mucp stream on `io` (connected to the node at `host`): sends go-micro's
    /// placeholder first message with `header`, the headers every message carries.
    pub(crate) async fn open(
        io: Conn,
        host: String,
        header: Vec<(String, String)>,
        opening: Opening<'_>,
    ) -> Result<Self> {
        let Opening {
            service,
            content_type,
            max_message: max_body,
            deadline,
        } = opening;
        let (read, write) = tokio::io::split(io);
        let service: Arc<str> = Arc::from(service);
        let content_type: Arc<str> = Arc::from(content_type);
        let mut sender = StreamSender {
            out: Out::Mucp {
                write,
                host,
                header,
            },
            deadline,
            service: Arc::clone(&service),
            content_type: Arc::clone(&content_type),
            closed: false,
            _type: PhantomData,
        };
        // go-micro's generated clients open a stream with an empty message, which its server
        // (and rmicro's) drops: `{}` in JSON, no bytes in protobuf.
        let placeholder: &[u8] = if &*content_type == codec::JSON {
            b"{}"
        } else {
            b""
        };
        sender.write_mucp(&[], placeholder).await?;
        Ok(Self {
            sender,
            receiver: StreamReceiver {
                input: In::Mucp(wire::Reader::responses(read, max_body)),
                deadline,
                service,
                content_type,
                done: false,
                _type: PhantomData,
            },
        })
    }

    /// Opens a gRPC stream to a node of go-micro's grpc protocol on `io`, connected to
    /// `address`, with `headers` (its path from the service and endpoint). No placeholder:
    /// go-micro's grpc client sends none.
    pub(crate) async fn open_grpc<IO>(
        io: IO,
        address: &str,
        endpoint: &str,
        headers: http::HeaderMap,
        opening: Opening<'_>,
    ) -> Result<Self>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Opening {
            service,
            content_type,
            max_message,
            deadline,
        } = opening;
        let path = super::grpc::path_of(service, endpoint);
        let (frames, replies) = grpc::open(io, address, &path, headers, max_message).await?;
        let service: Arc<str> = Arc::from(service);
        let content_type: Arc<str> = Arc::from(content_type);
        Ok(Self {
            sender: StreamSender {
                out: Out::Grpc(Some(frames)),
                deadline,
                service: Arc::clone(&service),
                content_type: Arc::clone(&content_type),
                closed: false,
                _type: PhantomData,
            },
            receiver: StreamReceiver {
                input: In::Grpc(Box::new(replies)),
                deadline,
                service,
                content_type,
                done: false,
                _type: PhantomData,
            },
        })
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &Req) -> Result<()> {
        self.sender.send(message).await
    }

    /// The server's next message; `None` once it has ended the stream. The server's error
    /// (go-micro's JSON in `Micro-Error`, or a gRPC status) is an `Err`, and the end.
    pub async fn recv(&mut self) -> Result<Option<Resp>> {
        self.receiver.recv().await
    }

    /// Tells the server no more messages come (go-micro's `EOS`); replies can still be read.
    pub async fn close_send(&mut self) -> Result<()> {
        self.sender.close_send().await
    }

    /// The two sides, to send and receive from different tasks.
    pub fn split(self) -> (StreamSender<Req>, StreamReceiver<Resp>) {
        (self.sender, self.receiver)
    }
}

/// What opening a caller's stream needs beside its connection.
pub(crate) struct Opening<'a> {
    pub(crate) service: &'a str,
    /// The codec's content type of the caller's messages.
    pub(crate) content_type: &'a str,
    /// The largest message read from the server.
    pub(crate) max_message: usize,
    /// When the whole stream must be over.
    pub(crate) deadline: Option<tokio::time::Instant>,
}

/// Where a caller's messages go.
enum Out {
    /// Each message one HTTP/1.1 request on the stream's connection.
    Mucp {
        write: tokio::io::WriteHalf<Conn>,
        host: String,
        header: Vec<(String, String)>,
    },
    /// Each message a frame of the HTTP/2 request body; `None` once the body has ended.
    Grpc(Option<mpsc::Sender<hyper::body::Frame<Bytes>>>),
}

/// The sending side of a [`CallStream`].
pub struct StreamSender<Req> {
    out: Out,
    /// When the whole stream must be over (the call's `timeout`).
    deadline: Option<tokio::time::Instant>,
    service: Arc<str>,
    content_type: Arc<str>,
    closed: bool,
    _type: PhantomData<fn(Req)>,
}

impl<Req> fmt::Debug for StreamSender<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender")
            .field("service", &self.service)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<Req: Encode> StreamSender<Req> {
    /// Sends one message; waits while the server cannot take more. An error after
    /// [`StreamSender::close_send`], and once the call's `timeout` has passed.
    pub async fn send(&mut self, message: &Req) -> Result<()> {
        match self.deadline {
            // Checked first: a write that needs no wait would go through past it.
            Some(deadline) if deadline <= tokio::time::Instant::now() => {
                Err(timed_out(&self.service))
            }
            Some(deadline) => tokio::time::timeout_at(deadline, self.send_now(message))
                .await
                .unwrap_or_else(|_| Err(timed_out(&self.service))),
            None => self.send_now(message).await,
        }
    }

    async fn send_now(&mut self, message: &Req) -> Result<()> {
        if self.closed {
            return Err(Error::bad_request(
                CLIENT_ID,
                format!("the stream to `{}` is closed for sending", self.service),
            ));
        }
        let body = message.encode(CLIENT_ID, &self.content_type)?;
        match &mut self.out {
            Out::Mucp { .. } => self.write_mucp(&[], &body).await,
            Out::Grpc(frames) => {
                let frame = hyper::body::Frame::data(super::grpc::frame(&body));
                match frames {
                    Some(frames) if frames.send(frame).await.is_ok() => Ok(()),
                    _ => Err(self.failed(&"the server closed the stream")),
                }
            }
        }
    }

    /// Tells the server no more messages come (go-micro's `EOS`, gRPC's end of the request
    /// body). Idempotent.
    pub async fn close_send(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        match &mut self.out {
            Out::Mucp { .. } => self.write_mucp(&[("Micro-Error", "EOS")], b"").await,
            Out::Grpc(frames) => {
                *frames = None;
                Ok(())
            }
        }
    }

    fn failed(&self, why: &dyn fmt::Display) -> Error {
        Error::internal_server_error(
            CLIENT_ID,
            format!(
                "connection error: the stream to `{}` failed: {why}",
                self.service
            ),
        )
    }

    async fn write_mucp(&mut self, extra: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let Out::Mucp {
            write,
            host,
            header,
        } = &mut self.out
        else {
            return Ok(());
        };
        let message = wire::request(host, header, extra, body);
        let written = wire::write(write, &message).await;
        written.map_err(|e| self.failed(&e))
    }
}

/// The caller's error for a stream past its deadline.
fn timed_out(service: &str) -> Error {
    Error::timeout(
        CLIENT_ID,
        format!("the stream to `{service}` is past its timeout"),
    )
}

/// Where the server's messages come from.
enum In {
    Mucp(wire::Reader<tokio::io::ReadHalf<Conn>>),
    Grpc(Box<grpc::Replies>),
}

/// The receiving side of a [`CallStream`].
pub struct StreamReceiver<Resp> {
    input: In,
    /// When the whole stream must be over (the call's `timeout`).
    deadline: Option<tokio::time::Instant>,
    service: Arc<str>,
    content_type: Arc<str>,
    done: bool,
    _type: PhantomData<fn() -> Resp>,
}

impl<Resp> fmt::Debug for StreamReceiver<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReceiver")
            .field("service", &self.service)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<Resp: Decode> StreamReceiver<Resp> {
    /// The server's next message; `None` once it has ended the stream. Once the call's
    /// `timeout` has passed, an error (408) and the end.
    pub async fn recv(&mut self) -> Result<Option<Resp>> {
        let Some(deadline) = self.deadline else {
            return self.recv_now().await;
        };
        match tokio::time::timeout_at(deadline, self.recv_now()).await {
            Ok(next) => next,
            Err(_) if self.done => Ok(None),
            Err(_) => {
                self.done = true;
                Err(timed_out(&self.service))
            }
        }
    }

    async fn recv_now(&mut self) -> Result<Option<Resp>> {
        if self.done {
            return Ok(None);
        }
        let reader = match &mut self.input {
            In::Mucp(reader) => reader,
            In::Grpc(replies) => {
                let next = replies.next(&self.service).await;
                let content_type = replies.content_type.unwrap_or(&self.content_type);
                return match next {
                    Ok(Some(message)) => Resp::decode(CLIENT_ID, content_type, &message).map(Some),
                    Ok(None) => {
                        self.done = true;
                        Ok(None)
                    }
                    Err(err) => {
                        self.done = true;
                        Err(err)
                    }
                };
            }
        };
        let message = match reader.next().await {
            Ok(message) => message,
            Err(err) => {
                self.done = true;
                let detail = match err {
                    wire::ReadError::Closed | wire::ReadError::Io(_) => format!(
                        "connection error: `{}` closed the stream before ending it",
                        self.service
                    ),
                    wire::ReadError::TooLarge(n) => {
                        format!(
                            "a stream message of {n} bytes from `{}` is over the limit",
                            self.service
                        )
                    }
                    wire::ReadError::Malformed(why) => {
                        format!("a bad stream message from `{}`: {why}", self.service)
                    }
                };
                return Err(Error::internal_server_error(CLIENT_ID, detail));
            }
        };
        if message.status != 200 {
            self.done = true;
            let text = String::from_utf8_lossy(&message.body[..message.body.len().min(1024)]);
            return Err(Error::internal_server_error(
                CLIENT_ID,
                format!("{}: {}", message.status, text.trim()),
            ));
        }
        match message.micro("Micro-Error") {
            Some("EOS") => {
                self.done = true;
                Ok(None)
            }
            Some(error) => {
                self.done = true;
                Err(Error::parse(error))
            }
            None => {
                let content_type = message
                    .get("Content-Type")
                    .map_or(&*self.content_type, codec::normalize);
                Resp::decode(CLIENT_ID, content_type, &message.body).map(Some)
            }
        }
    }
}
