//! The typed event a `#[subscribe]` handler receives.

use std::fmt;
use std::sync::Arc;

use crate::Result;
use crate::broker::{self, AckFn, HEADER_CONTENT_TYPE, HEADER_ID, header_any_case};
use crate::codec::{self, Decode};
use crate::registry::Metadata;

/// A delivered message with its payload decoded as `T` by the message's `Content-Type`.
///
/// A message without `Content-Type` (the seed's raw `broker.Publish` sends none) is read as
/// JSON when its body starts like JSON and as protobuf otherwise.
pub struct Event<T> {
    topic: Arc<str>,
    header: Metadata,
    payload: T,
    ack: Option<AckFn>,
}

impl<T: fmt::Debug> fmt::Debug for Event<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("topic", &self.topic)
            .field("header", &self.header)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// The content type a broker message is decoded with.
pub fn content_type_of(msg: &broker::Message) -> &str {
    match msg.header.get(HEADER_CONTENT_TYPE) {
        Some(ct) if !ct.trim().is_empty() => ct,
        _ => {
            let first = msg.body.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{' | b'[' | b'"')) {
                codec::JSON
            } else {
                codec::PROTOBUF
            }
        }
    }
}

impl<T: Decode> Event<T> {
    /// Decodes a raw broker event. A payload that does not decode is an error with id
    /// `go.micro.broker` whose detail names the topic.
    pub fn decode(raw: broker::Event) -> Result<Self> {
        let (topic, message, ack) = raw.into_parts();
        let payload = T::decode("go.micro.broker", content_type_of(&message), &message.body)
            .map_err(|mut e| {
                e.detail = format!("topic `{topic}`: {}", e.detail);
                e
            })?;
        Ok(Self {
            topic,
            header: message.header,
            payload,
            ack,
        })
    }
}

impl<T> Event<T> {
    /// The topic the message arrived on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The message headers.
    pub fn header(&self) -> &Metadata {
        &self.header
    }

    /// The message id (go-micro's `Micro-ID`, read in any case), if the publisher set one.
    pub fn id(&self) -> Option<&str> {
        header_any_case(&self.header, HEADER_ID)
    }

    /// The decoded payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Takes the payload.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// Acknowledges the delivery now (only meaningful with `auto_ack` off).
    pub async fn ack(&mut self) -> Result<()> {
        match self.ack.take() {
            Some(ack) => ack().await,
            None => Ok(()),
        }
    }
}

impl<T> std::ops::Deref for Event<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Message;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Student {
        name: String,
    }

    #[test]
    fn decodes_by_content_type_and_sniffs_raw_json() {
        let raw = broker::Event::new(
            "t",
            Message::new(&br#"{"name":"davie"}"#[..]).with_header("name", "davie"),
        );
        let ev = Event::<Student>::decode(raw).expect("sniffed JSON");
        assert_eq!(ev.payload().name, "davie");
        assert_eq!(ev.header()["name"], "davie");
        assert_eq!(ev.topic(), "t");

        let xml = Message::new(&b"<x/>"[..]).with_header(HEADER_CONTENT_TYPE, "text/xml");
        let err = Event::<Student>::decode(broker::Event::new("t", xml)).expect_err("xml");
        assert_eq!(err.code, 415);
    }
}
