//! go-micro's grpc protocol (`--server=grpc`, `--client=grpc` in go-micro v5): unary calls
//! as gRPC over HTTP/2 without TLS (h2c).
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
