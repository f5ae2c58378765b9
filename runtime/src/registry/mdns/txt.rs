//! go-micro's TXT payload for one node: `{Service, Version, Endpoints, Metadata}` as JSON,
//! zlib-compressed, written as lowercase hex and cut into strings of at most 255 characters.
//!
//! The field order is go-micro v2–v4's `mdnsTxt` struct (v5 moved `Metadata` first); readers
//! do not care, since JSON objects are unordered. Decoding accepts the keys capitalised (as
//! go-micro writes them) or in lowercase, and `null` for empty lists and maps.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::{Deserialize, Deserializer, Serialize};

use crate::registry::{Endpoint, Metadata};

/// The longest string a TXT record holds.
const MAX_STRING: usize = 255;

/// The most inflated JSON a TXT may expand to; more is refused (a zlib bomb from the network).
const MAX_JSON: u64 = 4 << 20;

/// The node description go-micro carries in the TXT record (`mdnsTxt` in go-micro).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MdnsTxt {
    /// Service name.
    #[serde(
        rename = "Service",
        alias = "service",
        default,
        deserialize_with = "null_default"
    )]
    pub service: String,
    /// Service version.
    #[serde(
        rename = "Version",
        alias = "version",
        default,
        deserialize_with = "null_default"
    )]
    pub version: String,
    /// The service's endpoints.
    #[serde(
        rename = "Endpoints",
        alias = "endpoints",
        default,
        deserialize_with = "null_default"
    )]
    pub endpoints: Vec<Endpoint>,
    /// The node's metadata.
    #[serde(
        rename = "Metadata",
        alias = "metadata",
        default,
        deserialize_with = "null_default"
    )]
    pub metadata: Metadata,
}

/// Why a TXT payload could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TxtError {
    /// Not hex.
    #[error("txt is not hex: {0}")]
    Hex(#[from] hex::FromHexError),
    /// Not zlib, or compressing failed.
    #[error("txt is not zlib data: {0}")]
    Zlib(#[from] std::io::Error),
    /// Inflates to more than [`MAX_JSON`] bytes.
    #[error("txt inflates to more than {MAX_JSON} bytes")]
    TooLarge,
    /// Not the JSON go-micro writes.
    #[error("txt is not go-micro's json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Go marshals nil maps and slices as `null`; read that as empty.
fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Encodes `txt` as go-micro does: the TXT record's strings, in order.
pub(crate) fn encode(txt: &MdnsTxt) -> Result<Vec<String>, TxtError> {
    let json = serde_json::to_vec(txt)?;
    let mut zlib = ZlibEncoder::new(
        Vec::with_capacity(json.len() / 2 + 16),
        Compression::default(),
    );
    zlib.write_all(&json)?;
    let encoded = hex::encode(zlib.finish()?);
    // Hex is ASCII, so cutting at any byte offset is cutting at a character boundary.
    Ok(encoded
        .as_bytes()
        .chunks(MAX_STRING)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect())
}

/// Decodes the TXT record's strings, already joined (go-micro joins them with nothing between).
pub(crate) fn decode(joined: &[u8]) -> Result<MdnsTxt, TxtError> {
    let compressed = hex::decode(joined)?;
    let mut json = Vec::with_capacity(compressed.len() * 4);
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)?;
    if json.len() as u64 > MAX_JSON {
        return Err(TxtError::TooLarge);
    }
    Ok(serde_json::from_slice(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Value;

    /// The node description used by the fixed vectors below, as go-micro's router would build it
    /// for a `Greeter.Hello(Request{name}) -> Response{msg}` handler.
    fn greeter() -> MdnsTxt {
        let field = |name: &str| Value {
            name: name.into(),
            type_: "string".into(),
            values: vec![],
        };
        MdnsTxt {
            service: "greeter".into(),
            version: "1.0.0".into(),
            endpoints: vec![Endpoint {
                name: "Greeter.Hello".into(),
                request: Some(Value {
                    name: "Request".into(),
                    type_: "Request".into(),
                    values: vec![field("name")],
                }),
                response: Some(Value {
                    name: "Response".into(),
                    type_: "Response".into(),
                    values: vec![field("msg")],
                }),
                metadata: [("stream".to_owned(), "false".to_owned())].into(),
            }],
            metadata: [
                ("transport", "http"),
                ("broker", "http"),
                ("server", "mucp"),
                ("registry", "mdns"),
                ("protocol", "mucp"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }

    /// What Go (go 1.26: `encoding/json`, `compress/zlib` at the default level,
    /// `encoding/hex`) writes for [`greeter`] with go-micro's `mdnsTxt` layout, where leaf
    /// values have nil `Values` (as go-micro's router leaves them), so they marshal as `null`.
    const GO_HEX_NIL_VALUES: &str = "789c8c90414bc4301085ffcb3b87b25e7317bd7851f0227b88ed588b6926ce4c0bcb92ff2ea9b5b478d953e0cb7bef83b9e285641e5a82472f4446028757121d38c1e3ae39352738dca72ef3904ce1dfae4861ac8587df42f34831321c84be275283df12cf2b71b04b3e8239c4890e73cbb325d56448fd2e98a618cbb9548d664e4a07cf8a76a28dfc378ddadf221ac942172c54919a5018e1f111a2124a393b3cedfedf85bf48e0f16996e190858d5b8ed536b579b94e3fa8c9a5922e291c94645e3a6bc22424cd2cf63753ca4f000000ffffbbe28bf1";

    /// The same input with empty (not nil) leaf `Values`: Go's JSON, and its hex.
    const GO_JSON: &str = r#"{"Service":"greeter","Version":"1.0.0","Endpoints":[{"name":"Greeter.Hello","request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string","values":[]}]},"response":{"name":"Response","type":"Response","values":[{"name":"msg","type":"string","values":[]}]},"metadata":{"stream":"false"}}],"Metadata":{"broker":"http","protocol":"mucp","registry":"mdns","server":"mucp","transport":"http"}}"#;
    const GO_HEX: &str = "789c8490314bc5301485ffcb994379aed94517170517e910db6b0da649bcf7b6f028f9ef925a4b8bc39b025fce391fdc052fc4b3ef0816031329310c5e89c5a7088bbbe6d25c60701ffb9c7c54817d5b10dd580b0fbf85e69142483060fa9e4814764f3c6fc440aff90c6617263acdadcf9e14651f8763b02d6da912c9290a9d2c1b3a6876f2df33ca705b3392badea9ab1a512637c2e2c3052194d21a3c1dfedf397d11c3e25335c32073d2d4a5505d5397d7cb0c5e94af95f4516020c4f3dad912ca2e4a4eac7f33a5fc040000ffff12f789eb";

    fn inflate(strings: &[String]) -> String {
        let bytes = hex::decode(strings.concat()).expect("hex");
        let mut json = String::new();
        ZlibDecoder::new(bytes.as_slice())
            .read_to_string(&mut json)
            .expect("zlib");
        json
    }

    #[test]
    fn reads_what_go_micro_writes() {
        assert_eq!(
            decode(GO_HEX_NIL_VALUES.as_bytes()).expect("decode"),
            greeter()
        );
        assert_eq!(decode(GO_HEX.as_bytes()).expect("decode"), greeter());
    }

    #[test]
    fn writes_go_micro_json_in_lowercase_hex_strings_of_255() {
        let strings = encode(&greeter()).expect("encode");
        // Same JSON, byte for byte, as Go's; the deflate streams of two zlib implementations
        // differ, so the compressed bytes are compared through a round trip instead.
        assert_eq!(inflate(&strings), GO_JSON);
        assert!(strings.len() >= 2, "long payloads are split: {strings:?}");
        for (i, s) in strings.iter().enumerate() {
            let last = i + 1 == strings.len();
            assert!(
                if last {
                    !s.is_empty() && s.len() <= 255
                } else {
                    s.len() == 255
                },
                "string {i} has {} characters",
                s.len()
            );
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "lowercase hex only: {s}"
            );
        }
        // Go cuts the same way: 255-character strings, then the rest.
        let go: Vec<&str> = GO_HEX
            .as_bytes()
            .chunks(255)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        assert_eq!(go.len(), 2);
    }

    #[test]
    fn round_trips_and_keeps_short_payloads_in_one_string() {
        let txt = greeter();
        let strings = encode(&txt).expect("encode");
        assert_eq!(decode(strings.concat().as_bytes()).expect("decode"), txt);

        let small = MdnsTxt {
            service: "s".into(),
            ..MdnsTxt::default()
        };
        let strings = encode(&small).expect("encode");
        assert_eq!(strings.len(), 1);
        assert_eq!(
            inflate(&strings),
            r#"{"Service":"s","Version":"","Endpoints":[],"Metadata":{}}"#
        );
        assert_eq!(decode(strings[0].as_bytes()).expect("decode"), small);
    }

    #[test]
    fn reads_go_nulls_and_lowercase_keys() {
        let json = br#"{"service":"s","version":"v","Endpoints":null,"Metadata":null}"#;
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(json).expect("write");
        let hexed = hex::encode(zlib.finish().expect("finish"));
        let txt = decode(hexed.as_bytes()).expect("decode");
        assert_eq!(txt.service, "s");
        assert_eq!(txt.version, "v");
        assert!(txt.endpoints.is_empty() && txt.metadata.is_empty());
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        assert!(matches!(decode(b"zz"), Err(TxtError::Hex(_))));
        assert!(matches!(decode(b"0123"), Err(TxtError::Zlib(_))));
        assert!(decode(b"").is_err());
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(b"[1,2]").expect("write");
        let hexed = hex::encode(zlib.finish().expect("finish"));
        assert!(matches!(decode(hexed.as_bytes()), Err(TxtError::Json(_))));
    }

    #[test]
    fn refuses_zlib_bombs() {
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..5 {
            zlib.write_all(&zeros).expect("write");
        }
        let hexed = hex::encode(zlib.finish().expect("finish"));
        assert!(matches!(decode(hexed.as_bytes()), Err(TxtError::TooLarge)));
    }
}
