//! go-micro's stream framing on one TCP connection: HTTP/1.1 messages that are not paired.
//!
//! go-micro's http transport opens a connection per stream and writes every message the
//! caller sends as its own `POST / HTTP/1.1` (the body `Content-Length`-framed, or chunked when
//! it is empty, as Go's client sends an empty POST body); the server answers with as many
//! `HTTP/1.1 200 OK` responses as it has messages, independently of the requests. Each
//! response echoes the headers of the connection's first request, with the message's own on
//! top. Nothing here is HTTP as a client library speaks it, so it is read and written by hand.

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The most headers one message may carry.
const MAX_HEADERS: usize = 128;
/// The largest head (request line and headers) read.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// One message's headers (names as sent) and body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Message {
    /// A response's status (go-micro's server always sends 200); 200 for a request.
    pub(crate) status: u16,
    pub(crate) header: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Message {
    /// The value of header `name`, whatever its case (Go canonicalises names on the wire).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name` or go-micro's `X-` copy of it.
    pub(crate) fn micro(&self, name: &str) -> Option<&str> {
        self.get(name)
            .or_else(|| self.get(&format!("X-{name}")))
            .filter(|v| !v.is_empty())
    }
}

/// Why a message could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection between messages.
    Closed,
    /// The connection failed or closed mid-message.
    Io(std::io::Error),
    /// Not a request this framing reads; the text says what.
    Malformed(String),
    /// A body over the limit.
    TooLarge(usize),
}

/// A head parsed from the start of `buf`: the message's headers, its body framing, and how many
/// bytes the head took. `Ok(None)`: the head is not complete yet.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP/1.1 request: {e}")),
    };
    read_headers(request.headers, 200).map(|head| Some((head, used)))
}

/// [`parse_head`] for a response: the server's side of a stream.
fn parse_response_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let used = match response.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP/1.1 response: {e}")),
    };
    let status = response.code.unwrap_or(0);
    read_headers(response.headers, status).map(|head| Some((head, used)))
}

fn read_headers(headers: &[httparse::Header<'_>], status: u16) -> Result<Head, String> {
    let mut head = Head {
        status,
        ..Head::default()
    };
    for h in headers {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| format!("header `{}` is not UTF-8", h.name))?
            .trim()
            .to_owned();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.length = Some(
                value
                    .parse()
                    .map_err(|_| format!("invalid Content-Length `{value}`"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
            if !head.chunked {
                return Err(format!("unsupported Transfer-Encoding `{value}`"));
            }
        }
        head.header.push((h.name.to_owned(), value));
    }
    Ok(head)
}

/// A message head.
#[derive(Debug, Default)]
pub(crate) struct Head {
    /// A response's status; 200 for a request.
    status: u16,
    pub(crate) header: Vec<(String, String)>,
    length: Option<usize>,
    chunked: bool,
}

/// Reads messages from one side of a stream connection, buffering what arrived early.
pub(crate) struct Reader<R> {
    io: R,
    buf: BytesMut,
    max_body: usize,
    /// Reads the server's responses (the caller's side) instead of requests.
    responses: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader of `io` that starts with the bytes already read from it.
    pub(crate) fn new(io: R, read: &[u8], max_body: usize) -> Self {
        Self {
            io,
            buf: BytesMut::from(read),
            max_body,
            responses: false,
        }
    }

    /// A reader of the responses a server sends on `io`.
    pub(crate) fn responses(io: R, max_body: usize) -> Self {
        Self {
            responses: true,
            ..Self::new(io, &[], max_body)
        }
    }

    /// Reads more into the buffer; `false` at the end of the connection.
    async fn fill(&mut self) -> Result<bool, ReadError> {
        self.buf.reserve(8 * 1024);
        let n = self
            .io
            .read_buf(&mut self.buf)
            .await
            .map_err(ReadError::Io)?;
        Ok(n > 0)
    }

    /// The next message: `Err(Closed)` when the connection ends cleanly between messages.
    pub(crate) async fn next(&mut self) -> Result<Message, ReadError> {
        let parse = if self.responses {
            parse_response_head
        } else {
            parse_head
        };
        let (head, used) = loop {
            match parse(&self.buf).map_err(ReadError::Malformed)? {
                Some(parsed) => break parsed,
                None if self.buf.len() > MAX_HEAD => {
                    return Err(ReadError::Malformed(format!(
                        "a message head over {MAX_HEAD} bytes"
                    )));
                }
                None => {
                    if !self.fill().await? {
                        return Err(if self.buf.is_empty() {
                            ReadError::Closed
                        } else {
                            ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())
                        });
                    }
                }
            }
        };
        self.buf.advance(used);
        let body = if head.chunked {
            self.chunked().await?
        } else {
            let length = head.length.unwrap_or(0);
            if length > self.max_body {
                return Err(ReadError::TooLarge(length));
            }
            self.exactly(length).await?
        };
        Ok(Message {
            status: head.status,
            header: head.header,
            body,
        })
    }

    async fn exactly(&mut self, n: usize) -> Result<Bytes, ReadError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(self.buf.split_to(n).freeze())
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Result<Bytes, ReadError> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(end).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Malformed(
                    "a chunk line over the limit".to_owned(),
                ));
            }
            if !self.fill().await? {
                return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// A chunked body (RFC 9112 §7.1): sizes in hex, extensions and trailers ignored.
    async fn chunked(&mut self) -> Result<Bytes, ReadError> {
        let mut body = BytesMut::new();
        loop {
            let line = self.line().await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .map(|l| l.split(';').next().unwrap_or("").trim())
                .and_then(|hex| usize::from_str_radix(hex, 16).ok())
                .ok_or_else(|| ReadError::Malformed("an invalid chunk size".to_owned()))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body.freeze());
            }
            if body.len() + size > self.max_body {
                return Err(ReadError::TooLarge(body.len() + size));
            }
            let chunk = self.exactly(size).await?;
            body.extend_from_slice(&chunk);
            if !self.line().await?.is_empty() {
                return Err(ReadError::Malformed("a chunk without its CRLF".to_owned()));
            }
        }
    }
}

/// Headers that describe one HTTP message's framing, never echoed.
fn is_framing(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "host"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}

/// One `HTTP/1.1 200 OK` response: `echo`'s headers (the first request's), then `header`'s
/// over them, then the body with its length.
pub(crate) fn response(echo: &[(String, String)], header: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    for (name, value) in echo {
        let replaced = header.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !replaced && !is_framing(name) {
            push_header(&mut out, name, value);
        }
    }
    for (name, value) in header {
        push_header(&mut out, name, value);
    }
    push_header(&mut out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// One `POST / HTTP/1.1` request, as go-micro's http transport writes a caller's message.
pub(crate) fn request(
    host: &str,
    header: &[(String, String)],
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"POST / HTTP/1.1\r\n");
    push_header(&mut out, "Host", host);
    for (name, value) in header {
        push_header(&mut out, name, value);
    }
    for (name, value) in extra {
        push_header(&mut out, name, value);
    }
    push_header(&mut out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    // A value cannot carry a line break (it would end the header early).
    let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes `bytes` and flushes.
pub(crate) async fn write<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<&'static [u8]> {
        Reader::new(&[][..], bytes, 1024)
    }

    #[tokio::test]
    async fn reads_go_micros_stream_messages() {
        // What Go's client writes: a sized body, then an empty one (chunked), then EOS.
        let wire = b"POST / HTTP/1.1\r\nHost: a\r\nMicro-Stream: 0\r\nContent-Length: 3\r\n\r\n{}\n\
POST / HTTP/1.1\r\nHost: a\r\nMicro-Stream: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
POST / HTTP/1.1\r\nHost: a\r\nMicro-Error: EOS\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut r = reader(wire);
        let first = r.next().await.expect("first");
        assert_eq!(first.micro("Micro-Stream"), Some("0"));
        assert_eq!(&first.body[..], b"{}\n");
        let second = r.next().await.expect("second");
        assert!(second.body.is_empty());
        let third = r.next().await.expect("third");
        assert_eq!(third.get("micro-error"), Some("EOS"));
        assert_eq!(&third.body[..], b"abcde");
        assert!(matches!(r.next().await, Err(ReadError::Closed)));
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_read() {
        let mut r = reader(b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
        assert!(matches!(r.next().await, Err(ReadError::TooLarge(2000))));
        let mut r = reader(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert!(matches!(r.next().await, Err(ReadError::Malformed(_))));
        let mut r = reader(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
        assert!(matches!(r.next().await, Err(ReadError::Io(_))));
        let mut r = reader(b"\x00\x01 garbage\r\n\r\n");
        assert!(matches!(r.next().await, Err(ReadError::Malformed(_))));
    }

    #[test]
    fn responses_echo_the_first_request_with_the_message_on_top() {
        let echo = vec![
            ("Micro-Stream".to_owned(), "7".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Content-Length".to_owned(), "3".to_owned()),
            ("Micro-Error".to_owned(), "old".to_owned()),
        ];
        let text = String::from_utf8(response(&echo, &[("Micro-Error", "EOS\r\nX: y")], b""))
            .expect("text");
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nMicro-Stream: 7\r\nContent-Type: application/json\r\n\
             Micro-Error: EOSX: y\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
