//! A raw Google Cloud Pub/Sub client for the tests and the benchmark: unary gRPC calls with
//! the few messages they need written out by hand (field numbers of googleapis'
//! `google/pubsub/v1/pubsub.proto`), independent of rmicro's broker.

use std::collections::HashMap;

use tonic::client::Grpc;
use tonic::transport::Channel;

/// The project the raw client and the tests use.
pub const PROJECT: &str = "micro";

/// A Pub/Sub message: data and attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PubsubMessage {
    /// The data.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    /// The attributes.
    #[prost(map = "string, string", tag = "2")]
    pub attributes: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Topic {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Subscription {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    topic: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PublishRequest {
    #[prost(string, tag = "1")]
    topic: String,
    #[prost(message, repeated, tag = "2")]
    messages: Vec<PubsubMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
struct PullRequest {
    #[prost(string, tag = "1")]
    subscription: String,
    #[prost(int32, tag = "3")]
    max_messages: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReceivedMessage {
    #[prost(string, tag = "1")]
    ack_id: String,
    #[prost(message, optional, tag = "2")]
    message: Option<PubsubMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PullResponse {
    #[prost(message, repeated, tag = "1")]
    received_messages: Vec<ReceivedMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AcknowledgeRequest {
    #[prost(string, tag = "1")]
    subscription: String,
    #[prost(string, repeated, tag = "2")]
    ack_ids: Vec<String>,
}

/// `projects/micro/<kind>/<id>`.
pub fn path(kind: &str, id: &str) -> String {
    format!("projects/{PROJECT}/{kind}/{id}")
}

/// A connection to a Pub/Sub server (an emulator's `host:port`, plaintext).
#[derive(Clone)]
pub struct RawPubSub {
    grpc: Grpc<Channel>,
}

impl RawPubSub {
    /// Connects to `host` (`127.0.0.1:<port>`).
    pub async fn connect(host: &str) -> Result<RawPubSub, String> {
        let channel = Channel::from_shared(format!("http://{host}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(RawPubSub {
            grpc: Grpc::new(channel),
        })
    }

    async fn call<Q, R>(&self, path: &'static str, req: Q) -> Result<R, tonic::Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        grpc.unary(
            tonic::Request::new(req),
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    /// Creates topic `id`.
    pub async fn create_topic(&self, id: &str) -> Result<(), tonic::Status> {
        let name = path("topics", id);
        let _: Topic = self
            .call("/google.pubsub.v1.Publisher/CreateTopic", Topic { name })
            .await?;
        Ok(())
    }

    /// Creates subscription `id` to topic `topic`.
    pub async fn create_subscription(&self, id: &str, topic: &str) -> Result<(), tonic::Status> {
        let request = Subscription {
            name: path("subscriptions", id),
            topic: path("topics", topic),
        };
        let _: Subscription = self
            .call("/google.pubsub.v1.Subscriber/CreateSubscription", request)
            .await?;
        Ok(())
    }

    /// Publishes one message to topic `topic`.
    pub async fn publish(&self, topic: &str, message: PubsubMessage) -> Result<(), tonic::Status> {
        let request = PublishRequest {
            topic: path("topics", topic),
            messages: vec![message],
        };
        let _: Empty = self
            .call("/google.pubsub.v1.Publisher/Publish", request)
            .await
            .map(|_: PublishResponse| Empty {})?;
        Ok(())
    }

    /// Pulls up to `max` messages of subscription `id` and acknowledges them.
    pub async fn pull(&self, id: &str, max: i32) -> Result<Vec<PubsubMessage>, tonic::Status> {
        let request = PullRequest {
            subscription: path("subscriptions", id),
            max_messages: max,
        };
        let pulled: PullResponse = self
            .call("/google.pubsub.v1.Subscriber/Pull", request)
            .await?;
        let ack_ids: Vec<String> = pulled
            .received_messages
            .iter()
            .map(|m| m.ack_id.clone())
            .collect();
        if !ack_ids.is_empty() {
            let request = AcknowledgeRequest {
                subscription: path("subscriptions", id),
                ack_ids,
            };
            let _: Empty = self
                .call("/google.pubsub.v1.Subscriber/Acknowledge", request)
                .await?;
        }
        Ok(pulled
            .received_messages
            .into_iter()
            .filter_map(|m| m.message)
            .collect())
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct PublishResponse {}
