//! go-micro's grpc protocol (`--server=grpc`, `--client=grpc` in go-micro v5): calls as
//! gRPC over HTTP/2, without TLS (h2c) or, when the client and server have TLS, over TLS with
//! ALPN `h2`. Streams: see [`super::stream`].
//!
//! A call is `POST /<service>.<Handler>/<Method>` (go-micro's server keeps the last dotted
//! part of the first segment as the handler, so any prefix works), `content-type:
//! application/grpc+proto` (or `+json`; plain `application/grpc` is protobuf), the metadata as
//! lowercase headers, `timeout` in nanoseconds, and the body one length-prefixed message (a
//! flag byte, 0 for uncompressed, then a big-endian `u32` length). The answer is one such
//! message and the trailers `grpc-status: 0`; an error is `grpc-status` from its HTTP code as
//! go-micro maps it, with `grpc-message` holding go-micro's error JSON (percent-encoded), which
//! go-micro's client parses back into the error.
//!
//! An rmicro server serves this beside mucp on the same port when it runs with `--server=grpc`
//! (and then registers `protocol=grpc`, `server=grpc`, `transport=grpc`, as go-micro's grpc
//! server does); an rmicro client calls a node that way when its registry record says
//! `protocol=grpc`, so it needs no flag.

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::codec;

/// How an HTTP/2 connection starts (its preface's first line).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// The node metadata value that marks a gRPC node (`protocol`, `server` and `transport`).
pub const PROTOCOL: &str = "grpc";

/// The endpoint (`Handler.Method`) and the service prefix (if any) of a gRPC path.
pub(crate) fn endpoint_of(path: &str) -> Option<(Option<&str>, String)> {
    let (service_part, method) = path.strip_prefix('/')?.split_once('/')?;
    if method.is_empty() || method.contains('/') || service_part.is_empty() {
        return None;
    }
    let (prefix, handler) = match service_part.rsplit_once('.') {
        Some((prefix, handler)) => (Some(prefix), handler),
        None => (None, service_part),
    };
    if handler.is_empty() {
        return None;
    }
    Some((prefix, format!("{handler}.{method}")))
}

/// The gRPC path go-micro's client uses for `endpoint` of `service`.
pub(crate) fn path_of(service: &str, endpoint: &str) -> String {
    let (handler, method) = endpoint.split_once('.').unwrap_or((endpoint, ""));
    if service.is_empty() {
        format!("/{handler}/{method}")
    } else {
        format!("/{service}.{handler}/{method}")
    }
}

/// The codec content type of a gRPC content type: `None` when it is not gRPC or names a
/// codec rmicro does not have.
pub(crate) fn codec_of(content_type: &str) -> Option<&'static str> {
    match codec::normalize(content_type) {
        "application/grpc" | "application/grpc+proto" => Some(codec::PROTOBUF),
        "application/grpc+json" => Some(codec::JSON),
        _ => None,
    }
}

/// The gRPC content type of a codec content type.
pub(crate) fn content_type_of(codec_type: &str) -> &'static str {
    if codec_type == codec::JSON {
        "application/grpc+json"
    } else {
        "application/grpc+proto"
    }
}

/// One message, length-prefixed and uncompressed.
pub(crate) fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    // A message over 4 GiB cannot be framed; the server's body limit is far below.
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(message);
    out.freeze()
}

/// The one message of a unary gRPC body.
pub(crate) fn unframe(body: &Bytes) -> Result<Bytes, String> {
    if body.len() < 5 {
        return Err(format!(
            "a gRPC message needs a 5-byte prefix, the body has {} bytes",
            body.len()
        ));
    }
    if body[0] != 0 {
        return Err("compressed gRPC messages are not supported".to_owned());
    }
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() != 5 + length {
        return Err(format!(
            "the gRPC message says {length} bytes, the body holds {}",
            body.len() - 5
        ));
    }
    Ok(body.slice(5..))
}

/// Splits the length-prefixed messages of a streamed gRPC body as its bytes arrive.
#[derive(Debug, Default)]
pub(crate) struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    /// Adds bytes that arrived.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether nothing is left over (a stream that ends here ended between messages).
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole message, if one has arrived; an error for a compressed message or one
    /// over `max` bytes (the stream cannot go on after either).
    pub(crate) fn next(&mut self, max: usize) -> Result<Option<Bytes>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err("compressed gRPC messages are not supported".to_owned());
        }
        let length =
            u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if length > max {
            return Err(format!(
                "a gRPC message of {length} bytes is over the limit of {max}"
            ));
        }
        if self.buf.len() < 5 + length {
            self.buf.reserve(5 + length - self.buf.len());
            return Ok(None);
        }
        let _ = self.buf.split_to(5);
        Ok(Some(self.buf.split_to(length).freeze()))
    }
}

/// A call's deadline from its headers: go-micro's `timeout` (nanoseconds), else gRPC's
/// `grpc-timeout` (digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`).
pub(crate) fn timeout_of(headers: &http::HeaderMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ns) = text("timeout").and_then(|t| t.trim().parse::<u64>().ok()) {
        return (ns > 0).then(|| Duration::from_nanos(ns));
    }
    let value = text("grpc-timeout")?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let limit = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    (!limit.is_zero()).then_some(limit)
}

/// The status trailers that end a gRPC answer: `grpc-status` 0, or the error's code as
/// go-micro maps it with its JSON in `grpc-message`.
pub(crate) fn status_trailers(result: Result<(), &crate::Error>) -> http::HeaderMap {
    use http::HeaderValue;
    let mut trailers = http::HeaderMap::new();
    match result {
        Ok(()) => {
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
        }
        Err(err) => {
            trailers.insert("grpc-status", HeaderValue::from(status_of(err.code)));
            if let Ok(message) = HeaderValue::from_str(&encode_message(&err.to_json())) {
                trailers.insert("grpc-message", message);
            }
        }
    }
    trailers
}

/// The error a gRPC answer's status names (in its trailers, or its headers when it is
/// trailers-only): `None` for `grpc-status: 0`. go-micro's grpc server puts its error's JSON
/// in `grpc-message`; any other message becomes the detail of an error of `service`.
pub(crate) fn status_error(
    map: &http::HeaderMap,
    service: &str,
) -> Option<std::result::Result<(), crate::Error>> {
    let status = map
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())?;
    if status == 0 {
        return Some(Ok(()));
    }
    let message = map
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(decode_message)
        .unwrap_or_default();
    let parsed = crate::Error::parse(&message);
    Some(Err(if parsed.id.is_empty() {
        crate::Error::new(service, code_of(status), message)
    } else {
        parsed
    }))
}

/// go-micro's mapping from an error's HTTP code to a gRPC status code.
pub(crate) fn status_of(code: i32) -> u32 {
    match code {
        400 => 3,  // InvalidArgument
        401 => 16, // Unauthenticated
        403 => 7,  // PermissionDenied
        404 => 5,  // NotFound
        408 => 4,  // DeadlineExceeded
        409 => 6,  // AlreadyExists
        412 => 9,  // FailedPrecondition
        500 => 13, // Internal
        501 => 12, // Unimplemented
        503 => 14, // Unavailable
        _ => 2,    // Unknown
    }
}

/// The HTTP code of a gRPC status code (go-micro's mapping the other way).
pub(crate) fn code_of(status: u32) -> i32 {
    match status {
        3 => 400,
        16 => 401,
        7 => 403,
        5 => 404,
        4 => 408,
        6 => 409,
        9 => 412,
        12 => 501,
        14 => 503,
        _ => 500,
    }
}

/// `grpc-message` encoding: percent-encodes what is not printable ASCII, and `%`.
pub(crate) fn encode_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a `grpc-message` value.
pub(crate) fn decode_message(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_go_micro_writes_and_reads_them() {
        assert_eq!(
            endpoint_of("/student_service.StudentService/GetStudent"),
            Some((
                Some("student_service"),
                "StudentService.GetStudent".to_owned()
            ))
        );
        assert_eq!(
            endpoint_of("/go.micro.srv.Greeter/Hello"),
            Some((Some("go.micro.srv"), "Greeter.Hello".to_owned()))
        );
        assert_eq!(
            endpoint_of("/Greeter/Hello"),
            Some((None, "Greeter.Hello".to_owned()))
        );
        assert_eq!(endpoint_of("/"), None);
        assert_eq!(endpoint_of("/Greeter/"), None);
        assert_eq!(endpoint_of("/a/b/c"), None);
        assert_eq!(
            path_of("student_service", "StudentService.GetStudent"),
            "/student_service.StudentService/GetStudent"
        );
    }

    #[test]
    fn frames_round_trip_and_bad_ones_are_named() {
        let framed = frame(b"abc");
        assert_eq!(&framed[..], b"\0\0\0\0\x03abc");
        assert_eq!(
            unframe(&framed).expect("one message"),
            Bytes::from_static(b"abc")
        );
        assert!(unframe(&Bytes::from_static(b"\0\0")).is_err());
        assert!(unframe(&Bytes::from_static(b"\x01\0\0\0\x01a")).is_err());
        assert!(unframe(&Bytes::from_static(b"\0\0\0\0\x05ab")).is_err());
    }

    #[test]
    fn a_streamed_body_is_split_into_its_messages_however_it_arrives() {
        let mut body = Vec::new();
        for message in [&b"one"[..], b"", b"three"] {
            body.extend_from_slice(&frame(message));
        }
        // Byte by byte: a message comes out only once it is whole.
        let mut deframer = Deframer::default();
        let mut got = Vec::new();
        for byte in &body {
            deframer.push(std::slice::from_ref(byte));
            while let Some(message) = deframer.next(16).expect("well formed") {
                got.push(message);
            }
        }
        assert_eq!(got, [&b"one"[..], b"", b"three"]);
        assert!(deframer.is_empty());
        deframer.push(&frame(&[0; 17]));
        assert!(
            deframer
                .next(16)
                .expect_err("too large")
                .contains("over the limit")
        );
        let mut compressed = Deframer::default();
        compressed.push(b"\x01\0\0\0\x01a");
        assert!(compressed.next(16).is_err());
    }

    #[test]
    fn deadlines_from_go_micros_timeout_or_grpcs() {
        use std::time::Duration;
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = http::HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, http::HeaderValue::from_static(v));
            }
            map
        };
        assert_eq!(
            timeout_of(&headers(&[("timeout", "5000000000")])),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            timeout_of(&headers(&[("grpc-timeout", "250m")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            timeout_of(&headers(&[("grpc-timeout", "2S"), ("timeout", "1000")])),
            Some(Duration::from_micros(1))
        );
        assert_eq!(timeout_of(&headers(&[("grpc-timeout", "9x")])), None);
        assert_eq!(timeout_of(&headers(&[])), None);
    }

    #[test]
    fn statuses_round_trip_through_trailers() {
        assert_eq!(status_error(&status_trailers(Ok(())), "s"), Some(Ok(())));
        let err = crate::Error::new("counter", 400, "13 is unlucky");
        let back = status_error(&status_trailers(Err(&err)), "s")
            .expect("a status")
            .expect_err("an error");
        assert_eq!(
            (back.code, back.id.as_str(), back.detail.as_str()),
            (400, "counter", "13 is unlucky")
        );
        // A plain message (not go-micro's JSON) is the detail of an error of the service.
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static("5"));
        map.insert("grpc-message", http::HeaderValue::from_static("no%20such"));
        let plain = status_error(&map, "s")
            .expect("a status")
            .expect_err("an error");
        assert_eq!(
            (plain.code, plain.id.as_str(), plain.detail.as_str()),
            (404, "s", "no such")
        );
        assert_eq!(status_error(&http::HeaderMap::new(), "s"), None);
    }

    #[test]
    fn messages_and_codes_as_grpc_has_them() {
        let json = r#"{"id":"s","code":404,"detail":"no student named `bob` é%"}"#;
        let encoded = encode_message(json);
        assert!(encoded.is_ascii() && !encoded.contains("é"), "{encoded}");
        assert_eq!(decode_message(&encoded), json);
        for code in [400, 401, 403, 404, 408, 409, 412, 501, 503] {
            assert_eq!(code_of(status_of(code)), code);
        }
        assert_eq!(status_of(500), 13);
        assert_eq!(codec_of("application/grpc"), Some(codec::PROTOBUF));
        assert_eq!(codec_of("application/grpc+json"), Some(codec::JSON));
        assert_eq!(codec_of("application/json"), None);
    }
}
