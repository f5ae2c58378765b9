//! go-micro's error value: `{"id","code","detail","status"}`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The one error type of rmicro, identical on the wire to go-micro's `errors.Error`.
///
/// `id` names who raised it (`go.micro.client`, a service name, ...), `code` is an HTTP-like
/// status code, `detail` is the human message and `status` the HTTP reason phrase of `code`.
/// `Display` prints the JSON form, as go-micro does, so `eprintln!("{err}")` shows what a Go
/// peer would print.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Error {
    /// Who raised the error.
    #[serde(default)]
    pub id: String,
    /// HTTP-like status code.
    #[serde(default)]
    pub code: i32,
    /// Human-readable detail.
    #[serde(default)]
    pub detail: String,
    /// The HTTP reason phrase for `code`.
    #[serde(default)]
    pub status: String,
}

/// `Result<T, rmicro::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(id: impl Into<String>, detail: impl fmt::Display) -> Self {
                Self::new(id, $code, detail)
            }
        )*
    };
}

impl Error {
    /// An error with the reason phrase derived from `code`.
    pub fn new(id: impl Into<String>, code: i32, detail: impl fmt::Display) -> Self {
        Self {
            id: id.into(),
            code,
            detail: detail.to_string(),
            status: reason_phrase(code).to_owned(),
        }
    }

    constructors! {
        /// 400 Bad Request.
        bad_request => 400;
        /// 401 Unauthorized.
        unauthorized => 401;
        /// 403 Forbidden.
        forbidden => 403;
        /// 404 Not Found.
        not_found => 404;
        /// 405 Method Not Allowed.
        method_not_allowed => 405;
        /// 408 Request Timeout.
        timeout => 408;
        /// 409 Conflict.
        conflict => 409;
        /// 413 Payload Too Large.
        payload_too_large => 413;
        /// 415 Unsupported Media Type.
        unsupported_media_type => 415;
        /// 500 Internal Server Error.
        internal_server_error => 500;
        /// 502 Bad Gateway.
        bad_gateway => 502;
        /// 503 Service Unavailable.
        service_unavailable => 503;
    }

    /// Parses go-micro's JSON form; anything that is not that JSON becomes the `detail` of a
    /// 500 error with an empty id, as go-micro's `errors.Parse` does.
    pub fn parse(text: &str) -> Self {
        match serde_json::from_str::<Error>(text) {
            Ok(err) if err.code != 0 || !err.id.is_empty() || !err.status.is_empty() => err,
            _ => Self {
                id: String::new(),
                code: 500,
                detail: text.to_owned(),
                status: reason_phrase(500).to_owned(),
            },
        }
    }

    /// The JSON form, field order `id, code, detail, status` as go-micro writes it.
    pub fn to_json(&self) -> String {
        // Serialising four plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::error::Error for Error {}

/// The reason phrase of an HTTP status code (`""` for codes without one).
pub fn reason_phrase(code: i32) -> &'static str {
    u16::try_from(code)
        .ok()
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .and_then(|c| c.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_go_micro_byte_for_byte() {
        let err = Error::internal_server_error(
            "go.micro.client",
            "error selecting student_service node: not found",
        );
        assert_eq!(
            err.to_string(),
            r#"{"id":"go.micro.client","code":500,"detail":"error selecting student_service node: not found","status":"Internal Server Error"}"#
        );
    }

    #[test]
    fn parse_round_trips_and_wraps_plain_text() {
        let err = Error::not_found("student_service", "no such endpoint");
        assert_eq!(Error::parse(&err.to_json()), err);
        let plain = Error::parse("connection refused");
        assert_eq!(plain.code, 500);
        assert_eq!(plain.detail, "connection refused");
        assert_eq!(plain.status, "Internal Server Error");
    }

    #[test]
    fn status_follows_code() {
        assert_eq!(
            Error::payload_too_large("x", "big").status,
            "Payload Too Large"
        );
        assert_eq!(Error::new("x", 499, "odd").status, "");
    }
}
