//! Configuration with go-micro's names: flags (`--registry=consul`), environment
//! (`MICRO_REGISTRY`), attribute values and framework defaults.
//!
//! Precedence, lowest first: framework default < `#[service(..)]`/builder value < environment
//! < flag. Only a value that was actually given overrides a lower layer. The merged result is
//! validated as a whole; an error names the flag or variable that supplied the bad value.
//! Flags are read only on the run-a-service path ([`crate::ServiceBuilder::run`],
//! [`Options::from_process`]), never by constructors, so `cargo test` arguments never reach
//! them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::registry::Metadata;
use crate::rpc::Strategy;

/// Registries rmicro knows, and the cargo feature each needs (`None` = always built).
pub const REGISTRIES: &[(&str, Option<&str>)] = &[
    ("mdns", None),
    ("memory", None),
    ("consul", Some("consul")),
    ("etcd", Some("etcd")),
    ("nats", Some("nats")),
    ("zookeeper", Some("zookeeper")),
    ("dns", Some("dns")),
];

/// Brokers rmicro knows, and the cargo feature each needs (`None` = always built).
pub const BROKERS: &[(&str, Option<&str>)] = &[
    ("http", None),
    ("memory", None),
    ("mqtt", Some("mqtt")),
    ("nats", Some("nats")),
    ("rabbitmq", Some("rabbitmq")),
    ("redis", Some("redis")),
    ("nsq", Some("nsq")),
    ("kafka", Some("kafka")),
    ("googlepubsub", Some("googlepubsub")),
];

/// The values one layer gives; `None` = not given by this layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Layer {
    /// `--registry`.
    pub registry: Option<String>,
    /// `--registry_address`.
    pub registry_address: Option<String>,
    /// `--register_ttl`.
    pub register_ttl: Option<Duration>,
    /// `--register_interval`.
    pub register_interval: Option<Duration>,
    /// `--broker`.
    pub broker: Option<String>,
    /// `--broker_address`.
    pub broker_address: Option<String>,
    /// `--server`.
    pub server: Option<String>,
    /// `--server_name`.
    pub server_name: Option<String>,
    /// `--server_version`.
    pub server_version: Option<String>,
    /// `--server_id`.
    pub server_id: Option<String>,
    /// `--server_address`.
    pub server_address: Option<String>,
    /// `--server_advertise`.
    pub server_advertise: Option<String>,
    /// `--server_metadata`, merged key by key over lower layers.
    pub server_metadata: Metadata,
    /// `--client_retries`.
    pub client_retries: Option<u32>,
    /// `--client_request_timeout`.
    pub client_request_timeout: Option<Duration>,
    /// `--selector`.
    pub selector: Option<Strategy>,
    /// `--client_content_type`.
    pub client_content_type: Option<String>,
    /// `--log_format`.
    pub log_format: Option<String>,
    /// `--log_level`.
    pub log_level: Option<String>,
    /// `--health_address`.
    pub health_address: Option<String>,
}

/// The merged, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Registry plugin name.
    pub registry: String,
    /// Registry address(es), plugin-specific; empty = the plugin's default.
    pub registry_address: String,
    /// How long a registration lives without a heartbeat.
    pub register_ttl: Duration,
    /// How often the service registers again.
    pub register_interval: Duration,
    /// Broker plugin name.
    pub broker: String,
    /// Broker address, plugin-specific; empty = the plugin's default.
    pub broker_address: String,
    /// The RPC protocol the service registers and serves: `mucp` (go-micro's default) or
    /// `grpc` (go-micro's grpc server: gRPC over h2c, served beside mucp on the same port).
    pub server: String,
    /// Service name.
    pub server_name: String,
    /// Service version.
    pub server_version: String,
    /// Node id; empty = `<name>-<uuid v4>`.
    pub server_id: String,
    /// Address the RPC server binds.
    pub server_address: String,
    /// Address advertised in the registry instead of the bound one.
    pub server_advertise: String,
    /// Node metadata.
    pub server_metadata: Metadata,
    /// Retries of a failed call.
    pub client_retries: u32,
    /// Per-call timeout.
    pub client_request_timeout: Duration,
    /// Node selection strategy.
    pub selector: Strategy,
    /// The content type calls and published messages are encoded as; empty = each message
    /// type's own default (protobuf for prost types, JSON for the others).
    pub client_content_type: String,
    /// `text` or `json`.
    pub log_format: String,
    /// `trace`, `debug`, `info`, `warn` or `error` (`RUST_LOG` wins when set).
    pub log_level: String,
    /// Where the health paths and `/metrics` are served; empty = on the server's own
    /// address, beside mucp.
    pub health_address: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            registry: "mdns".to_owned(),
            registry_address: String::new(),
            register_ttl: Duration::from_secs(90),
            register_interval: Duration::from_secs(30),
            broker: "http".to_owned(),
            broker_address: String::new(),
            server: "mucp".to_owned(),
            server_name: String::new(),
            server_version: "latest".to_owned(),
            server_id: String::new(),
            server_address: "127.0.0.1:0".to_owned(),
            server_advertise: String::new(),
            server_metadata: Metadata::new(),
            client_retries: 5,
            client_request_timeout: Duration::from_secs(30),
            selector: Strategy::Random,
            client_content_type: String::new(),
            log_format: "text".to_owned(),
            log_level: "info".to_owned(),
            health_address: String::new(),
        }
    }
}

/// One option: its flag, its variable, its help.
struct Spec {
    flag: &'static str,
    help: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        flag: "registry",
        help: "Registry for discovery: mdns, memory, consul, etcd, nats, zookeeper, dns (all but mdns and memory behind the cargo feature of that name)",
    },
    Spec {
        flag: "registry_address",
        help: "Comma-separated list of registry addresses (mdns: the interface IPv4 to speak on)",
    },
    Spec {
        flag: "register_ttl",
        help: "Register TTL: seconds, or a duration such as 1m30s",
    },
    Spec {
        flag: "register_interval",
        help: "Register interval: seconds, or a duration such as 15s",
    },
    Spec {
        flag: "broker",
        help: "Broker for pub/sub: http, memory, mqtt, nats, rabbitmq, redis, nsq, kafka, googlepubsub (all but http and memory behind the cargo feature of that name)",
    },
    Spec {
        flag: "broker_address",
        help: "Comma-separated list of broker addresses",
    },
    Spec {
        flag: "server",
        help: "Server protocol: mucp (go-micro's default) or grpc (gRPC over h2c, beside mucp on the same port)",
    },
    Spec {
        flag: "server_name",
        help: "Name of the server",
    },
    Spec {
        flag: "server_version",
        help: "Version of the server",
    },
    Spec {
        flag: "server_id",
        help: "Id of the server node (default: <name>-<uuid>)",
    },
    Spec {
        flag: "server_address",
        help: "Bind address for the server",
    },
    Spec {
        flag: "server_advertise",
        help: "Address to advertise in the registry",
    },
    Spec {
        flag: "server_metadata",
        help: "A key=value pair of node metadata; repeat for more",
    },
    Spec {
        flag: "client_retries",
        help: "Number of retries of a failed call",
    },
    Spec {
        flag: "client_request_timeout",
        help: "Request timeout: seconds, or a duration such as 5s",
    },
    Spec {
        flag: "selector",
        help: "Node selection strategy: random, roundrobin",
    },
    Spec {
        flag: "client_content_type",
        help: "Content type of calls and published messages: application/json, application/protobuf (default: protobuf for prost types, JSON for the others)",
    },
    Spec {
        flag: "log_format",
        help: "Log output on stderr: text or json (one object per line)",
    },
    Spec {
        flag: "health_address",
        help: "Serve /health, /health/live, /health/ready and /metrics on this address (such as 0.0.0.0:9090) instead of beside mucp on the server's",
    },
    Spec {
        flag: "log_level",
        help: "Log level: trace, debug, info, warn, error (RUST_LOG, when set, wins: it takes per-module directives)",
    },
];

/// The environment variable go-micro reads for `flag`.
pub fn env_var(flag: &str) -> String {
    format!("MICRO_{}", flag.to_ascii_uppercase())
}

/// A configuration error, naming where the bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `--register_ttl`, `MICRO_REGISTER_TTL` or `#[service(ttl)]`.
    pub source: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.source, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where each merged value came from, so errors can name it.
#[derive(Debug, Clone, Default)]
struct Origins(BTreeMap<&'static str, String>);

impl Origins {
    fn of(&self, flag: &str) -> String {
        self.0
            .get(flag)
            .cloned()
            .unwrap_or_else(|| format!("`{flag}` (built-in default)"))
    }
}

/// Parses a duration the way go-micro's flags accept them: an integer number of seconds
/// (`10`), or Go duration syntax (`1m30s`, `500ms`, `1h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` lacks a unit after its last number (s, m, h, ms)"))?;
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration, expected e.g. `10`, `10s`, `1m30s`, `500ms`"
            ));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{}` is not a number", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!(
                    "unknown unit `{unit}` in `{text}`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h`"
                ));
            }
        };
        total += Duration::try_from_secs_f64(number * scale)
            .map_err(|_| format!("`{text}` is out of range"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn parse_metadata_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not a key=value pair")),
    }
}

fn check_plugin(
    kind: &str,
    name: &str,
    known: &[(&str, Option<&str>)],
    built: impl Fn(&str) -> bool,
) -> Result<(), String> {
    match known.iter().find(|(n, _)| *n == name) {
        None => Err(format!(
            "unknown {kind} `{name}`, expected one of {}",
            known
                .iter()
                .map(|(n, _)| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some((_, Some(feature))) if !built(feature) => Err(format!(
            "{kind} `{name}` is not built into this program: enable the `{feature}` feature of `rmicro`"
        )),
        Some(_) => Ok(()),
    }
}

/// The plugin features compiled into this build.
const BUILT_FEATURES: &[&str] = &[
    #[cfg(feature = "consul")]
    "consul",
    #[cfg(feature = "dns")]
    "dns",
    #[cfg(feature = "etcd")]
    "etcd",
    #[cfg(feature = "googlepubsub")]
    "googlepubsub",
    #[cfg(feature = "kafka")]
    "kafka",
    #[cfg(feature = "mqtt")]
    "mqtt",
    #[cfg(feature = "nats")]
    "nats",
    #[cfg(feature = "nsq")]
    "nsq",
    #[cfg(feature = "rabbitmq")]
    "rabbitmq",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "zookeeper")]
    "zookeeper",
];

/// Whether a plugin feature is compiled in.
pub fn feature_enabled(feature: &str) -> bool {
    BUILT_FEATURES.contains(&feature)
}

fn check_address(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` is not host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("`{port}` in `{text}` is not a port (0-65535)"))?;
    if host.starts_with('[') != host.ends_with(']') {
        return Err(format!("`{text}` has an unbalanced IPv6 bracket"));
    }
    Ok(())
}

impl Layer {
    /// Overlays `other` on `self`: every value `other` gives wins.
    #[must_use]
    pub fn overlay(mut self, other: &Layer) -> Layer {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(
            registry,
            registry_address,
            register_ttl,
            register_interval,
            broker,
            broker_address,
            server,
            server_name,
            server_version,
            server_id,
            server_address,
            server_advertise,
            client_retries,
            client_request_timeout,
            selector,
            client_content_type,
            log_format,
            log_level,
            health_address
        );
        for (k, v) in &other.server_metadata {
            self.server_metadata.insert(k.clone(), v.clone());
        }
        self
    }
}

impl Options {
    /// Merges `layer` over the defaults, without validation.
    fn apply(mut self, layer: &Layer) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = &layer.$f { self.$f = v.clone(); } )* };
        }
        take!(
            registry,
            registry_address,
            register_ttl,
            register_interval,
            broker,
            broker_address,
            server,
            server_name,
            server_version,
            server_id,
            server_address,
            server_advertise,
            client_retries,
            client_request_timeout,
            selector,
            client_content_type,
            log_format,
            log_level,
            health_address
        );
        for (k, v) in &layer.server_metadata {
            self.server_metadata.insert(k.clone(), v.clone());
        }
        self
    }

    /// The options a program sees: defaults < `code` < environment < the process's flags.
    /// `--help` prints the options and exits 0; a bad value prints the error and exits 2.
    pub fn from_process(code: &Layer) -> Options {
        let env = |name: &str| std::env::var(name).ok();
        match Self::resolve(code, env, std::env::args_os()) {
            Ok(opts) => opts,
            Err(Resolve::Clap(err)) => err.exit(),
            Err(Resolve::Invalid(err)) => {
                eprintln!("error: {err}");
                std::process::exit(2);
            }
        }
    }

    /// Like [`Options::from_process`] with the environment only (no flags): what
    /// constructors such as `Client::from_env` use.
    pub fn from_env(code: &Layer) -> Result<Options, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        match Self::resolve(code, env, [OsString::from("rmicro")]) {
            Ok(opts) => Ok(opts),
            Err(Resolve::Clap(err)) => Err(ConfigError {
                source: "environment".to_owned(),
                message: err.to_string(),
            }),
            Err(Resolve::Invalid(err)) => Err(err),
        }
    }

    /// Resolves the layers from an explicit environment and argument list (the first
    /// argument is the program name), for tests and embedders.
    pub fn resolve<I, T>(
        code: &Layer,
        env: impl Fn(&str) -> Option<String>,
        args: I,
    ) -> Result<Options, Resolve>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let effective_default = Options::default().apply(code);
        let matches = command(&effective_default, code)
            .try_get_matches_from(args)
            .map_err(Resolve::Clap)?;
        let mut origins = Origins::default();
        for spec in SPECS {
            if code_gives(code, spec.flag) {
                origins
                    .0
                    .insert(spec.flag, format!("`{}` (set in code)", spec.flag));
            }
        }
        let given =
            given_layer(&matches, &env, &mut origins, |_| true).map_err(Resolve::Invalid)?;
        let opts = effective_default.apply(&given);
        opts.validate(&origins).map_err(Resolve::Invalid)?;
        Ok(opts)
    }

    /// The options of a tool built on rmicro (the `rmicro` command), from the matches of a
    /// command that [`with_client_flags`] gave the client's flags: defaults < `code` <
    /// environment (the `MICRO_*` variables of [`CLIENT_FLAGS`] only) < flags, validated as
    /// a service's are.
    pub fn from_matches(
        code: &Layer,
        matches: &ArgMatches,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Options, ConfigError> {
        let effective_default = Options::default().apply(code);
        let mut origins = Origins::default();
        let given = given_layer(matches, &env, &mut origins, |flag| {
            CLIENT_FLAGS.contains(&flag)
        })?;
        let opts = effective_default.apply(&given);
        opts.validate(&origins)?;
        Ok(opts)
    }

    fn validate(&self, origins: &Origins) -> Result<(), ConfigError> {
        let fail = |flag: &str, message: String| ConfigError {
            source: origins.of(flag),
            message,
        };
        check_plugin("registry", &self.registry, REGISTRIES, feature_enabled)
            .map_err(|m| fail("registry", m))?;
        check_plugin("broker", &self.broker, BROKERS, feature_enabled)
            .map_err(|m| fail("broker", m))?;
        if !["mucp", "grpc"].contains(&self.server.as_str()) {
            return Err(fail(
                "server",
                format!("unknown server `{}`: mucp or grpc", self.server),
            ));
        }
        if self.register_ttl.is_zero() {
            return Err(fail("register_ttl", "must be greater than 0".to_owned()));
        }
        if self.register_interval.is_zero() {
            return Err(fail(
                "register_interval",
                "must be greater than 0".to_owned(),
            ));
        }
        if self.register_interval >= self.register_ttl {
            return Err(fail(
                "register_interval",
                format!(
                    "the interval ({:?}) must be shorter than the TTL ({:?}), or the registration expires between heartbeats",
                    self.register_interval, self.register_ttl
                ),
            ));
        }
        if self.client_request_timeout.is_zero() {
            return Err(fail(
                "client_request_timeout",
                "must be greater than 0".to_owned(),
            ));
        }
        check_address(&self.server_address).map_err(|m| fail("server_address", m))?;
        if self.server_address.is_empty() {
            return Err(fail(
                "server_address",
                "must not be empty (use 127.0.0.1:0 for any free port)".to_owned(),
            ));
        }
        if self.server_address.parse::<SocketAddr>().is_err()
            && !self.server_address.starts_with("localhost:")
            && !self.server_address.starts_with(':')
        {
            return Err(fail(
                "server_address",
                format!(
                    "`{}` is not an IP address and port such as 127.0.0.1:8080",
                    self.server_address
                ),
            ));
        }
        check_address(&self.server_advertise).map_err(|m| fail("server_advertise", m))?;
        if !self.health_address.is_empty() && socket_address(&self.health_address).is_none() {
            return Err(fail(
                "health_address",
                format!(
                    "`{}` is not an IP address and port such as 0.0.0.0:9090",
                    self.health_address
                ),
            ));
        }
        if !self.client_content_type.is_empty()
            && crate::codec::Format::of(&self.client_content_type).is_none()
        {
            return Err(fail(
                "client_content_type",
                format!(
                    "unknown content type `{}`, expected `{}` or `{}`",
                    self.client_content_type,
                    crate::codec::JSON,
                    crate::codec::PROTOBUF
                ),
            ));
        }
        if !LOG_FORMATS.contains(&self.log_format.as_str()) {
            return Err(fail(
                "log_format",
                format!(
                    "unknown log format `{}`, expected `text` or `json`",
                    self.log_format
                ),
            ));
        }
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(fail(
                "log_level",
                format!(
                    "unknown log level `{}`, expected one of trace, debug, info, warn, error",
                    self.log_level
                ),
            ));
        }
        if !self.server_name.is_empty() && !valid_name(&self.server_name) {
            return Err(fail(
                "server_name",
                format!(
                    "`{}` may only hold letters, digits, `.`, `_` and `-`",
                    self.server_name
                ),
            ));
        }
        Ok(())
    }

    /// The socket address the server binds (`:8080` and `localhost:8080` mean loopback).
    pub fn bind_address(&self) -> SocketAddr {
        socket_address(&self.server_address)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The address `--health_address` names, when it names one.
    pub fn health_bind_address(&self) -> Option<SocketAddr> {
        socket_address(&self.health_address)
    }
}

/// `ip:port`, `localhost:port` or `:port` (both loopback).
fn socket_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.strip_prefix("localhost:")
        .or_else(|| text.strip_prefix(':'))
        .map(|p| format!("127.0.0.1:{p}"))
        .unwrap_or_else(|| text.to_owned())
        .parse()
        .ok()
}

/// The values of `--log_format`.
pub const LOG_FORMATS: &[&str] = &["text", "json"];

/// The values of `--log_level`.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// The log format and level a process asks for, read before its flags are parsed (logging
/// starts first): `--log_format`/`--log_level` among `args` (as `--flag=value` or
/// `--flag value`), else `MICRO_LOG_FORMAT`/`MICRO_LOG_LEVEL`, else text and info. Values
/// are checked later, with the other options.
pub fn log_settings(args: &[String], env: impl Fn(&str) -> Option<String>) -> (String, String) {
    let flag = |name: &str| {
        let long = format!("--{name}");
        let mut found = None;
        let mut it = args.iter().skip(1);
        while let Some(arg) = it.next() {
            if let Some(value) = arg.strip_prefix(&format!("{long}=")) {
                found = Some(value.to_owned());
            } else if *arg == long {
                found = it.next().cloned();
            }
        }
        found
            .or_else(|| env(&env_var(name)).filter(|v| !v.is_empty()))
            .map(|v| v.trim().to_ascii_lowercase())
    };
    (
        flag("log_format").unwrap_or_else(|| "text".to_owned()),
        flag("log_level").unwrap_or_else(|| "info".to_owned()),
    )
}

/// A name go-micro accepts: letters, digits, `.`, `_`, `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Why resolving failed.
#[derive(Debug)]
pub enum Resolve {
    /// Flag parsing failed, or `--help`/`--version` was asked for.
    Clap(clap::Error),
    /// A value is invalid.
    Invalid(ConfigError),
}

impl fmt::Display for Resolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolve::Clap(e) => e.fmt(f),
            Resolve::Invalid(e) => e.fmt(f),
        }
    }
}

fn code_gives(code: &Layer, flag: &str) -> bool {
    match flag {
        "registry" => code.registry.is_some(),
        "registry_address" => code.registry_address.is_some(),
        "register_ttl" => code.register_ttl.is_some(),
        "register_interval" => code.register_interval.is_some(),
        "broker" => code.broker.is_some(),
        "broker_address" => code.broker_address.is_some(),
        "server" => code.server.is_some(),
        "server_name" => code.server_name.is_some(),
        "server_version" => code.server_version.is_some(),
        "server_id" => code.server_id.is_some(),
        "server_address" => code.server_address.is_some(),
        "server_advertise" => code.server_advertise.is_some(),
        "server_metadata" => !code.server_metadata.is_empty(),
        "client_retries" => code.client_retries.is_some(),
        "client_request_timeout" => code.client_request_timeout.is_some(),
        "selector" => code.selector.is_some(),
        "client_content_type" => code.client_content_type.is_some(),
        "log_format" => code.log_format.is_some(),
        "log_level" => code.log_level.is_some(),
        "health_address" => code.health_address.is_some(),
        _ => false,
    }
}

fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn effective(opts: &Options, flag: &str) -> Option<String> {
    let text = match flag {
        "registry" => opts.registry.clone(),
        "registry_address" => opts.registry_address.clone(),
        "register_ttl" => show_duration(opts.register_ttl),
        "register_interval" => show_duration(opts.register_interval),
        "broker" => opts.broker.clone(),
        "broker_address" => opts.broker_address.clone(),
        "server" => opts.server.clone(),
        "server_name" => opts.server_name.clone(),
        "server_version" => opts.server_version.clone(),
        "server_id" => opts.server_id.clone(),
        "server_address" => opts.server_address.clone(),
        "server_advertise" => opts.server_advertise.clone(),
        "server_metadata" => opts
            .server_metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        "client_retries" => opts.client_retries.to_string(),
        "client_request_timeout" => show_duration(opts.client_request_timeout),
        "selector" => opts.selector.to_string(),
        "client_content_type" => opts.client_content_type.clone(),
        "log_format" => opts.log_format.clone(),
        "log_level" => opts.log_level.clone(),
        "health_address" => opts.health_address.clone(),
        _ => String::new(),
    };
    (!text.is_empty()).then_some(text)
}

/// The options a program that calls services takes, besides a service's own: registry,
/// broker, client and logs.
pub const CLIENT_FLAGS: &[&str] = &[
    "registry",
    "registry_address",
    "broker",
    "broker_address",
    "client_retries",
    "client_request_timeout",
    "selector",
    "client_content_type",
    "log_format",
    "log_level",
];

/// `cmd` with the [`CLIENT_FLAGS`] as global long options, their help naming their `MICRO_*`
/// variables and defaults as a service's `--help` does; read them back with
/// [`Options::from_matches`].
pub fn with_client_flags(mut cmd: Command) -> Command {
    let defaults = Options::default();
    for spec in SPECS.iter().filter(|s| CLIENT_FLAGS.contains(&s.flag)) {
        cmd = cmd.arg(flag_arg(spec, &defaults, &Layer::default()).global(true));
    }
    cmd
}

fn flag_arg(spec: &Spec, effective_default: &Options, code: &Layer) -> Arg {
    let mut help = format!("{} [env: {}]", spec.help, env_var(spec.flag));
    match effective(effective_default, spec.flag) {
        Some(value) if code_gives(code, spec.flag) => {
            help.push_str(&format!(" [default: {value}, set in code]"));
        }
        Some(value) => help.push_str(&format!(" [default: {value}]")),
        None => {}
    }
    let arg = Arg::new(spec.flag)
        .long(spec.flag)
        .value_name("VALUE")
        .help(help);
    if spec.flag == "server_metadata" {
        arg.action(ArgAction::Append)
    } else {
        arg.action(ArgAction::Set)
    }
}

/// The clap command: one long flag per option, help showing the effective default (framework
/// default overlaid by the code's values). The environment is read separately so that its
/// errors can name the variable.
fn command(effective_default: &Options, code: &Layer) -> Command {
    let name = effective_default.server_name.clone();
    let mut cmd = Command::new(if name.is_empty() {
        "rmicro".to_owned()
    } else {
        name
    })
    .about("An rmicro service. Every option may also be set by its MICRO_* environment variable; a flag wins over the variable, which wins over the code.")
    .disable_version_flag(true);
    for spec in SPECS {
        cmd = cmd.arg(flag_arg(spec, effective_default, code));
    }
    cmd
}

/// Reads the environment and the flags into the layer of given values.
fn given_layer(
    matches: &ArgMatches,
    env: &impl Fn(&str) -> Option<String>,
    origins: &mut Origins,
    read: impl Fn(&str) -> bool,
) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for spec in SPECS.iter().filter(|s| read(s.flag)) {
        let var = env_var(spec.flag);
        // The environment first, then the flag over it.
        let mut values: Vec<(String, String)> = Vec::new();
        if let Some(v) = env(&var).filter(|v| !v.is_empty()) {
            if spec.flag == "server_metadata" {
                values.extend(v.split(',').map(|p| (format!("`{var}`"), p.to_owned())));
            } else {
                values.push((format!("`{var}`"), v));
            }
        }
        if matches.value_source(spec.flag) == Some(ValueSource::CommandLine) {
            let flag_values = matches
                .get_many::<String>(spec.flag)
                .into_iter()
                .flatten()
                .map(|v| (format!("`--{}`", spec.flag), v.clone()));
            values.extend(flag_values);
        }
        for (source, value) in values {
            let bad = |message: String| ConfigError {
                source: source.clone(),
                message,
            };
            match spec.flag {
                "registry" => layer.registry = Some(value),
                "registry_address" => layer.registry_address = Some(value),
                "register_ttl" => layer.register_ttl = Some(parse_duration(&value).map_err(bad)?),
                "register_interval" => {
                    layer.register_interval = Some(parse_duration(&value).map_err(bad)?);
                }
                "broker" => layer.broker = Some(value),
                "broker_address" => layer.broker_address = Some(value),
                "server" => layer.server = Some(value),
                "server_name" => layer.server_name = Some(value),
                "server_version" => layer.server_version = Some(value),
                "server_id" => layer.server_id = Some(value),
                "server_address" => layer.server_address = Some(value),
                "server_advertise" => layer.server_advertise = Some(value),
                "server_metadata" => {
                    let (k, v) = parse_metadata_pair(&value).map_err(bad)?;
                    layer.server_metadata.insert(k, v);
                }
                "client_retries" => {
                    layer.client_retries =
                        Some(value.trim().parse().map_err(|_| {
                            bad(format!("`{value}` is not a whole number of retries"))
                        })?);
                }
                "client_request_timeout" => {
                    layer.client_request_timeout = Some(parse_duration(&value).map_err(bad)?);
                }
                "selector" => layer.selector = Some(Strategy::from_str(&value).map_err(bad)?),
                "client_content_type" => {
                    // The canonical name of a known format; unknown ones fail validation,
                    // which names this source.
                    let value = match crate::codec::Format::of(&value) {
                        Some(format) if !value.trim().is_empty() => {
                            format.content_type().to_owned()
                        }
                        _ => value,
                    };
                    layer.client_content_type = Some(value);
                }
                "log_format" => layer.log_format = Some(value.trim().to_ascii_lowercase()),
                "log_level" => layer.log_level = Some(value.trim().to_ascii_lowercase()),
                "health_address" => layer.health_address = Some(value.trim().to_owned()),
                _ => {}
            }
            origins.0.insert(spec.flag, source);
        }
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_settings_come_from_flags_then_the_environment() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let none = |_: &str| None;
        assert_eq!(
            log_settings(&args(&["svc"]), none),
            ("text".to_owned(), "info".to_owned())
        );
        let env = |k: &str| (k == "MICRO_LOG_FORMAT").then(|| "JSON".to_owned());
        assert_eq!(log_settings(&args(&["svc"]), env).0, "json");
        assert_eq!(
            log_settings(
                &args(&["svc", "--log_format=text", "--log_level", "debug"]),
                env
            ),
            ("text".to_owned(), "debug".to_owned())
        );
        let e = resolve(&Layer::default(), &[], &["--log_format=xml"]).expect_err("bad format");
        assert!(e.to_string().contains("unknown log format `xml`"), "{e}");
        let e = resolve(&Layer::default(), &[("MICRO_LOG_LEVEL", "loud")], &[]).expect_err("level");
        assert!(e.to_string().contains("`MICRO_LOG_LEVEL`"), "{e}");
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn resolve(code: &Layer, env: &[(&str, &str)], args: &[&str]) -> Result<Options, Resolve> {
        let mut argv = vec!["svc"];
        argv.extend_from_slice(args);
        Options::resolve(code, env_of(env), argv)
    }

    fn invalid(r: Result<Options, Resolve>) -> ConfigError {
        match r {
            Err(Resolve::Invalid(e)) => e,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_go_micro_s() {
        let o = resolve(&Layer::default(), &[], &[]).expect("defaults");
        assert_eq!(o.registry, "mdns");
        assert_eq!(o.broker, "http");
        assert_eq!(o.register_ttl, Duration::from_secs(90));
        assert_eq!(o.register_interval, Duration::from_secs(30));
        assert_eq!(o.client_retries, 5);
        assert_eq!(o.client_request_timeout, Duration::from_secs(30));
        assert_eq!(o.server_address, "127.0.0.1:0");
    }

    #[test]
    fn precedence_default_code_env_flag() {
        let code = Layer {
            register_ttl: Some(Duration::from_secs(10)),
            register_interval: Some(Duration::from_secs(5)),
            registry: Some("memory".into()),
            ..Layer::default()
        };
        // code beats default
        let o = resolve(&code, &[], &[]).expect("code");
        assert_eq!(
            (o.registry.as_str(), o.register_ttl.as_secs()),
            ("memory", 10)
        );
        // env beats code, only where given
        let o = resolve(&code, &[("MICRO_REGISTER_TTL", "20")], &[]).expect("env");
        assert_eq!(o.register_ttl, Duration::from_secs(20));
        assert_eq!(o.register_interval, Duration::from_secs(5));
        assert_eq!(o.registry, "memory");
        // flag beats env, both `=` and space forms
        let o = resolve(
            &code,
            &[("MICRO_REGISTER_TTL", "20")],
            &["--register_ttl=30", "--registry", "mdns"],
        )
        .expect("flag");
        assert_eq!(o.register_ttl, Duration::from_secs(30));
        assert_eq!(o.registry, "mdns");
    }

    #[test]
    fn health_address_is_an_ip_and_port() {
        let o = resolve(&Layer::default(), &[], &[]).expect("default");
        assert_eq!(o.health_bind_address(), None, "beside mucp unless set");
        let o = resolve(&Layer::default(), &[("MICRO_HEALTH_ADDRESS", ":9090")], &[]).expect("env");
        assert_eq!(o.health_bind_address(), Some(([127, 0, 0, 1], 9090).into()));
        let o = resolve(
            &Layer::default(),
            &[],
            &["--health_address", "0.0.0.0:9091"],
        )
        .expect("flag");
        assert_eq!(o.health_bind_address(), Some(([0, 0, 0, 0], 9091).into()));
        let e = invalid(resolve(
            &Layer::default(),
            &[("MICRO_HEALTH_ADDRESS", "probes:9090")],
            &[],
        ));
        assert_eq!(e.source, "`MICRO_HEALTH_ADDRESS`");
        assert!(
            e.message.contains("`probes:9090` is not an IP address"),
            "{e}"
        );
    }

    #[test]
    fn metadata_merges_key_by_key() {
        let mut code = Layer::default();
        code.server_metadata.insert("a".into(), "code".into());
        code.server_metadata.insert("b".into(), "code".into());
        let o = resolve(
            &code,
            &[("MICRO_SERVER_METADATA", "b=env,c=env")],
            &["--server_metadata", "c=flag", "--server_metadata=d=x=y"],
        )
        .expect("metadata");
        let got: Vec<_> = o
            .server_metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(got, ["a=code", "b=env", "c=flag", "d=x=y"]);
    }

    #[test]
    fn errors_name_their_source() {
        let e = invalid(resolve(&Layer::default(), &[], &["--register_ttl=abc"]));
        assert_eq!(e.source, "`--register_ttl`");
        assert!(e.message.contains("`abc`"), "{e}");

        let e = invalid(resolve(
            &Layer::default(),
            &[("MICRO_REGISTRY", "consol")],
            &[],
        ));
        assert_eq!(e.source, "`MICRO_REGISTRY`");
        assert!(e.message.contains("unknown registry `consol`"), "{e}");

        let code = Layer {
            register_ttl: Some(Duration::from_secs(10)),
            ..Layer::default()
        };
        // the default interval (30 s) is not shorter than the code's TTL: blame the interval
        let e = invalid(resolve(&code, &[], &[]));
        assert!(e.source.contains("register_interval"), "{e}");
        let e = invalid(resolve(&code, &[], &["--register_interval=10s"]));
        assert_eq!(e.source, "`--register_interval`");

        let e = invalid(resolve(
            &Layer::default(),
            &[],
            &["--server_address=nowhere"],
        ));
        assert_eq!(e.source, "`--server_address`");
        let e = invalid(resolve(&Layer::default(), &[], &["--selector=fastest"]));
        assert!(e.message.contains("roundrobin"), "{e}");
        let e = invalid(resolve(
            &Layer::default(),
            &[],
            &["--server_metadata=novalue"],
        ));
        assert!(e.message.contains("key=value"), "{e}");
    }

    #[test]
    fn feature_gated_plugins_say_which_feature() {
        if feature_enabled("consul") {
            return;
        }
        let e = invalid(resolve(&Layer::default(), &[], &["--registry=consul"]));
        assert!(e.message.contains("enable the `consul` feature"), "{e}");
    }

    #[test]
    fn unknown_flags_and_help_are_clap_s() {
        match resolve(&Layer::default(), &[], &["--registy=consul"]) {
            Err(Resolve::Clap(e)) => {
                assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
            }
            other => panic!("expected unknown argument, got {other:?}"),
        }
        let code = Layer {
            register_ttl: Some(Duration::from_secs(10)),
            register_interval: Some(Duration::from_secs(5)),
            ..Layer::default()
        };
        let help = match resolve(&code, &[], &["--help"]) {
            Err(Resolve::Clap(e)) => e.to_string(),
            other => panic!("expected help, got {other:?}"),
        };
        assert!(help.contains("--register_ttl"), "{help}");
        assert!(help.contains("[default: 10s, set in code]"), "{help}");
        assert!(help.contains("[env: MICRO_REGISTRY]"), "{help}");
        assert!(help.contains("[default: mdns]"), "{help}");
    }

    #[test]
    fn client_content_type_is_json_or_protobuf() {
        let o = resolve(&Layer::default(), &[], &[]).expect("default");
        assert_eq!(o.client_content_type, "");
        let o = resolve(
            &Layer::default(),
            &[("MICRO_CLIENT_CONTENT_TYPE", "application/json")],
            &[],
        )
        .expect("env");
        assert_eq!(o.client_content_type, "application/json");
        let o = resolve(
            &Layer::default(),
            &[("MICRO_CLIENT_CONTENT_TYPE", "application/json")],
            &["--client_content_type=Application/Protobuf"],
        )
        .expect("flag");
        assert_eq!(o.client_content_type, "application/protobuf");
        let e = invalid(resolve(
            &Layer::default(),
            &[("MICRO_CLIENT_CONTENT_TYPE", "text/xml")],
            &[],
        ));
        assert_eq!(e.source, "`MICRO_CLIENT_CONTENT_TYPE`");
        assert!(e.message.contains("`text/xml`"), "{e}");
        assert!(e.message.contains("`application/protobuf`"), "{e}");
    }

    #[test]
    fn durations_take_seconds_or_go_syntax() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(
            parse_duration("10x")
                .expect_err("unit")
                .contains("unknown unit `x`")
        );
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }
}
