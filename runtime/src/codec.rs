//! Codecs, chosen per message by `Content-Type`.
//!
//! RPC bodies and broker payloads are encoded by the content type they travel with.
//! `application/json` is served by serde_json for every serde type. (Protobuf arrives with
//! prost support; until then `application/protobuf` is reported as unsupported.)

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/protobuf`, go-micro's default when a request names no content type.
pub const PROTOBUF: &str = "application/protobuf";

/// The essence of a `Content-Type` header value: lowercased, parameters (`; charset=..`)
/// dropped. An empty value means protobuf, as in go-micro.
pub fn normalize(content_type: &str) -> &str {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        PROTOBUF
    } else {
        essence
    }
}

fn is_json(content_type: &str) -> bool {
    let ct = normalize(content_type);
    ct.eq_ignore_ascii_case(JSON) || ct.eq_ignore_ascii_case("text/json")
}

fn unsupported(id: &str, content_type: &str) -> Error {
    Error::unsupported_media_type(
        id,
        format!(
            "unsupported content type `{}`, expected `{JSON}`",
            normalize(content_type)
        ),
    )
}

/// A type that can be read from a message body of a given content type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from a message body",
    label = "this type cannot be decoded",
    note = "add `#[derive(serde::Deserialize)]` to `{Self}`"
)]
pub trait Decode: Sized {
    /// Decodes `body` written as `content_type`. `id` names the decoder in errors.
    fn decode(id: &str, content_type: &str, body: &[u8]) -> Result<Self>;
}

/// A type that can be written as a message body of a given content type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be encoded as a message body",
    label = "this type cannot be encoded",
    note = "add `#[derive(serde::Serialize)]` to `{Self}`"
)]
pub trait Encode {
    /// The content type used when the caller names none.
    fn default_content_type() -> &'static str
    where
        Self: Sized,
    {
        JSON
    }

    /// Encodes `self` as `content_type`. `id` names the encoder in errors.
    fn encode(&self, id: &str, content_type: &str) -> Result<Vec<u8>>;
}

impl<T: DeserializeOwned> Decode for T {
    fn decode(id: &str, content_type: &str, body: &[u8]) -> Result<Self> {
        if !is_json(content_type) {
            return Err(unsupported(id, content_type));
        }
        serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(id, format!("malformed JSON body: {e}")))
    }
}

impl<T: Serialize> Encode for T {
    fn encode(&self, id: &str, content_type: &str) -> Result<Vec<u8>> {
        if !is_json(content_type) {
            return Err(unsupported(id, content_type));
        }
        serde_json::to_vec(self)
            .map_err(|e| Error::internal_server_error(id, format!("cannot encode JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Student {
        name: String,
        grade: i32,
    }

    #[test]
    fn json_round_trip_ignores_parameters() {
        let s = Student {
            name: "davie".into(),
            grade: 80,
        };
        let body = s
            .encode("t", "application/json; charset=utf-8")
            .expect("encode");
        assert_eq!(
            Student::decode("t", "Application/JSON", &body).expect("decode"),
            s
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let err = Student::decode("svc", JSON, b"{\"name\":").expect_err("malformed");
        assert_eq!((err.code, err.id.as_str()), (400, "svc"));
        assert!(err.detail.starts_with("malformed JSON body"), "{err}");
        let err = Student::decode("svc", "text/xml", b"<x/>").expect_err("xml");
        assert_eq!(err.code, 415);
        assert!(err.detail.contains("`text/xml`"), "{err}");
        assert_eq!(normalize(""), PROTOBUF);
    }
}
