//! Publish/subscribe: the [`Broker`] trait, go-micro's message envelope and the plugins.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::registry::Metadata;

#[cfg(feature = "googlepubsub")]
pub mod googlepubsub;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
// Each piece serves some plugins: unused ones are checked in the all-features build.
#[cfg_attr(
    not(all(
        feature = "googlepubsub",
        feature = "kafka",
        feature = "mqtt",
        feature = "nats",
        feature = "nsq",
        feature = "rabbitmq",
        feature = "redis"
    )),
    allow(dead_code)
)]
mod kit;
pub mod memory;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "nsq")]
pub mod nsq;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod redelivery;
#[cfg(feature = "redis")]
pub mod redis;

pub use redelivery::{
    HEADER_DEAD_LETTER_ATTEMPTS, HEADER_DEAD_LETTER_ERROR, HEADER_DEAD_LETTER_TOPIC, Redelivery,
};

/// Header naming the topic a message was published to (go-micro v2+).
pub const HEADER_TOPIC: &str = "Micro-Topic";
/// Header carrying the message id, a uuid: go-micro's `headers.ID`, `Micro-ID` to the letter
/// (broker headers are a plain map, not HTTP headers; see [`Message::id`] for reading).
pub const HEADER_ID: &str = "Micro-ID";
/// Header naming the body's encoding.
pub const HEADER_CONTENT_TYPE: &str = "Content-Type";

/// A broker message: headers and an opaque body.
///
/// Its JSON form is go-micro's envelope, `{"Header":{..},"Body":"<base64>"}` (Go marshals
/// `[]byte` as base64), which the http, mqtt and nats brokers put on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Headers (`Content-Type`, `Micro-Topic`, `Micro-ID` and the user's).
    #[serde(rename = "Header", default, deserialize_with = "null_default")]
    pub header: Metadata,
    /// The encoded payload.
    #[serde(rename = "Body", default, with = "base64_body")]
    pub body: Bytes,
}

impl Message {
    /// A message with no headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            header: Metadata::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.insert(key.into(), value.into());
        self
    }

    /// The message id: the `Micro-ID` header, or one spelled in another case (earlier
    /// versions of rmicro wrote `Micro-Id`), if any.
    pub fn id(&self) -> Option<&str> {
        header_any_case(&self.header, HEADER_ID)
    }

    /// go-micro's JSON envelope, `{"Header":{..},"Body":"<base64>"}`: written straight into
    /// one buffer sized in advance (the headers escaped as JSON strings, the body encoded in
    /// place), byte for byte what serde_json writes for this struct.
    pub fn to_envelope(&self) -> Vec<u8> {
        const HEAD: &[u8] = b"{\"Header\":{";
        const BODY: &[u8] = b"},\"Body\":\"";
        const TAIL: &[u8] = b"\"}";
        let b64 = base64::encoded_len(self.body.len(), true).unwrap_or(0);
        // Six bytes per header for quotes, colon and comma; escapes may grow the buffer.
        let headers: usize = self.header.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
        let mut out = Vec::with_capacity(HEAD.len() + headers + BODY.len() + b64 + TAIL.len());
        out.extend_from_slice(HEAD);
        for (i, (key, value)) in self.header.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(&mut out, key);
            out.push(b':');
            json_str(&mut out, value);
        }
        out.extend_from_slice(BODY);
        let start = out.len();
        out.resize(start + b64, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(&self.body, &mut out[start..])
            .unwrap_or(0);
        out.truncate(start + written);
        out.extend_from_slice(TAIL);
        out
    }

    /// Parses go-micro's JSON envelope. The body is decoded from the JSON text in place when
    /// it holds no escape (base64 never needs one), without an intermediate string.
    pub fn from_envelope(bytes: &[u8]) -> Result<Self> {
        let malformed = |e: &dyn fmt::Display| {
            crate::Error::bad_request(
                "go.micro.broker",
                format!("malformed message envelope: {e}"),
            )
        };
        let raw: Envelope<'_> = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
        let body = match raw.body {
            None => Bytes::new(),
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map(Bytes::from)
                .map_err(|e| malformed(&e))?,
        };
        Ok(Self {
            header: raw.header,
            body,
        })
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// go-micro's envelope as read: the body borrowed from the input where it can be.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Header", default, deserialize_with = "null_default")]
    header: Metadata,
    #[serde(rename = "Body", default, borrow)]
    body: Option<Text<'a>>,
}

/// A JSON string, borrowed from the input when it holds no escape.
struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'a> Text<'a> {
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }
        }
        de.deserialize_str(Visit)
    }
}

fn null_default<'de, D>(de: D) -> std::result::Result<Metadata, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Metadata>::deserialize(de)?.unwrap_or_default())
}

mod base64_body {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        body: &Bytes,
        ser: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        ser.serialize_str(&base64::engine::general_purpose::STANDARD.encode(body))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        de: D,
    ) -> std::result::Result<Bytes, D::Error> {
        let Some(text) = Option::<Text<'de>>::deserialize(de)? else {
            return Ok(Bytes::new());
        };
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

/// Acknowledges a delivery to brokers that track them (rabbitmq, redis streams).
pub type AckFn = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

/// One delivered message: its topic, the message and, where the broker tracks deliveries, a
/// way to acknowledge it.
pub struct Event {
    topic: Arc<str>,
    message: Message,
    ack: Option<AckFn>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("topic", &self.topic)
            .field("message", &self.message)
            .field("ack", &self.ack.is_some())
            .finish()
    }
}

impl Event {
    /// An event with nothing to acknowledge.
    pub fn new(topic: impl Into<Arc<str>>, message: Message) -> Self {
        Self {
            topic: topic.into(),
            message,
            ack: None,
        }
    }

    /// An event acknowledged by `ack`.
    pub fn with_ack(topic: impl Into<Arc<str>>, message: Message, ack: AckFn) -> Self {
        Self {
            topic: topic.into(),
            message,
            ack: Some(ack),
        }
    }

    /// The topic the message was delivered on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic, shared.
    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Takes the message out of the event.
    pub fn into_parts(self) -> (Arc<str>, Message, Option<AckFn>) {
        (self.topic, self.message, self.ack)
    }

    /// Acknowledges the delivery; a no-op for brokers that do not track deliveries, and for
    /// an event already acknowledged.
    pub async fn ack(&mut self) -> Result<()> {
        match self.ack.take() {
            Some(ack) => ack().await,
            None => Ok(()),
        }
    }
}

/// A subscription's message handler.
pub type Handler = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(move |event| Box::pin(f(event)))
}

/// Options of [`Broker::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Queue group: each message goes to one subscriber of the group. `None` = broadcast.
    pub queue: Option<String>,
    /// Acknowledge after the handler returns `Ok` (the default). Off: the handler acks.
    pub auto_ack: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            queue: None,
            auto_ack: true,
        }
    }
}

impl SubscribeOptions {
    /// Options for a queue group.
    pub fn queue(name: impl Into<String>) -> Self {
        Self {
            queue: Some(name.into()),
            ..Self::default()
        }
    }
}

/// Options of [`Broker::publish`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions {}

/// A live subscription.
#[async_trait]
pub trait Subscriber: Send + Sync + fmt::Debug {
    /// The topic subscribed to.
    fn topic(&self) -> &str;
    /// The options it was made with.
    fn options(&self) -> &SubscribeOptions;
    /// Stops delivery.
    async fn unsubscribe(&self) -> Result<()>;
}

/// A message broker.
#[async_trait]
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// The plugin's name as the `--broker` flag spells it (`http`, `memory`, ...).
    fn name(&self) -> &str;
    /// The address the broker listens on or connects to.
    fn address(&self) -> String;
    /// Whether the broker's connections are up right now, for readiness probes: `None` when
    /// the plugin cannot tell (the default; counted as up). Must not block or do I/O: a
    /// plugin keeps its connections' state as it goes (see each plugin's "Recovery").
    fn connected(&self) -> Option<bool> {
        None
    }
    /// Connects (or starts listening). Idempotent.
    async fn connect(&self) -> Result<()>;
    /// Disconnects. Idempotent.
    async fn disconnect(&self) -> Result<()>;
    /// Publishes `msg` to `topic`. Errors reach the caller.
    async fn publish(&self, topic: &str, msg: Message, opts: PublishOptions) -> Result<()>;
    /// Subscribes `handler` to `topic`.
    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>>;
}

#[async_trait]
impl<B: Broker + ?Sized> Broker for Arc<B> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn address(&self) -> String {
        (**self).address()
    }
    async fn connect(&self) -> Result<()> {
        (**self).connect().await
    }
    async fn disconnect(&self) -> Result<()> {
        (**self).disconnect().await
    }
    async fn publish(&self, topic: &str, msg: Message, opts: PublishOptions) -> Result<()> {
        (**self).publish(topic, msg, opts).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        (**self).subscribe(topic, handler, opts).await
    }
}

/// The shared handle to a broker plugin.
pub type SharedBroker = Arc<dyn Broker>;

/// The value of header `name`: the exact key first, else one equal to it ignoring ASCII case.
pub(crate) fn header_any_case<'a>(header: &'a Metadata, name: &str) -> Option<&'a str> {
    header
        .get(name)
        .or_else(|| {
            header
                .iter()
                .find_map(|(k, v)| k.eq_ignore_ascii_case(name).then_some(v))
        })
        .map(String::as_str)
}

/// Fills in `Micro-Topic` and `Micro-ID` (a fresh uuid unless the message has an id in any
/// case), as every go-micro v2+ publisher does. Brokers call this on every publish.
pub fn stamp(topic: &str, msg: &mut Message) {
    msg.header.insert(HEADER_TOPIC.to_owned(), topic.to_owned());
    if msg.id().is_none() {
        msg.header
            .insert(HEADER_ID.to_owned(), crate::id::uuid_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_go_micro_json() {
        let msg = Message::new(&b"{\"name\":\"davie\"}"[..]).with_header("name", "davie");
        let json = String::from_utf8(msg.to_envelope()).expect("utf-8");
        assert_eq!(
            json,
            r#"{"Header":{"name":"davie"},"Body":"eyJuYW1lIjoiZGF2aWUifQ=="}"#
        );
        assert_eq!(Message::from_envelope(json.as_bytes()).expect("parse"), msg);
    }

    #[test]
    fn the_hand_written_envelope_is_serde_jsons_to_the_byte() {
        for body in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"\x00\xff\x10 binary",
            &[7u8; 1000],
        ] {
            let msg = Message::new(Bytes::copy_from_slice(body))
                .with_header("Micro-Topic", "go.micro.srv.message")
                .with_header("quote\"back\\slash", "tab\tnl\nctl\u{1}")
                .with_header("名前", "davie </script> & \u{2028}");
            let expected = serde_json::to_vec(&msg).expect("serialise");
            assert_eq!(msg.to_envelope(), expected, "body of {} bytes", body.len());
            assert_eq!(Message::from_envelope(&expected).expect("parse"), msg);
        }
        assert_eq!(
            Message::new(Bytes::new()).to_envelope(),
            br#"{"Header":{},"Body":""}"#
        );
    }

    #[test]
    fn an_envelope_body_with_json_escapes_or_spaces_still_parses() {
        // Another writer may escape characters in the base64 text (JSON allows any escape).
        let msg = Message::from_envelope(
            br#" { "Body" : "\u0059\u0051\u003d\u003d" , "Header" : { "k" : "v" } } "#,
        )
        .expect("parse");
        assert_eq!(&msg.body[..], b"a");
        assert_eq!(msg.header.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn envelope_accepts_go_nil_header_and_rejects_bad_base64() {
        let msg = Message::from_envelope(br#"{"Header":null,"Body":null}"#).expect("parse");
        assert!(msg.header.is_empty() && msg.body.is_empty());
        let err = Message::from_envelope(br#"{"Header":{},"Body":"%%%"}"#).expect_err("bad");
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("malformed message envelope"), "{err}");
    }

    #[test]
    fn the_id_header_is_go_micros_and_read_in_any_case() {
        let mut msg = Message::default();
        stamp("t", &mut msg);
        assert!(msg.header.contains_key("Micro-ID"), "{:?}", msg.header);
        assert!(!msg.header.contains_key("Micro-Id"));
        assert_eq!(msg.id().map(str::len), Some(36));
        // An id written as older rmicro did is found, and kept rather than doubled.
        let mut old = Message::default().with_header("Micro-Id", "old-1");
        assert_eq!(old.id(), Some("old-1"));
        stamp("t", &mut old);
        assert_eq!(old.header.len(), 2, "{:?}", old.header);
        assert_eq!(old.id(), Some("old-1"));
    }

    #[test]
    fn stamp_sets_topic_and_keeps_given_id() {
        let mut msg = Message::new(Bytes::new()).with_header(HEADER_ID, "fixed");
        stamp("t", &mut msg);
        assert_eq!(msg.header[HEADER_TOPIC], "t");
        assert_eq!(msg.header[HEADER_ID], "fixed");
        let mut fresh = Message::default();
        stamp("t", &mut fresh);
        assert_eq!(fresh.header[HEADER_ID].len(), 36);
    }
}
