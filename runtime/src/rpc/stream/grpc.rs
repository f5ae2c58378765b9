//! Streams over go-micro's grpc protocol: one HTTP/2 stream per RPC stream, the messages
//! length-prefixed in its bodies, the end of the caller's side its `END_STREAM` (gRPC has the
//! half-close mucp lacks), the end of the server's side its status trailers. go-micro's grpc
//! client sends no placeholder first message, so every message is the handler's.
//!
//! Back-pressure is HTTP/2's flow control: a handler that does not read stops the reader task
//! taking frames, so the caller's window closes; a caller that does not read stops the
//! server's body being polled. A caller that resets its stream or drops its connection drops
//! the response body, which cancels the handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming as HttpIncoming, SizeHint};
use tokio::sync::mpsc;

use super::{DEPTH, Incoming, StreamCall, StreamFn};
use crate::Error;
use crate::registry::Metadata;
use crate::rpc::grpc;

/// A body fed by a channel: the frames the other task sends, ending when it drops its sender.
#[derive(Debug)]
pub(crate) struct ChannelBody(pub(crate) mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// What the server knows of one gRPC stream call.
pub(crate) struct Call {
    pub(crate) service: String,
    pub(crate) endpoint: String,
    pub(crate) header: Metadata,
    /// The codec's content type (`application/json` or `application/protobuf`).
    pub(crate) codec_type: &'static str,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_message: usize,
    pub(crate) peer: SocketAddr,
    /// Held while the stream runs (the server counts it in flight).
    pub(crate) in_flight: Box<dyn Send>,
}

/// Serves one gRPC stream: the caller's messages from `body` go to the handler `call`, its
/// replies and then its status go to the returned response body.
pub(crate) fn serve(body: HttpIncoming, handler: StreamFn, call: Call) -> ChannelBody {
    let Call {
        service,
        endpoint,
        header,
        codec_type,
        timeout,
        max_message,
        peer,
        in_flight,
    } = call;
    let (frames, frames_rx) = mpsc::channel::<Frame<Bytes>>(DEPTH);
    let (stream, requests_tx, mut replies_rx) = StreamCall::channel(
        service.clone(),
        endpoint.clone(),
        header,
        codec_type,
        codec_type,
    );
    let reader = tokio::spawn(read_requests(
        body,
        requests_tx,
        service.clone(),
        max_message,
    ));
    let handler = super::within(timeout, service, handler(stream));
    tokio::spawn(async move {
        let _in_flight = in_flight;
        tokio::pin!(handler);
        let mut reader = reader;
        let mut reader_done = false;
        let result = loop {
            tokio::select! {
                result = &mut handler => break Some(result),
                Some(reply) = replies_rx.recv() => {
                    if frames.send(Frame::data(grpc::frame(&reply))).await.is_err() {
                        break None;
                    }
                }
                gone = &mut reader, if !reader_done => {
                    reader_done = true;
                    if matches!(gone, Ok(false)) {
                        break None;
                    }
                }
                () = frames.closed() => break None,
            }
        };
        let Some(result) = result else {
            tracing::debug!(%peer, %endpoint, "grpc stream: the caller went away; handler cancelled");
            reader.abort();
            return;
        };
        while let Ok(reply) = replies_rx.try_recv() {
            if frames.send(Frame::data(grpc::frame(&reply))).await.is_err() {
                reader.abort();
                return;
            }
        }
        if let Err(err) = &result {
            tracing::debug!(%peer, %endpoint, error = %err, "grpc stream ended with an error");
        }
        let _ = frames
            .send(Frame::trailers(grpc::status_trailers(
                result.as_ref().map(|_| ()),
            )))
            .await;
        reader.abort();
    });
    ChannelBody(frames_rx)
}

/// Feeds the caller's messages to the handler; `true` when the caller ended its side
/// (`END_STREAM`), `false` when its stream broke first.
async fn read_requests(
    mut body: HttpIncoming,
    tx: mpsc::Sender<Incoming>,
    service: String,
    max_message: usize,
) -> bool {
    let mut deframer = grpc::Deframer::default();
    loop {
        let failed = |detail: String| Incoming::Failed(Error::new(&service, 499, detail));
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // the caller's trailers carry nothing for the handler
                };
                deframer.push(&data);
                loop {
                    match deframer.next(max_message) {
                        Ok(Some(message)) => {
                            // A handler that has finished no longer reads.
                            let _ = tx.send(Incoming::Message(message)).await;
                        }
                        Ok(None) => break,
                        Err(why) => {
                            let _ = tx.send(failed(format!("bad stream message: {why}"))).await;
                            return false;
                        }
                    }
                }
            }
            None if deframer.is_empty() => {
                let _ = tx.send(Incoming::End).await;
                return true;
            }
            None => {
                let detail = "the caller ended the stream inside a message".to_owned();
                let _ = tx.send(failed(detail)).await;
                return false;
            }
            Some(Err(err)) => {
                let detail = format!("the caller's stream failed: {err}");
                let _ = tx.send(failed(detail)).await;
                return false;
            }
        }
    }
}

/// The caller's side of a gRPC stream: its messages go to the request body, the server's come
/// from the response.
pub(crate) struct Replies {
    /// The response, until its headers arrive (the server may send them only with its first
    /// message, so they are not waited for when the stream opens).
    response: Option<tokio::task::JoinHandle<hyper::Result<http::Response<HttpIncoming>>>>,
    body: Option<HttpIncoming>,
    deframer: grpc::Deframer,
    /// The codec of the server's messages (from its `content-type`).
    pub(crate) content_type: Option<&'static str>,
    max_message: usize,
    /// The HTTP/2 connection's task, ended with the stream.
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Replies {
    fn drop(&mut self) {
        if let Some(response) = &self.response {
            response.abort();
        }
        self.connection.abort();
    }
}

/// Opens a gRPC stream on `io` (connected to `address`) to `path` with `headers`: returns the
/// sender of the request body's frames and the reader of the replies.
pub(crate) async fn open<IO>(
    io: IO,
    address: &str,
    path: &str,
    headers: http::HeaderMap,
    max_message: usize,
) -> Result<(mpsc::Sender<Frame<Bytes>>, Replies), Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| {
        Error::internal_server_error(
            crate::rpc::CLIENT_ID,
            format!("connection error: the grpc stream to `{address}` failed: {e}"),
        )
    };
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| failed(&e))?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let uri: http::Uri = format!("http://{address}{path}")
        .parse()
        .map_err(|e| failed(&e))?;
    let (frames, frames_rx) = mpsc::channel::<Frame<Bytes>>(DEPTH);
    let mut request = http::Request::new(ChannelBody(frames_rx));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    sender.ready().await.map_err(|e| failed(&e))?;
    let response = sender.send_request(request);
    let response = tokio::spawn(async move {
        let _sender = sender; // the connection stays open while the stream is
        response.await
    });
    Ok((
        frames,
        Replies {
            response: Some(response),
            body: None,
            deframer: grpc::Deframer::default(),
            content_type: None,
            max_message,
            connection,
        },
    ))
}

impl Replies {
    /// The server's next message; `None` once it has ended the stream with `grpc-status: 0`.
    /// Its error status is an `Err`, and the end.
    pub(crate) async fn next(&mut self, service: &str) -> Result<Option<Bytes>, Error> {
        let client_error =
            |detail: String| Error::internal_server_error(crate::rpc::CLIENT_ID, detail);
        if let Some(response) = self.response.take() {
            let response = response
                .await
                .map_err(|e| {
                    client_error(format!(
                        "connection error: the grpc stream to `{service}` failed: {e}"
                    ))
                })?
                .map_err(|e| {
                    client_error(format!(
                        "connection error: the grpc stream to `{service}` failed: {e}"
                    ))
                })?;
            let (parts, body) = response.into_parts();
            if parts.status != http::StatusCode::OK {
                return Err(client_error(format!(
                    "the grpc stream to `{service}` was answered {}",
                    parts.status
                )));
            }
            self.content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(grpc::codec_of);
            // A trailers-only answer: the status is in the headers.
            if let Some(status) = grpc::status_error(&parts.headers, service) {
                return status.map(|()| None);
            }
            self.body = Some(body);
        }
        let Some(body) = self.body.as_mut() else {
            return Ok(None);
        };
        loop {
            match self.deframer.next(self.max_message) {
                Ok(Some(message)) => return Ok(Some(message)),
                Ok(None) => {}
                Err(why) => {
                    self.body = None;
                    return Err(client_error(format!(
                        "a bad grpc message from `{service}`: {why}"
                    )));
                }
            }
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.deframer.push(&data),
                    Err(frame) => {
                        let trailers = frame.into_trailers().unwrap_or_default();
                        self.body = None;
                        return match grpc::status_error(&trailers, service) {
                            Some(Ok(())) if self.deframer.is_empty() => Ok(None),
                            Some(Ok(())) => Err(client_error(format!(
                                "`{service}` ended its grpc stream inside a message"
                            ))),
                            Some(Err(err)) => Err(err),
                            None => Err(client_error(format!(
                                "`{service}` ended its grpc stream without a grpc-status"
                            ))),
                        };
                    }
                },
                None => {
                    self.body = None;
                    return Err(client_error(format!(
                        "`{service}` ended its grpc stream without a grpc-status"
                    )));
                }
                Some(Err(err)) => {
                    self.body = None;
                    return Err(client_error(format!(
                        "connection error: the grpc stream from `{service}` failed: {err}"
                    )));
                }
            }
        }
    }
}
