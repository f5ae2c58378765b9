//! A small etcd v3 client: the calls the registry makes (range, put, delete, lease grant,
//! keep-alive and revoke, watch, authenticate) over tonic's gRPC client.
//!
//! The messages are written out by hand as prost structs with the field numbers of etcd's
//! `etcdserverpb/rpc.proto` and `mvccpb/kv.proto` (etcd's wire contract, stable since v3.0;
//! fields the registry never sets or reads are left out, which protobuf allows). Nothing is
//! generated at build time, so the `etcd` feature builds without `protoc` or any other tool
//! that cargo does not bring; `docs/decisions.md` says why this is not the `etcd-client` crate.

use std::error::Error as StdError;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::client::Grpc;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};
use tonic_prost::ProstCodec;

/// etcd's messages, as far as the registry uses them.
#[allow(missing_docs)]
pub(crate) mod pb {
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        #[prost(int64, tag = "3")]
        pub revision: i64,
        #[prost(uint64, tag = "4")]
        pub raft_term: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(int64, tag = "2")]
        pub create_revision: i64,
        #[prost(int64, tag = "3")]
        pub mod_revision: i64,
        #[prost(int64, tag = "4")]
        pub version: i64,
        #[prost(bytes = "vec", tag = "5")]
        pub value: Vec<u8>,
        #[prost(int64, tag = "6")]
        pub lease: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
        #[prost(bool, tag = "7")]
        pub serializable: bool,
        #[prost(bool, tag = "9")]
        pub count_only: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(message, repeated, tag = "2")]
        pub kvs: Vec<KeyValue>,
        #[prost(bool, tag = "3")]
        pub more: bool,
        #[prost(int64, tag = "4")]
        pub count: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
        #[prost(int64, tag = "3")]
        pub lease: i64,
        #[prost(bool, tag = "4")]
        pub prev_kv: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(message, optional, tag = "2")]
        pub prev_kv: Option<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteRangeRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
        #[prost(bool, tag = "3")]
        pub prev_kv: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteRangeResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(int64, tag = "2")]
        pub deleted: i64,
        #[prost(message, repeated, tag = "3")]
        pub prev_kvs: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseGrantRequest {
        #[prost(int64, tag = "1")]
        pub ttl: i64,
        #[prost(int64, tag = "2")]
        pub id: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseGrantResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(int64, tag = "2")]
        pub id: i64,
        #[prost(int64, tag = "3")]
        pub ttl: i64,
        #[prost(string, tag = "4")]
        pub error: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseRevokeRequest {
        #[prost(int64, tag = "1")]
        pub id: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseRevokeResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseKeepAliveRequest {
        #[prost(int64, tag = "1")]
        pub id: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LeaseKeepAliveResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(int64, tag = "2")]
        pub id: i64,
        #[prost(int64, tag = "3")]
        pub ttl: i64,
    }

    /// etcd's `WatchRequest` is a oneof of create/cancel/progress; a oneof member encodes as
    /// the optional field it is, and the registry only ever creates.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchRequest {
        #[prost(message, optional, tag = "1")]
        pub create_request: Option<WatchCreateRequest>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchCreateRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
        #[prost(int64, tag = "3")]
        pub start_revision: i64,
        #[prost(bool, tag = "6")]
        pub prev_kv: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(int64, tag = "2")]
        pub watch_id: i64,
        #[prost(bool, tag = "3")]
        pub created: bool,
        #[prost(bool, tag = "4")]
        pub canceled: bool,
        #[prost(int64, tag = "5")]
        pub compact_revision: i64,
        #[prost(string, tag = "6")]
        pub cancel_reason: String,
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<Event>,
    }

    /// `mvccpb.Event.EventType`.
    pub const PUT: i32 = 0;
    pub const DELETE: i32 = 1;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(message, optional, tag = "2")]
        pub kv: Option<KeyValue>,
        #[prost(message, optional, tag = "3")]
        pub prev_kv: Option<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AuthenticateRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub password: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AuthenticateResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(string, tag = "2")]
        pub token: String,
    }
}

/// The gRPC methods called, by their full paths.
mod path {
    pub(super) const RANGE: &str = "/etcdserverpb.KV/Range";
    pub(super) const PUT: &str = "/etcdserverpb.KV/Put";
    pub(super) const DELETE_RANGE: &str = "/etcdserverpb.KV/DeleteRange";
    pub(super) const LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
    pub(super) const LEASE_REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
    pub(super) const LEASE_KEEP_ALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
    pub(super) const WATCH: &str = "/etcdserverpb.Watch/Watch";
    pub(super) const AUTHENTICATE: &str = "/etcdserverpb.Auth/Authenticate";
}

/// The end of the range holding every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented and what follows
/// dropped; `[0]` (every key) when there is no such byte.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// How to connect.
pub(crate) struct ConnectOptions {
    /// `http://host:port` or `https://host:port` each.
    pub(crate) endpoints: Vec<String>,
    /// Deadline of each call (and of opening a stream); connecting gets at most 2 s of it.
    pub(crate) timeout: Duration,
    /// User name and password when etcd's authentication is on.
    pub(crate) credentials: Option<(String, String)>,
    /// TLS for `https://` endpoints.
    pub(crate) tls: Option<ClientTlsConfig>,
}

/// A connection to an etcd cluster, balanced over its endpoints. Cheap to clone; clones share
/// the connections and the auth token. Connecting is lazy and automatic: a call made while
/// etcd is unreachable fails with `UNAVAILABLE` (or `DEADLINE_EXCEEDED`), and the next call
/// connects again.
#[derive(Clone)]
pub(crate) struct Client {
    grpc: Grpc<Channel>,
    timeout: Duration,
    auth: Option<Arc<Auth>>,
}

struct Auth {
    user: String,
    password: String,
    token: RwLock<Option<AsciiMetadataValue>>,
    /// Serialises refreshes, so that calls that find the token expired together
    /// authenticate once.
    refresh: tokio::sync::Mutex<()>,
}

/// A watch: etcd's response stream, and the request stream that keeps it open (etcd ends a
/// watch when the client closes its side, which dropping this does).
pub(crate) struct WatchStream {
    _requests: mpsc::Sender<pb::WatchRequest>,
    responses: Streaming<pb::WatchResponse>,
}

impl WatchStream {
    /// The next response; `Ok(None)` when etcd ended the stream.
    pub(crate) async fn message(&mut self) -> Result<Option<pb::WatchResponse>, Status> {
        self.responses.message().await
    }
}

/// The text of an error with its sources, `a: b: c`, each part once (tonic's transport
/// errors say only "transport error" at the top, and repeat themselves below).
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

/// A status with what caused it in its message (tonic says only "tcp connect error" for a
/// refused connection); a failure below gRPC (`Unknown` with a cause) becomes `Unavailable`.
fn explain(status: Status) -> Status {
    let Some(cause) = status.source() else {
        return status;
    };
    let cause = chain(cause);
    let message = if status.message().contains(&cause) {
        status.message().to_owned()
    } else if cause.contains(status.message()) {
        cause
    } else {
        format!("{}: {cause}", status.message())
    };
    match status.code() {
        Code::Unknown => Status::unavailable(message),
        code => Status::new(code, message),
    }
}

impl Client {
    /// A client for `opts.endpoints`; authenticates first when credentials are given (so a
    /// wrong password is an error here).
    pub(crate) async fn connect(opts: ConnectOptions) -> Result<Self, Status> {
        let mut endpoints = Vec::with_capacity(opts.endpoints.len());
        for address in &opts.endpoints {
            let mut endpoint = Endpoint::from_shared(address.clone())
                .map_err(|e| Status::invalid_argument(format!("endpoint `{address}`: {e}")))?
                .connect_timeout(opts.timeout.min(Duration::from_secs(2)))
                .tcp_nodelay(true)
                // etcd refuses pings more often than every 5 s (`--grpc-keepalive-min-time`).
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            if let Some(tls) = &opts.tls {
                endpoint = endpoint.tls_config(tls.clone()).map_err(|e| {
                    Status::invalid_argument(format!("endpoint `{address}`: {}", chain(&e)))
                })?;
            }
            endpoints.push(endpoint);
        }
        let channel = match endpoints.as_slice() {
            [] => return Err(Status::invalid_argument("no endpoint given")),
            [one] => one.connect_lazy(),
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        let client = Self {
            // etcd's Go client reads replies of up to 2 GiB (`MaxCallRecvMsgSize`), tonic 4 MiB
            // by default: a service of some thousand nodes lists more than that.
            grpc: Grpc::new(channel).max_decoding_message_size(i32::MAX as usize),
            timeout: opts.timeout,
            auth: opts.credentials.map(|(user, password)| {
                Arc::new(Auth {
                    user,
                    password,
                    token: RwLock::new(None),
                    refresh: tokio::sync::Mutex::new(()),
                })
            }),
        };
        if let Some(auth) = &client.auth {
            client.authenticate(auth).await?;
        }
        Ok(client)
    }

    /// Gets a new token for the credentials.
    async fn authenticate(&self, auth: &Auth) -> Result<(), Status> {
        let req = pb::AuthenticateRequest {
            name: auth.user.clone(),
            password: auth.password.clone(),
        };
        // Without the old token: etcd refuses any call that carries an expired one.
        let rsp: pb::AuthenticateResponse = self
            .send(path::AUTHENTICATE, Request::new(req), |grpc, path, req| {
                Box::pin(async move {
                    grpc.unary(req, path, ProstCodec::default())
                        .await
                        .map(tonic::Response::into_inner)
                })
            })
            .await
            // etcd answers wrong credentials with INVALID_ARGUMENT.
            .map_err(|status| match status.code() {
                Code::InvalidArgument => Status::unauthenticated(status.message()),
                _ => status,
            })?;
        let token = AsciiMetadataValue::try_from(rsp.token.as_str())
            .map_err(|_| Status::internal("etcd answered with a token that is not ASCII"))?;
        *auth.token.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
        Ok(())
    }

    /// Whether `status` says the token expired (etcd's simple tokens do after 5 idle minutes).
    fn token_expired(&self, status: &Status) -> bool {
        self.auth.is_some()
            && status.code() == Code::Unauthenticated
            && status.message().contains("invalid auth token")
    }

    /// Sends one call within the timeout, with the token unless it authenticates.
    async fn send<M, T>(
        &self,
        path: &'static str,
        mut request: Request<M>,
        call: impl FnOnce(
            &mut Grpc<Channel>,
            PathAndQuery,
            Request<M>,
        ) -> futures::future::BoxFuture<'_, Result<T, Status>>,
    ) -> Result<T, Status> {
        if let Some(auth) = &self.auth
            && path != path::AUTHENTICATE
            && let Some(token) = auth
                .token
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        {
            request.metadata_mut().insert("token", token);
        }
        let mut grpc = self.grpc.clone();
        let attempt = async {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(chain(&e)))?;
            call(&mut grpc, PathAndQuery::from_static(path), request).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result.map_err(explain),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// A unary call; refreshes an expired token once.
    async fn unary<Q, R>(&self, path: &'static str, req: Q) -> Result<R, Status>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        R: prost::Message + Default + Send + 'static,
    {
        let once = |req: Q| {
            self.send(path, Request::new(req), |grpc, path, req| {
                Box::pin(async move {
                    grpc.unary(req, path, ProstCodec::default())
                        .await
                        .map(tonic::Response::into_inner)
                })
            })
        };
        match once(req.clone()).await {
            Err(status) if self.token_expired(&status) => {
                self.refresh().await?;
                once(req).await
            }
            other => other,
        }
    }

    /// Authenticates again, unless another call just did.
    async fn refresh(&self) -> Result<(), Status> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let stale = auth
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let _serial = auth.refresh.lock().await;
        let now = auth
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if now != stale {
            return Ok(());
        }
        tracing::debug!("etcd: auth token expired; authenticating again");
        self.authenticate(auth).await
    }

    /// Opens a bidirectional stream whose requests come from `requests`.
    async fn stream<Q, R>(
        &self,
        path: &'static str,
        requests: impl futures::Stream<Item = Q> + Send + 'static,
    ) -> Result<Streaming<R>, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + 'static,
    {
        self.send(path, Request::new(requests), |grpc, path, req| {
            Box::pin(async move {
                grpc.streaming(req, path, ProstCodec::default())
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .await
    }

    /// The keys in `[key, range_end)` (just `key` when `range_end` is empty).
    pub(crate) async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        self.unary(path::RANGE, req).await
    }

    /// Writes `key`, under `lease` unless it is 0; returns the previous value.
    pub(crate) async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<pb::PutResponse, Status> {
        let req = pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: true,
        };
        self.unary(path::PUT, req).await
    }

    /// Deletes `key`; returns what it held.
    pub(crate) async fn delete(&self, key: &[u8]) -> Result<pb::DeleteRangeResponse, Status> {
        let req = pb::DeleteRangeRequest {
            key: key.to_vec(),
            range_end: Vec::new(),
            prev_kv: true,
        };
        self.unary(path::DELETE_RANGE, req).await
    }

    /// A new lease of `ttl` seconds; its id.
    pub(crate) async fn lease_grant(&self, ttl: i64) -> Result<i64, Status> {
        let rsp: pb::LeaseGrantResponse = self
            .unary(path::LEASE_GRANT, pb::LeaseGrantRequest { ttl, id: 0 })
            .await?;
        if rsp.error.is_empty() {
            Ok(rsp.id)
        } else {
            Err(Status::internal(rsp.error))
        }
    }

    /// Ends a lease and deletes its keys.
    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<(), Status> {
        let _: pb::LeaseRevokeResponse = self
            .unary(path::LEASE_REVOKE, pb::LeaseRevokeRequest { id })
            .await?;
        Ok(())
    }

    /// Renews a lease once: `Ok(true)` if etcd renewed it, `Ok(false)` if etcd does not know
    /// it (etcd answers a keep-alive of an unknown lease with a TTL of 0).
    pub(crate) async fn lease_keep_alive_once(&self, id: i64) -> Result<bool, Status> {
        let attempt = || async {
            // One request, then the client side closes: etcd answers it, then ends the stream.
            let requests = futures::stream::once(async move { pb::LeaseKeepAliveRequest { id } });
            let mut stream: Streaming<pb::LeaseKeepAliveResponse> =
                self.stream(path::LEASE_KEEP_ALIVE, requests).await?;
            match tokio::time::timeout(self.timeout, stream.message()).await {
                Ok(Ok(Some(rsp))) => Ok(rsp.ttl > 0),
                Ok(Ok(None)) => Err(Status::unavailable("keep-alive stream ended unanswered")),
                Ok(Err(status)) => Err(status),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no keep-alive answer within {:?}",
                    self.timeout
                ))),
            }
        };
        match attempt().await {
            Err(status) if self.token_expired(&status) => {
                self.refresh().await?;
                attempt().await
            }
            other => other,
        }
    }

    /// Starts a watch of every key under `prefix` with previous values, from `start_revision`
    /// (0: from now). The first response says whether etcd created it.
    pub(crate) async fn watch_prefix(
        &self,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, Status> {
        let create = pb::WatchRequest {
            create_request: Some(pb::WatchCreateRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                start_revision,
                prev_kv: true,
            }),
        };
        let attempt = || async {
            let (tx, rx) = mpsc::channel(1);
            tx.send(create.clone())
                .await
                .map_err(|_| Status::internal("watch request channel closed"))?;
            let responses = self
                .stream(path::WATCH, ReceiverStream::new(rx).boxed())
                .await?;
            Ok::<_, Status>(WatchStream {
                _requests: tx,
                responses,
            })
        };
        match attempt().await {
            Err(status) if self.token_expired(&status) => {
                self.refresh().await?;
                attempt().await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn prefix_ends_follow_etcd() {
        assert_eq!(prefix_end(b"/micro/registry/"), b"/micro/registry0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
        assert_eq!(prefix_end(b""), [0]);
    }

    #[test]
    fn messages_use_etcds_field_numbers() {
        // PutRequest{key:"k", value:"v", lease:1, prev_kv:true}, as etcd's Go client encodes it.
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 1,
            prev_kv: true,
        };
        assert_eq!(
            put.encode_to_vec(),
            [0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 1, 0x20, 1]
        );
        // RangeRequest.count_only is field 9; WatchCreateRequest.prev_kv is field 6, inside
        // WatchRequest field 1.
        let range = pb::RangeRequest {
            key: b"k".to_vec(),
            count_only: true,
            ..pb::RangeRequest::default()
        };
        assert_eq!(range.encode_to_vec(), [0x0a, 1, b'k', 0x48, 1]);
        let watch = pb::WatchRequest {
            create_request: Some(pb::WatchCreateRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                start_revision: 0,
                prev_kv: true,
            }),
        };
        assert_eq!(
            watch.encode_to_vec(),
            [0x0a, 8, 0x0a, 1, b'k', 0x12, 1, b'l', 0x30, 1]
        );
        // WatchResponse.events is field 11; an Event's kv field 2, its key field 1.
        let rsp =
            pb::WatchResponse::decode(&[0x5a, 5, 0x12, 3, 0x0a, 1, b'k'][..]).expect("decodes");
        assert_eq!(rsp.events[0].kv.as_ref().expect("kv").key, b"k");
        assert_eq!(rsp.events[0].r#type, pb::PUT);
    }
}
