//! Service discovery: the [`Registry`] trait, go-micro's registry model and the plugins.
//!
//! The model's JSON names are go-micro's exactly (`name`, `version`, `metadata`, `endpoints`,
//! `nodes`, ...), so records written by rmicro are read by go-micro and the other way round.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Deserializer, Serialize};

use crate::Result;

#[cfg(feature = "consul")]
pub mod consul;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod mdns;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

/// String metadata, as go-micro's `map[string]string`.
pub type Metadata = BTreeMap<String, String>;

/// A service as the registry knows it: one name and version, the endpoints it serves and the
/// nodes (running instances) that serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Service name, e.g. `student_service`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Version, e.g. `v1.0.0`.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Service-level metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
    /// The RPC endpoints the service serves.
    #[serde(default, deserialize_with = "null_default")]
    pub endpoints: Vec<Endpoint>,
    /// The running instances.
    #[serde(default, deserialize_with = "null_default")]
    pub nodes: Vec<Node>,
}

/// One running instance of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `<service name>-<uuid v4>`.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// `host:port` the node serves RPC on.
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    /// Node metadata: `transport`, `broker`, `server`, `registry`, `protocol`, and the user's.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
}

/// An RPC endpoint, `Handler.Method`, with descriptions of its request and response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `StudentService.GetStudent`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The request type.
    #[serde(default)]
    pub request: Option<Value>,
    /// The response type.
    #[serde(default)]
    pub response: Option<Value>,
    /// Endpoint metadata (go-micro sets `stream`; subscribers set `subscriber` and `topic`).
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
}

/// A description of a type: its name, its type, and its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// Field (or type) name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Type name.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub type_: String,
    /// Fields, for structs.
    #[serde(default, deserialize_with = "null_default")]
    pub values: Vec<Value>,
}

/// Groups one-node records (as the etcd and zookeeper registries store them) into services
/// by `(name, version)`, keeping the first record's metadata and endpoints, sorted by name
/// then version.
#[cfg_attr(not(any(feature = "etcd", feature = "zookeeper")), allow(dead_code))]
pub(crate) fn group(records: Vec<Service>) -> Vec<Service> {
    let mut by: BTreeMap<(String, String), Service> = BTreeMap::new();
    for mut record in records {
        let nodes = std::mem::take(&mut record.nodes);
        by.entry((record.name.clone(), record.version.clone()))
            .or_insert(record)
            .nodes
            .extend(nodes);
    }
    by.into_values().collect()
}

/// `host:port` as given, or `host` with `port` added when it has none (`[::1]` too); `None`
/// when what follows the last `:` is not a port (`h:port`, a bare IPv6 address).
#[cfg_attr(not(any(feature = "etcd", feature = "zookeeper")), allow(dead_code))]
pub(crate) fn with_default_port(host_port: &str, port: u16) -> Option<String> {
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if has_port {
        Some(host_port.to_owned())
    } else if host_port.starts_with('[') || !host_port.contains(':') {
        Some(format!("{host_port}:{port}"))
    } else {
        None
    }
}

/// Go marshals nil maps and slices as `null`; read that as empty.
fn null_default<'de, D, T>(de: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Options of [`Registry::register`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisterOptions {
    /// How long the registration lives without being asserted again. Zero means no expiry.
    pub ttl: Duration,
}

impl RegisterOptions {
    /// Options with the given TTL.
    pub fn ttl(ttl: Duration) -> Self {
        Self { ttl }
    }
}

/// Options of [`Registry::watch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Watch only this service; `None` watches every service.
    pub service: Option<String>,
}

impl WatchOptions {
    /// Watch one service.
    pub fn service(name: impl Into<String>) -> Self {
        Self {
            service: Some(name.into()),
        }
    }
}

/// What happened to a service, as go-micro's `registry.Result.Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A node appeared.
    Create,
    /// A node was registered again or changed.
    Update,
    /// A node went away.
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        })
    }
}

/// One change seen by a watch: the action and the service, holding the nodes it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub action: Action,
    /// The service, with the affected node(s).
    pub service: Service,
}

/// A stream of registry changes.
pub type Watcher = BoxStream<'static, Result<Change>>;

/// A service registry: where services announce their nodes and clients find them.
///
/// Implementations are cheap to share (`Arc<dyn Registry>`); every method takes `&self`.
#[async_trait]
pub trait Registry: Send + Sync + fmt::Debug + 'static {
    /// The plugin's name as the `--registry` flag spells it (`mdns`, `memory`, ...).
    fn name(&self) -> &str;

    /// Adds or refreshes the service's nodes, to live for `opts.ttl`.
    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()>;

    /// Removes the service's nodes.
    async fn deregister(&self, service: &Service) -> Result<()>;

    /// Every version of the named service that has at least one node.
    async fn get_service(&self, name: &str) -> Result<Vec<Service>>;

    /// Every service, possibly without nodes or endpoints filled in.
    async fn list_services(&self) -> Result<Vec<Service>>;

    /// A stream of changes.
    async fn watch(&self, opts: WatchOptions) -> Result<Watcher>;
}

#[async_trait]
impl<R: Registry + ?Sized> Registry for Arc<R> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn register(&self, service: &Service, opts: RegisterOptions) -> Result<()> {
        (**self).register(service, opts).await
    }
    async fn deregister(&self, service: &Service) -> Result<()> {
        (**self).deregister(service).await
    }
    async fn get_service(&self, name: &str) -> Result<Vec<Service>> {
        (**self).get_service(name).await
    }
    async fn list_services(&self) -> Result<Vec<Service>> {
        (**self).list_services().await
    }
    async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        (**self).watch(opts).await
    }
}

/// The shared handle to a registry plugin.
pub type SharedRegistry = Arc<dyn Registry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_nil_maps_and_slices() {
        let json = r#"{"name":"s","version":"","metadata":null,"endpoints":null,
            "nodes":[{"id":"s-1","address":"127.0.0.1:1","metadata":null}]}"#;
        let svc: Service = serde_json::from_str(json).expect("go-micro JSON");
        assert_eq!(svc.nodes[0].id, "s-1");
        assert!(svc.metadata.is_empty());
        assert!(svc.endpoints.is_empty());
    }

    #[test]
    fn writes_go_micro_names() {
        let ep = Endpoint {
            name: "S.M".into(),
            request: Some(Value {
                name: "Req".into(),
                type_: "Req".into(),
                values: vec![],
            }),
            response: None,
            metadata: Metadata::new(),
        };
        let json = serde_json::to_string(&ep).expect("serialise");
        assert_eq!(
            json,
            r#"{"name":"S.M","request":{"name":"Req","type":"Req","values":[]},"response":null,"metadata":{}}"#
        );
    }
}
