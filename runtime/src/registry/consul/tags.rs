//! go-micro's consul tags: the node's metadata, the service's endpoints and its version,
//! each compressed and written as lowercase hex behind a one-letter prefix.
//!
//! - `t-<hex(zlib(json))>`: one tag per node-metadata pair, the JSON object `{"key":"value"}`;
//! - `e-<hex(zlib(json))>`: one tag per endpoint, the JSON of go-micro's `registry.Endpoint`;
//! - `v-<hex(zlib(version))>`: the version string itself (not JSON), as go-micro writes it.
//!
//! Reading also accepts go-micro's first encoding (`t=`, `e=`, `v=` followed by the plain
//! text). As go-micro does, the first metadata or endpoint tag decides which of the two
//! encodings the other tags of its kind are read in. Tags that do not decode are skipped
//! (consul services carry tags of other tools too).

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use crate::registry::{Endpoint, Metadata, Node, Service};

/// The most a tag may inflate to; more is refused (a zlib bomb from whoever wrote the tag).
const MAX_INFLATED: u64 = 1 << 20;

/// Why the tags could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TagError {
    /// Serialising an endpoint failed.
    #[error("cannot encode an endpoint as json: {0}")]
    Json(#[from] serde_json::Error),
    /// Compressing failed.
    #[error("cannot compress a tag: {0}")]
    Zlib(#[from] std::io::Error),
}

/// `hex(zlib(bytes))`, as go-micro's `encode`.
fn encode(bytes: &[u8]) -> Result<String, TagError> {
    let mut zlib = ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 2 + 16),
        Compression::default(),
    );
    zlib.write_all(bytes)?;
    Ok(hex::encode(zlib.finish()?))
}

/// The inverse of [`encode`]; `None` for anything that is not hex of zlib data.
fn decode(text: &str) -> Option<Vec<u8>> {
    let compressed = hex::decode(text).ok()?;
    let mut out = Vec::with_capacity(compressed.len() * 3);
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_INFLATED).then_some(out)
}

/// The tags go-micro writes for `node` of `service`: metadata (in key order), endpoints, version.
pub(crate) fn encode_tags(service: &Service, node: &Node) -> Result<Vec<String>, TagError> {
    let mut tags = Vec::with_capacity(node.metadata.len() + service.endpoints.len() + 1);
    for (key, value) in &node.metadata {
        let pair: std::collections::BTreeMap<&str, &str> = [(key.as_str(), value.as_str())].into();
        tags.push(format!("t-{}", encode(&serde_json::to_vec(&pair)?)?));
    }
    for endpoint in &service.endpoints {
        tags.push(format!("e-{}", encode(&serde_json::to_vec(endpoint)?)?));
    }
    tags.push(format!("v-{}", encode(service.version.as_bytes())?));
    Ok(tags)
}

/// The payload of a tag `<kind><sep><payload>`, in the encoding `sep` names (`-` hex of zlib,
/// `=` plain).
fn payload(tag: &str, kind: u8) -> Option<(u8, Vec<u8>)> {
    let bytes = tag.as_bytes();
    if bytes.len() < 2 || bytes[0] != kind {
        return None;
    }
    match bytes[1] {
        b'-' => Some((b'-', decode(&tag[2..])?)),
        b'=' => Some((b'=', tag.as_bytes()[2..].to_vec())),
        _ => None,
    }
}

/// The version from the first `v-`/`v=` tag.
pub(crate) fn decode_version<'a>(tags: impl IntoIterator<Item = &'a String>) -> Option<String> {
    tags.into_iter()
        .find_map(|tag| payload(tag, b'v'))
        .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
}

/// The endpoints from the `e-`/`e=` tags, in tag order.
pub(crate) fn decode_endpoints<'a>(tags: impl IntoIterator<Item = &'a String>) -> Vec<Endpoint> {
    let mut format = None;
    let mut endpoints = Vec::new();
    for (sep, bytes) in tags.into_iter().filter_map(|tag| payload(tag, b'e')) {
        if *format.get_or_insert(sep) != sep {
            continue;
        }
        if let Ok(endpoint) = serde_json::from_slice::<Endpoint>(&bytes) {
            endpoints.push(endpoint);
        }
    }
    endpoints
}

/// The node metadata from the `t-`/`t=` tags; `None` when there is no such tag.
pub(crate) fn decode_metadata<'a>(tags: impl IntoIterator<Item = &'a String>) -> Option<Metadata> {
    let mut format = None;
    let mut metadata: Option<Metadata> = None;
    for (sep, bytes) in tags.into_iter().filter_map(|tag| payload(tag, b't')) {
        if *format.get_or_insert(sep) != sep {
            continue;
        }
        let md = metadata.get_or_insert_with(Metadata::new);
        if let Ok(pairs) = serde_json::from_slice::<Metadata>(&bytes) {
            md.extend(pairs);
        }
    }
    metadata
}

/// What an instance's tags say.
#[derive(Debug, Default)]
pub(crate) struct Tags {
    pub(crate) version: Option<String>,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) metadata: Option<Metadata>,
}

/// Decodes instances' tags, keeping the last instance's: the nodes of one version carry the
/// same tags, and decoding them (hex, zlib, JSON for each) is most of what reading an
/// instance costs, so a listing of many nodes decodes them about once.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    last: Option<(Vec<String>, Tags)>,
}

impl Memo {
    /// The decoded `tags`.
    pub(crate) fn decode(&mut self, tags: &[String]) -> &Tags {
        if self.last.as_ref().is_some_and(|(seen, _)| seen != tags) {
            self.last = None;
        }
        let (_, decoded) = self.last.get_or_insert_with(|| {
            let decoded = Tags {
                version: decode_version(tags),
                endpoints: decode_endpoints(tags),
                metadata: decode_metadata(tags),
            };
            (tags.to_vec(), decoded)
        });
        decoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Value;

    /// Tags written by Go (go 1.26 `encoding/json`, `compress/zlib` at the default level,
    /// `encoding/hex`), as go-micro v2's consul registry (`registry/consul/encoding.go`) builds
    /// them for a node with metadata `{"protocol":"mucp"}`, one endpoint `Greeter.Hello` (leaf
    /// values with empty, not nil, `Values`) and version `1.0.0`.
    const GO_METADATA: &str = "t-789caa562a28ca2fc94fcecf51b252ca2d4d2e50aa05040000ffff46a906e2";
    const GO_ENDPOINT: &str = "e-789c84cd310ac2401085e1bbbc3a7880bd80d6b69262c06710763771662288ecdd251286040bab078f1fbe37aa1422e1a8a4530f27e63ca283f231d31c298af3fa74f0d7b43f9e92671ad225e2ef4469aef73a6cc3bef56d416c1aab71a7acd78689e7d72936fc670a5daee2b230e64a2948b84936a2b54f000000ffffb26756ce";
    const GO_VERSION: &str = "v-789c32d433d03300040000ffff02ce00ee";

    #[test]
    fn the_memo_decodes_again_when_the_tags_change() {
        let (service, node) = greeter();
        let tags = encode_tags(&service, &node).expect("encode");
        let mut memo = Memo::default();
        assert_eq!(memo.decode(&tags).endpoints, service.endpoints);
        assert_eq!(
            memo.decode(&tags).version.as_deref(),
            Some(service.version.as_str())
        );
        let mut other = service.clone();
        other.version = "2.0.0".into();
        other.endpoints.clear();
        let changed = encode_tags(&other, &node).expect("encode");
        let decoded = memo.decode(&changed);
        assert_eq!(decoded.version.as_deref(), Some("2.0.0"));
        assert!(decoded.endpoints.is_empty());
        assert_eq!(decoded.metadata.as_ref(), Some(&node.metadata));
    }

    fn greeter() -> (Service, Node) {
        let field = |name: &str| Value {
            name: name.into(),
            type_: "string".into(),
            values: vec![],
        };
        let service = Service {
            name: "greeter".into(),
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
            ..Service::default()
        };
        let node = Node {
            id: "greeter-1".into(),
            address: "127.0.0.1:9000".into(),
            metadata: [("protocol".to_owned(), "mucp".to_owned())].into(),
        };
        (service, node)
    }

    fn inflate(tag: &str) -> String {
        String::from_utf8(decode(&tag[2..]).expect("hex of zlib")).expect("utf-8")
    }

    #[test]
    fn reads_what_go_micro_writes() {
        let tags = [GO_METADATA, GO_ENDPOINT, GO_VERSION].map(String::from);
        let (service, node) = greeter();
        assert_eq!(decode_version(&tags).as_deref(), Some("1.0.0"));
        assert_eq!(decode_endpoints(&tags), service.endpoints);
        assert_eq!(decode_metadata(&tags), Some(node.metadata));
    }

    #[test]
    fn writes_go_micro_json_behind_each_prefix() {
        let (service, node) = greeter();
        let tags = encode_tags(&service, &node).expect("encode");
        assert_eq!(tags.len(), 3, "{tags:?}");
        // The deflate streams of two zlib implementations differ: compare what they inflate to.
        for (ours, go) in tags.iter().zip([GO_METADATA, GO_ENDPOINT, GO_VERSION]) {
            assert_eq!(&ours[..2], &go[..2]);
            assert_eq!(inflate(ours), inflate(go));
        }
        assert_eq!(inflate(&tags[0]), r#"{"protocol":"mucp"}"#);
        assert_eq!(inflate(&tags[2]), "1.0.0");
    }

    #[test]
    fn reads_the_plain_encoding_and_keeps_to_the_first_format() {
        let tags = [
            r#"t={"a":"1"}"#.to_owned(),
            "t-789caa564a52b2523252aa05040000ffff0be7024f".to_owned(),
            r#"t={"b":"2"}"#.to_owned(),
            "v=v2".to_owned(),
            "urlprefix-/x".to_owned(),
        ];
        let md = decode_metadata(&tags).expect("metadata");
        assert_eq!(md.len(), 2, "{md:?}");
        assert_eq!(md["a"], "1");
        assert_eq!(md["b"], "2");
        assert_eq!(decode_version(&tags).as_deref(), Some("v2"));
        assert!(decode_endpoints(&tags).is_empty());
    }

    #[test]
    fn skips_tags_that_do_not_decode() {
        let tags = [
            "e-zz".to_owned(),
            "east".to_owned(),
            "t-00".to_owned(),
            "v".to_owned(),
        ];
        assert!(decode_endpoints(&tags).is_empty());
        // No metadata tag decodes: as if there were none (readers then use `Meta`).
        assert_eq!(decode_metadata(&tags), None);
        assert_eq!(decode_version(&tags), None);
    }

    #[test]
    fn refuses_zlib_bombs() {
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
        zlib.write_all(&vec![b' '; (MAX_INFLATED + 10) as usize])
            .expect("write");
        let bomb = hex::encode(zlib.finish().expect("finish"));
        assert_eq!(decode(&bomb), None);
    }
}
