//! Building the registry and broker named by the configuration.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use crate::broker::SharedBroker;
use crate::broker::http::{HttpBroker, HttpBrokerOptions};
use crate::broker::memory::MemoryBroker;
use crate::config::Options;
use crate::registry::SharedRegistry;
use crate::registry::mdns::{MdnsOptions, MdnsRegistry};
use crate::registry::memory::MemoryRegistry;
use crate::{Error, Result};

/// `--registry=memory` and `--broker=memory` are process-wide, so that services and clients
/// of one process (a test) find each other.
static MEMORY_REGISTRY: OnceLock<MemoryRegistry> = OnceLock::new();
static MEMORY_BROKER: OnceLock<MemoryBroker> = OnceLock::new();

/// The interface mDNS speaks on: `--registry_address` when it is an IPv4 address, else the
/// server's bind address when that is a specific non-loopback IPv4, else loopback. So a
/// service bound to 127.0.0.1 (the default) never sends mDNS beyond this machine.
fn mdns_interface(options: &Options, bind: IpAddr) -> Result<Ipv4Addr> {
    let given = options.registry_address.trim();
    if !given.is_empty() {
        return given.parse().map_err(|_| {
            Error::bad_request(
                "go.micro.registry",
                format!("mdns: `--registry_address` must be the IPv4 address of the interface to speak on, got `{given}`"),
            )
        });
    }
    Ok(match bind {
        IpAddr::V4(v4) if !v4.is_unspecified() => v4,
        _ => Ipv4Addr::LOCALHOST,
    })
}

/// Builds the registry `options.registry` names. `bind` is the server's bound IP (mDNS uses
/// it to pick its interface).
pub fn registry_from(options: &Options, bind: IpAddr) -> Result<SharedRegistry> {
    match options.registry.as_str() {
        "mdns" => {
            let opts = MdnsOptions {
                interface: mdns_interface(options, bind)?,
                ..MdnsOptions::default()
            };
            Ok(Arc::new(MdnsRegistry::new(opts)?))
        }
        "memory" => Ok(Arc::new(
            MEMORY_REGISTRY.get_or_init(MemoryRegistry::new).clone(),
        )),
        #[cfg(feature = "consul")]
        "consul" => Ok(Arc::new(
            crate::registry::consul::ConsulRegistry::from_config(options)?,
        )),
        #[cfg(feature = "etcd")]
        "etcd" => Ok(Arc::new(crate::registry::etcd::EtcdRegistry::from_config(
            options,
        )?)),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(crate::registry::nats::NatsRegistry::from_config(
            options,
        )?)),
        #[cfg(feature = "dns")]
        "dns" => Ok(Arc::new(crate::registry::dns::DnsRegistry::from_config(
            options,
        )?)),
        #[cfg(feature = "zookeeper")]
        "zookeeper" => Ok(Arc::new(
            crate::registry::zookeeper::ZookeeperRegistry::from_config(options)?,
        )),
        other => Err(Error::bad_request(
            "go.micro.registry",
            format!("registry `{other}` is not available in this build of rmicro"),
        )),
    }
}

/// Builds the broker `options.broker` names.
pub fn broker_from(options: &Options, registry: &SharedRegistry) -> Result<SharedBroker> {
    match options.broker.as_str() {
        "http" => {
            let mut opts = HttpBrokerOptions::default();
            if !options.broker_address.is_empty() {
                opts.address = options.broker_address.clone();
            }
            Ok(Arc::new(HttpBroker::new(Arc::clone(registry), opts)))
        }
        "memory" => Ok(Arc::new(
            MEMORY_BROKER.get_or_init(MemoryBroker::new).clone(),
        )),
        #[cfg(feature = "mqtt")]
        "mqtt" => Ok(Arc::new(crate::broker::mqtt::MqttBroker::from_config(
            options,
        )?)),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(crate::broker::nats::NatsBroker::from_config(
            options,
        )?)),
        #[cfg(feature = "rabbitmq")]
        "rabbitmq" => Ok(Arc::new(
            crate::broker::rabbitmq::RabbitmqBroker::from_config(options)?,
        )),
        #[cfg(feature = "redis")]
        "redis" => Ok(Arc::new(crate::broker::redis::RedisBroker::from_config(
            options,
        )?)),
        #[cfg(feature = "googlepubsub")]
        "googlepubsub" => Ok(Arc::new(
            crate::broker::googlepubsub::GooglePubSubBroker::from_config(options)?,
        )),
        #[cfg(feature = "kafka")]
        "kafka" => Ok(Arc::new(crate::broker::kafka::KafkaBroker::from_config(
            options,
        )?)),
        #[cfg(feature = "nsq")]
        "nsq" => Ok(Arc::new(crate::broker::nsq::NsqBroker::from_config(
            options,
        )?)),
        other => Err(Error::bad_request(
            "go.micro.broker",
            format!("broker `{other}` is not available in this build of rmicro"),
        )),
    }
}

/// The running program's file name (`student_client`): what a client's traces are named by
/// when `OTEL_SERVICE_NAME` does not name them.
#[cfg(feature = "otel")]
fn program_name() -> String {
    std::env::args()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_stem())
        .map_or_else(
            || "rmicro-client".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
}

impl crate::rpc::Client {
    /// A client for the registry, broker, selector, retries and timeout that `options` name.
    /// Must be called inside a tokio runtime (mDNS starts answering at once).
    pub fn from_options(options: &Options) -> Result<Self> {
        let registry = registry_from(options, IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let broker = broker_from(options, &registry)?;
        let client_options = crate::rpc::ClientOptions {
            retries: options.client_retries,
            request_timeout: options.client_request_timeout,
            strategy: options.selector,
            content_type: (!options.client_content_type.is_empty())
                .then(|| options.client_content_type.clone()),
            tls: crate::rpc::tls::ClientTls::from_env()?,
            ..crate::rpc::ClientOptions::default()
        };
        let client = Self::new(registry, client_options).with_broker(broker);
        #[cfg(feature = "otel")]
        if let Some(tracing) = crate::otel::layers(&program_name()) {
            return Ok(client.with_layers(&tracing));
        }
        Ok(client)
    }

    /// A client configured by the `MICRO_*` environment only (default: mdns + http broker).
    /// Reads no flags, so it is safe in tests and libraries.
    pub fn from_env() -> Result<Self> {
        let options = Options::from_env(&crate::config::Layer::default()).map_err(|e| {
            Error::bad_request("go.micro.client", format!("invalid configuration: {e}"))
        })?;
        Self::from_options(&options)
    }

    /// A client configured by the environment and the program's flags (`--registry=consul`,
    /// `--selector=roundrobin`, ...), for client programs. `--help` prints the options and
    /// exits 0; a bad value prints the error and exits with status 2, as a service does.
    pub fn from_args() -> Self {
        let options = Options::from_process(&crate::config::Layer::default());
        match Self::from_options(&options) {
            Ok(client) => client,
            Err(err) => {
                eprintln!("error: {}", err.detail);
                std::process::exit(2);
            }
        }
    }
}
