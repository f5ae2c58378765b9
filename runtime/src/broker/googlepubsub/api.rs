//! A thin client for Google Cloud Pub/Sub's v1 gRPC API (the `Publisher` and `Subscriber`
//! services) over tonic, for the emulator and for Google Cloud itself.
//!
//! The messages are written out by hand as prost structs with the field numbers of
//! googleapis' `google/pubsub/v1/pubsub.proto`; fields the broker never sets or reads are left
//! out, which protobuf allows. Nothing is generated at build time, so no `protoc` is needed.

use std::error::Error as StdError;
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};
use tonic_prost::ProstCodec;

/// Pub/Sub's messages, as far as the broker uses them.
#[allow(missing_docs)]
pub(super) mod pb {
    use std::collections::HashMap;

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `google.protobuf.Duration`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Duration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `google.protobuf.Empty`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Empty {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Topic {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PubsubMessage {
        #[prost(bytes = "bytes", tag = "1")]
        pub data: bytes::Bytes,
        #[prost(map = "string, string", tag = "2")]
        pub attributes: HashMap<String, String>,
        #[prost(string, tag = "3")]
        pub message_id: String,
        #[prost(message, optional, tag = "4")]
        pub publish_time: Option<Timestamp>,
        #[prost(string, tag = "5")]
        pub ordering_key: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetTopicRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PublishRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(message, repeated, tag = "2")]
        pub messages: Vec<PubsubMessage>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PublishResponse {
        #[prost(string, repeated, tag = "1")]
        pub message_ids: Vec<String>,
    }

    /// No `push_config` (4): a pull subscription.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Subscription {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub topic: String,
        #[prost(int32, tag = "5")]
        pub ack_deadline_seconds: i32,
        #[prost(bool, tag = "7")]
        pub retain_acked_messages: bool,
        #[prost(message, optional, tag = "8")]
        pub message_retention_duration: Option<Duration>,
        /// Deliver messages with the same ordering key in order.
        #[prost(bool, tag = "10")]
        pub enable_message_ordering: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteSubscriptionRequest {
        #[prost(string, tag = "1")]
        pub subscription: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AcknowledgeRequest {
        #[prost(string, tag = "1")]
        pub subscription: String,
        #[prost(string, repeated, tag = "2")]
        pub ack_ids: Vec<String>,
    }

    /// The first request on a stream names the subscription and the stream's ack deadline
    /// (and flow control); later ones carry only acks and deadline changes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamingPullRequest {
        #[prost(string, tag = "1")]
        pub subscription: String,
        #[prost(string, repeated, tag = "2")]
        pub ack_ids: Vec<String>,
        /// Packed (proto3's default for repeated scalars, and prost's).
        #[prost(int32, repeated, tag = "3")]
        pub modify_deadline_seconds: Vec<i32>,
        #[prost(string, repeated, tag = "4")]
        pub modify_deadline_ack_ids: Vec<String>,
        #[prost(int32, tag = "5")]
        pub stream_ack_deadline_seconds: i32,
        #[prost(string, tag = "6")]
        pub client_id: String,
        #[prost(int64, tag = "7")]
        pub max_outstanding_messages: i64,
        #[prost(int64, tag = "8")]
        pub max_outstanding_bytes: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamingPullResponse {
        #[prost(message, repeated, tag = "1")]
        pub received_messages: Vec<ReceivedMessage>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReceivedMessage {
        #[prost(string, tag = "1")]
        pub ack_id: String,
        #[prost(message, optional, tag = "2")]
        pub message: Option<PubsubMessage>,
        #[prost(int32, tag = "3")]
        pub delivery_attempt: i32,
    }
}

/// The gRPC methods called, by their full paths.
mod path {
    pub(super) const CREATE_TOPIC: &str = "/google.pubsub.v1.Publisher/CreateTopic";
    pub(super) const GET_TOPIC: &str = "/google.pubsub.v1.Publisher/GetTopic";
    pub(super) const PUBLISH: &str = "/google.pubsub.v1.Publisher/Publish";
    pub(super) const CREATE_SUBSCRIPTION: &str = "/google.pubsub.v1.Subscriber/CreateSubscription";
    pub(super) const DELETE_SUBSCRIPTION: &str = "/google.pubsub.v1.Subscriber/DeleteSubscription";
    pub(super) const ACKNOWLEDGE: &str = "/google.pubsub.v1.Subscriber/Acknowledge";
    pub(super) const STREAMING_PULL: &str = "/google.pubsub.v1.Subscriber/StreamingPull";
}

/// The largest response accepted: a message may hold 10 MB, a pull response several.
const MAX_DECODING: usize = 32 << 20;

/// `projects/{project}/{kind}/{name}`; `name` as it is when it already is such a path.
fn resource(project: &str, kind: &str, name: &str) -> String {
    if name.starts_with("projects/") {
        name.to_owned()
    } else {
        format!("projects/{project}/{kind}/{name}")
    }
}

/// The text of an error with its sources, `a: b: c`, each part once.
fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// A status with its cause in its message; a failure below gRPC (`Unknown` with a cause)
/// becomes `Unavailable`.
fn explain(status: Status) -> Status {
    let Some(cause) = status.source() else {
        return status;
    };
    let cause = chain(cause);
    let message = if cause.contains(status.message()) {
        cause
    } else {
        format!("{}: {cause}", status.message())
    };
    match status.code() {
        Code::Unknown => Status::unavailable(message),
        code => Status::new(code, message),
    }
}

/// A lazy channel to `endpoint` (`http://127.0.0.1:8085` for the emulator,
/// `https://pubsub.googleapis.com` for Google Cloud, TLS with the system's roots): nothing
/// connects until the first call, and a call made while the server is unreachable fails.
pub(super) fn connect_lazy(endpoint: &str) -> Result<Channel, String> {
    let mut ep = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| format!("endpoint `{endpoint}`: {}", chain(&e)))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        // Pub/Sub's servers (the emulator is grpc-java) refuse pings more often than 5 min.
        .http2_keep_alive_interval(Duration::from_secs(300))
        .keep_alive_timeout(Duration::from_secs(20));
    if endpoint.starts_with("https://") {
        ep = ep
            .tls_config(ClientTlsConfig::new().with_enabled_roots())
            .map_err(|e| format!("endpoint `{endpoint}`: {}", chain(&e)))?;
    }
    Ok(ep.connect_lazy())
}

/// Pub/Sub's calls for one project. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub(super) struct PubSubApi {
    grpc: Grpc<Channel>,
    project: String,
    /// `Bearer <token>`, sent with every call when set.
    authorization: Option<AsciiMetadataValue>,
    /// Deadline of each unary call.
    timeout: Duration,
}

impl PubSubApi {
    pub(super) fn new(channel: Channel, project: impl Into<String>) -> Self {
        Self {
            grpc: Grpc::new(channel).max_decoding_message_size(MAX_DECODING),
            project: project.into(),
            authorization: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sends `authorization: Bearer <token>` with every call (Google Cloud wants an OAuth2
    /// access token; the emulator wants none). The token is fixed: one that expires is not
    /// renewed here.
    pub(super) fn with_token(mut self, token: Option<String>) -> Result<Self, String> {
        self.authorization = match token {
            None => None,
            Some(token) => {
                let mut value = AsciiMetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| "the access token is not printable ASCII".to_owned())?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(self)
    }

    /// The deadline of each unary call (10 s unless set).
    pub(super) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `projects/{project}/topics/{topic}`.
    pub(super) fn topic_path(&self, topic: &str) -> String {
        resource(&self.project, "topics", topic)
    }

    /// `projects/{project}/subscriptions/{subscription}`.
    pub(super) fn subscription_path(&self, subscription: &str) -> String {
        resource(&self.project, "subscriptions", subscription)
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// One unary call within the timeout.
    async fn unary<Q, R>(&self, path: &'static str, req: Q) -> Result<R, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut request = self.request(req);
        request.set_timeout(self.timeout);
        let mut grpc = self.grpc.clone();
        let call = async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(chain(&e)))?;
            grpc.unary(
                request,
                PathAndQuery::from_static(path),
                ProstCodec::default(),
            )
            .await
            .map(tonic::Response::into_inner)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(explain),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{path}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Creates a topic (`topic.name` a full path); `ALREADY_EXISTS` if it exists.
    pub(super) async fn create_topic(&self, topic: pb::Topic) -> Result<pb::Topic, Status> {
        self.unary(path::CREATE_TOPIC, topic).await
    }

    /// A topic by its full path; `NOT_FOUND` if there is none.
    pub(super) async fn get_topic(&self, topic: &str) -> Result<pb::Topic, Status> {
        let req = pb::GetTopicRequest {
            topic: topic.to_owned(),
        };
        self.unary(path::GET_TOPIC, req).await
    }

    /// Publishes; the ids of the messages, in order. `NOT_FOUND` if the topic does not exist.
    pub(super) async fn publish(
        &self,
        req: pb::PublishRequest,
    ) -> Result<pb::PublishResponse, Status> {
        self.unary(path::PUBLISH, req).await
    }

    /// Creates a subscription; `ALREADY_EXISTS` if it exists, `NOT_FOUND` without the topic.
    pub(super) async fn create_subscription(
        &self,
        sub: pb::Subscription,
    ) -> Result<pb::Subscription, Status> {
        self.unary(path::CREATE_SUBSCRIPTION, sub).await
    }

    /// Deletes a subscription by its full path; `NOT_FOUND` if there is none.
    pub(super) async fn delete_subscription(&self, sub: &str) -> Result<(), Status> {
        let req = pb::DeleteSubscriptionRequest {
            subscription: sub.to_owned(),
        };
        let _: pb::Empty = self.unary(path::DELETE_SUBSCRIPTION, req).await?;
        Ok(())
    }

    /// Acknowledges messages of a subscription (full path) by their ack ids.
    pub(super) async fn acknowledge(&self, sub: &str, ack_ids: Vec<String>) -> Result<(), Status> {
        let req = pb::AcknowledgeRequest {
            subscription: sub.to_owned(),
            ack_ids,
        };
        let _: pb::Empty = self.unary(path::ACKNOWLEDGE, req).await?;
        Ok(())
    }

    /// Opens a StreamingPull stream whose requests come from `requests` (typically a
    /// `ReceiverStream` over an mpsc channel whose sender the caller keeps); the first
    /// request names the subscription and `stream_ack_deadline_seconds`.
    ///
    /// No timeout applies past sending: a server may answer with its headers only when it
    /// has a first message, so this can wait until then.
    ///
    /// To end a stream, drop the request sender first (a half-close: the server then ends
    /// its side, and the response stream yields `Ok(None)`), and only then the response
    /// stream. Dropping the response stream while it is open resets (cancels) the HTTP/2
    /// stream, and the emulator mishandles a cancelled StreamingPull.
    pub(super) async fn streaming_pull(
        &self,
        requests: impl futures::Stream<Item = pb::StreamingPullRequest> + Send + 'static,
    ) -> Result<Streaming<pb::StreamingPullResponse>, Status> {
        let mut grpc = self.grpc.clone();
        match tokio::time::timeout(self.timeout, grpc.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Status::unavailable(chain(&e))),
            Err(_) => return Err(Status::deadline_exceeded("channel not ready")),
        }
        let path = PathAndQuery::from_static(path::STREAMING_PULL);
        grpc.streaming(self.request(requests), path, ProstCodec::default())
            .await
            .map(tonic::Response::into_inner)
            .map_err(explain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn resource_paths() {
        assert_eq!(resource("p", "topics", "t"), "projects/p/topics/t");
        assert_eq!(
            resource("p", "subscriptions", "s"),
            "projects/p/subscriptions/s"
        );
        assert_eq!(
            resource("p", "topics", "projects/q/topics/t"),
            "projects/q/topics/t"
        );
    }

    #[test]
    fn messages_use_pubsubs_field_numbers() {
        // PublishRequest{topic:"t", messages:[{data:"hi", attributes:{"k":"v"}}]}: a map
        // entry is a nested message {1: key, 2: value} in field 2.
        let publish = pb::PublishRequest {
            topic: "t".to_owned(),
            messages: vec![pb::PubsubMessage {
                data: bytes::Bytes::from_static(b"hi"),
                attributes: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
                ..pb::PubsubMessage::default()
            }],
        };
        assert_eq!(
            publish.encode_to_vec(),
            [
                0x0a, 1, b't', 0x12, 12, 0x0a, 2, b'h', b'i', 0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v'
            ]
        );
        // Every StreamingPullRequest field: packed int32s in 3; 1000 and 1 MiB as varints.
        let pull = pb::StreamingPullRequest {
            subscription: "s".to_owned(),
            ack_ids: vec!["b".to_owned()],
            modify_deadline_seconds: vec![30],
            modify_deadline_ack_ids: vec!["a".to_owned()],
            stream_ack_deadline_seconds: 10,
            client_id: "c".to_owned(),
            max_outstanding_messages: 1000,
            max_outstanding_bytes: 1 << 20,
        };
        assert_eq!(
            pull.encode_to_vec(),
            [
                0x0a, 1, b's', 0x12, 1, b'b', 0x1a, 1, 30, 0x22, 1, b'a', 0x28, 10, 0x32, 1, b'c',
                0x38, 0xe8, 0x07, 0x40, 0x80, 0x80, 0x40
            ]
        );
        // Subscription: ack deadline 5, retain acked 7, message ordering 10.
        let sub = pb::Subscription {
            name: "s".to_owned(),
            topic: "t".to_owned(),
            ack_deadline_seconds: 10,
            retain_acked_messages: true,
            message_retention_duration: None,
            enable_message_ordering: true,
        };
        let sub_bytes = [0x0a, 1, b's', 0x12, 1, b't', 0x28, 10, 0x38, 1, 0x50, 1];
        assert_eq!(sub.encode_to_vec(), sub_bytes);
        // StreamingPullResponse{received_messages:[{ack_id:"a", message:{data:"x",
        // publish_time:{seconds:1}}, delivery_attempt:2}]}.
        let rsp = pb::StreamingPullResponse::decode(
            &[
                0x0a, 14, 0x0a, 1, b'a', 0x12, 7, 0x0a, 1, b'x', 0x22, 2, 0x08, 1, 0x18, 2,
            ][..],
        )
        .expect("decodes");
        let received = &rsp.received_messages[0];
        assert_eq!(received.ack_id, "a");
        assert_eq!(received.delivery_attempt, 2);
        let message = received.message.as_ref().expect("message");
        assert_eq!(message.data.as_ref(), b"x");
        assert_eq!(message.publish_time.map(|t| t.seconds), Some(1));
    }
}
