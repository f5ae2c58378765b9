//! The rules across `#[service]`'s values, checked on what the attribute gives; the runtime
//! checks the same rules again once environment and flags are merged in.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use proc_macro2::Span;
use syn::Item;

use super::args::{Arg, Args};
use crate::diag::{self, Errors};
use crate::naming;

/// Registries rmicro knows, and the cargo feature each needs (`None` = always built).
/// Mirrors `rmicro::config::REGISTRIES`.
pub(crate) const REGISTRIES: &[(&str, Option<&str>)] = &[
    ("mdns", None),
    ("memory", None),
    ("consul", Some("consul")),
    ("etcd", Some("etcd")),
    ("nats", Some("nats")),
    ("zookeeper", Some("zookeeper")),
    ("dns", Some("dns")),
];

/// Brokers rmicro knows, and the cargo feature each needs (`None` = always built).
/// Mirrors `rmicro::config::BROKERS`.
pub(crate) const BROKERS: &[(&str, Option<&str>)] = &[
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

/// go-micro's `register_ttl` default, which the runtime uses when the attribute gives none.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(90);
/// go-micro's `register_interval` default.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// What `#[service]` configures, checked and free of spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) registry: Option<String>,
    pub(crate) registry_address: Option<String>,
    pub(crate) broker: Option<String>,
    pub(crate) broker_address: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) advertise: Option<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) interval: Option<Duration>,
    pub(crate) metadata: Vec<(String, String)>,
    /// Builder calls adding layers: `layer`, `call_layer`, ... and their expressions.
    pub(crate) layers: Vec<(syn::Ident, syn::Expr)>,
}

/// Whether the cargo feature a plugin needs is on. `rmicro`'s plugin features switch on the
/// feature of the same name here, so this is what the user's `rmicro` dependency enables.
fn plugin_built(feature: &str) -> bool {
    const BUILT: &[(&str, bool)] = &[
        ("consul", cfg!(feature = "consul")),
        ("dns", cfg!(feature = "dns")),
        ("etcd", cfg!(feature = "etcd")),
        ("googlepubsub", cfg!(feature = "googlepubsub")),
        ("kafka", cfg!(feature = "kafka")),
        ("mqtt", cfg!(feature = "mqtt")),
        ("nats", cfg!(feature = "nats")),
        ("nsq", cfg!(feature = "nsq")),
        ("rabbitmq", cfg!(feature = "rabbitmq")),
        ("redis", cfg!(feature = "redis")),
        ("zookeeper", cfg!(feature = "zookeeper")),
    ];
    BUILT.iter().any(|&(name, built)| name == feature && built)
}

/// `#[service]` goes on a struct without generic parameters.
pub(crate) fn target(item: &Item, errors: &mut Errors) {
    if let Item::Struct(s) = item {
        if !s.generics.params.is_empty() || s.generics.where_clause.is_some() {
            errors.spanned(
                &s.generics,
                "`#[service]` does not support generic structs: a service is one concrete type",
            );
        }
        return;
    }
    let hint = match item {
        Item::Impl(_) => "; put `#[service]` on the struct and `#[handlers]` on this impl block",
        Item::Fn(_) => "; for a function that handles messages, use `#[subscribe(\"topic\")]`",
        _ => "",
    };
    let (what, head) = diag::item_kind(item);
    errors.spanned(
        head,
        format!("`#[service]` goes on a struct, not {what}{hint}"),
    );
}

/// Checks `args`, recording every broken rule; `Some` when none is broken.
pub(crate) fn validate(args: &Args, errors: &mut Errors) -> Option<Config> {
    validate_with(args, plugin_built, errors)
}

/// [`validate`] with the set of built plugin features given, for tests.
pub(crate) fn validate_with(
    args: &Args,
    built: impl Fn(&str) -> bool,
    errors: &mut Errors,
) -> Option<Config> {
    let mentioned = args.given.contains("name") || args.misspelled.contains("name");
    let name = check_name(args.name.as_ref(), mentioned, errors);
    if let Some(version) = &args.version
        && version.value.trim().is_empty()
    {
        errors.spanned(&version.lit, "`version` cannot be empty");
    }
    check_plugin(
        "registry",
        args.registry.as_ref(),
        REGISTRIES,
        &built,
        errors,
    );
    check_plugin("broker", args.broker.as_ref(), BROKERS, &built, errors);
    for arg in [&args.registry_address, &args.broker_address]
        .into_iter()
        .flatten()
    {
        check_plugin_address(arg, errors);
    }
    for (arg, bind) in [(&args.address, true), (&args.advertise, false)] {
        if let Some(arg) = arg
            && let Err(why) = check_host_port(&arg.value, bind)
        {
            errors.spanned(&arg.lit, format!("invalid address `{}`: {why}", arg.value));
        }
    }
    check_heartbeat(args.ttl.as_ref(), args.interval.as_ref(), errors);

    if !errors.is_empty() {
        return None;
    }
    let value = |arg: &Option<Arg<String>>| arg.as_ref().map(|a| a.value.clone());
    Some(Config {
        name: name?,
        version: value(&args.version),
        registry: value(&args.registry),
        registry_address: value(&args.registry_address),
        broker: value(&args.broker),
        broker_address: value(&args.broker_address),
        address: value(&args.address),
        advertise: value(&args.advertise),
        ttl: args.ttl.as_ref().map(|a| a.value),
        interval: args.interval.as_ref().map(|a| a.value),
        metadata: args
            .metadata
            .iter()
            .map(|e| (e.key.clone(), e.value.value()))
            .collect(),
        layers: args.layers.clone(),
    })
}

/// Checks the name; `mentioned` = a `name` key was written, maybe misspelled or with a bad
/// value, which is reported already.
fn check_name(name: Option<&Arg<String>>, mentioned: bool, errors: &mut Errors) -> Option<String> {
    let Some(name) = name else {
        if mentioned {
            return None;
        }
        errors.at(
            Span::call_site(),
            "missing `name`: a service needs one, e.g. `#[service(name = \"student_service\")]`",
        );
        return None;
    };
    let text = &name.value;
    if text.is_empty() {
        errors.spanned(&name.lit, "service `name` cannot be empty");
        return None;
    }
    if let Some(bad) = naming::invalid_name_char(text) {
        let mut message = format!(
            "invalid service name `{text}`: {} is not allowed; use letters, digits, `.`, `_` and `-`",
            naming::show_char(bad)
        );
        if text.is_ascii() {
            let fixed: String = text
                .chars()
                .map(|c| {
                    if naming::invalid_name_char(&c.to_string()).is_some() {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            let _ = write!(message, " (did you mean `{fixed}`?)");
        }
        errors.spanned(&name.lit, message);
        return None;
    }
    Some(text.clone())
}

fn check_plugin(
    kind: &str,
    arg: Option<&Arg<String>>,
    known: &[(&str, Option<&str>)],
    built: impl Fn(&str) -> bool,
    errors: &mut Errors,
) {
    let Some(arg) = arg else { return };
    let names: Vec<&str> = known.iter().map(|(name, _)| *name).collect();
    match known.iter().find(|(name, _)| *name == arg.value) {
        None if arg.value.is_empty() => errors.spanned(
            &arg.lit,
            format!(
                "`{kind}` cannot be empty, expected one of {}",
                diag::OneOf(&names)
            ),
        ),
        None => errors.spanned(&arg.lit, diag::unknown(kind, &arg.value, &names)),
        Some((name, Some(feature))) if !built(feature) => errors.spanned(
            &arg.lit,
            format!(
                "{kind} `{name}` needs the `{feature}` feature of `rmicro`: \
                 add `features = [\"{feature}\"]` to the `rmicro` dependency"
            ),
        ),
        Some(_) => {}
    }
}

/// A plugin address is plugin-specific (`host:port`, a comma-separated list of them, or a URL
/// such as `nats://127.0.0.1:4222`), so only its shape is checked.
fn check_plugin_address(arg: &Arg<String>, errors: &mut Errors) {
    let key = arg.key.to_string();
    let text = &arg.value;
    if text.trim().is_empty() {
        errors.spanned(
            &arg.lit,
            format!("`{key}` cannot be empty; leave it out for the plugin's default address"),
        );
    } else if text.contains(char::is_whitespace) {
        errors.spanned(
            &arg.lit,
            format!(
                "invalid address `{text}`: addresses cannot contain whitespace; \
                 separate several with `,`"
            ),
        );
    } else if text.split(',').any(str::is_empty) {
        errors.spanned(
            &arg.lit,
            format!("invalid address list `{text}`: an entry is empty"),
        );
    }
}

/// Checks `host:port`, where the host may be empty (`:8080`) or a bracketed IPv6 address
/// (`[::1]:8080`) and the port is 0 to 65535. The address the server binds (`bind`) needs an
/// IP address or `localhost` as its host; an advertised one may be any host name.
pub(crate) fn check_host_port(text: &str, bind: bool) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected `host:port`, e.g. `127.0.0.1:8080` or `:8080`".to_owned());
    };
    if port.is_empty() {
        return Err("missing port after `:`".to_owned());
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("the port `{port}` is not a number from 0 to 65535"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err("unbalanced `[` around the host".to_owned());
        };
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("`{inner}` is not an IPv6 address")),
        };
    }
    if host.contains(':') {
        return Err(format!("write an IPv6 host in brackets: `[{host}]:{port}`"));
    }
    if host.is_empty() || host == "localhost" {
        return Ok(());
    }
    if bind {
        return match host.parse::<IpAddr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "the server binds an IP address such as `0.0.0.0:{port}`, not a host name; \
                 host names go in `advertise`"
            )),
        };
    }
    match host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        Some(bad) => Err(format!(
            "{} is not allowed in a host name",
            naming::show_char(bad)
        )),
        None => Ok(()),
    }
}

fn check_heartbeat(
    ttl: Option<&Arg<Duration>>,
    interval: Option<&Arg<Duration>>,
    errors: &mut Errors,
) {
    let mut zero = false;
    for arg in [ttl, interval].into_iter().flatten() {
        if arg.value.is_zero() {
            errors.spanned(&arg.lit, format!("`{}` must be greater than zero", arg.key));
            zero = true;
        }
    }
    if zero {
        return;
    }
    match (ttl, interval) {
        (Some(ttl), Some(interval)) if interval.value >= ttl.value => errors.spanned(
            interval.pair(),
            format!(
                "`interval` ({}) must be shorter than `ttl` ({}), \
                 or the registration expires between heartbeats",
                show(interval.value),
                show(ttl.value),
            ),
        ),
        (Some(ttl), None) if DEFAULT_INTERVAL >= ttl.value => errors.spanned(
            ttl.pair(),
            format!(
                "`ttl` ({}) must be longer than the default `interval` ({}); \
                 add a shorter one, e.g. `interval = {}`",
                show(ttl.value),
                show(DEFAULT_INTERVAL),
                literal(ttl.value / 2, &ttl.lit),
            ),
        ),
        (None, Some(interval)) if interval.value >= DEFAULT_TTL => errors.spanned(
            interval.pair(),
            format!(
                "`interval` ({}) must be shorter than the default `ttl` ({}); \
                 add a longer one, e.g. `ttl = {}`",
                show(interval.value),
                show(DEFAULT_TTL),
                literal(interval.value * 3, &interval.lit),
            ),
        ),
        _ => {}
    }
}

/// A duration as Go prints it, compactly: `10s`, `1m30s`, `1h`, `500ms`, `1.5s`.
pub(crate) fn show(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if secs == 0 {
        return match nanos {
            0 => "0s".to_owned(),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let mut out = String::new();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 || nanos > 0 {
        let _ = write!(out, "{s}");
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            let _ = write!(out, ".{}", fraction.trim_end_matches('0'));
        }
        out.push('s');
    }
    out
}

/// How a suggested duration is written in the attribute: like the user's own `like` (an
/// integer of seconds or a string), as a string when it is not a whole number of seconds.
fn literal(d: Duration, like: &syn::Lit) -> String {
    if d.subsec_nanos() == 0 && matches!(like, syn::Lit::Int(_)) {
        d.as_secs().to_string()
    } else {
        format!("\"{}\"", show(d))
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;

    fn check_with(attr: TokenStream, built: &[&str]) -> Result<Config, Vec<String>> {
        let mut errors = Errors::new();
        let args = Args::parse(attr, &mut errors).expect("valid syntax");
        let config = validate_with(&args, |f| built.contains(&f), &mut errors);
        match errors.finish() {
            Ok(()) => Ok(config.expect("a config when there are no errors")),
            Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    fn check(attr: TokenStream) -> Result<Config, Vec<String>> {
        check_with(attr, &[])
    }

    #[test]
    fn a_full_configuration() {
        let config = check_with(
            quote!(
                name = "student_service",
                version = "v1.0.0",
                registry = "consul",
                broker = "nats",
                broker_address = "nats://127.0.0.1:4222",
                address = "127.0.0.1:0",
                advertise = "student.local:8080",
                ttl = 10,
                interval = "5s",
                metadata(region = "eu"),
            ),
            &["consul", "nats"],
        )
        .expect("valid");
        assert_eq!(
            config,
            Config {
                name: "student_service".to_owned(),
                version: Some("v1.0.0".to_owned()),
                registry: Some("consul".to_owned()),
                registry_address: None,
                broker: Some("nats".to_owned()),
                broker_address: Some("nats://127.0.0.1:4222".to_owned()),
                address: Some("127.0.0.1:0".to_owned()),
                advertise: Some("student.local:8080".to_owned()),
                ttl: Some(Duration::from_secs(10)),
                interval: Some(Duration::from_secs(5)),
                metadata: vec![("region".to_owned(), "eu".to_owned())],
                layers: Vec::new(),
            }
        );
    }

    #[test]
    fn name_is_required_and_go_micro_valid() {
        assert_eq!(
            check(quote!(name = student_service)).expect_err("errors"),
            ["expected a string literal, e.g. `name = \"student_service\"`"]
        );
        assert_eq!(check(quote!(nmae = "s")).expect_err("errors").len(), 1);
        assert_eq!(
            check(quote!(version = "v1")).expect_err("errors"),
            ["missing `name`: a service needs one, e.g. `#[service(name = \"student_service\")]`"]
        );
        assert_eq!(
            check(quote!(name = "")).expect_err("errors"),
            ["service `name` cannot be empty"]
        );
        assert_eq!(
            check(quote!(name = "student service")).expect_err("errors"),
            [
                "invalid service name `student service`: a space is not allowed; use letters, \
              digits, `.`, `_` and `-` (did you mean `student_service`?)"
            ]
        );
        assert_eq!(
            check(quote!(name = "étudiant")).expect_err("errors"),
            [
                "invalid service name `étudiant`: `é` is not allowed; use letters, digits, `.`, \
              `_` and `-`"
            ]
        );
        assert!(check(quote!(name = "go.micro.srv-student_v2")).is_ok());
    }

    #[test]
    fn plugins_are_known_and_built() {
        assert_eq!(
            check(quote!(name = "s", registry = "consol", broker = "kestrel")).expect_err("errors"),
            [
                "unknown registry `consol`, expected one of `mdns`, `memory`, `consul`, `etcd`, \
                 `nats`, `zookeeper`, `dns` (did you mean `consul`?)",
                "unknown broker `kestrel`, expected one of `http`, `memory`, `mqtt`, `nats`, \
                 `rabbitmq`, `redis`, `nsq`, `kafka`, `googlepubsub`",
            ]
        );
        assert_eq!(
            check(quote!(name = "s", registry = "consul", broker = "redis")).expect_err("errors"),
            [
                "registry `consul` needs the `consul` feature of `rmicro`: add \
                 `features = [\"consul\"]` to the `rmicro` dependency",
                "broker `redis` needs the `redis` feature of `rmicro`: add \
                 `features = [\"redis\"]` to the `rmicro` dependency",
            ]
        );
        assert!(check_with(quote!(name = "s", registry = "consul"), &["consul"]).is_ok());
        assert!(check(quote!(name = "s", registry = "mdns", broker = "memory")).is_ok());
        assert_eq!(
            check(quote!(name = "s", broker = "")).expect_err("errors"),
            [
                "`broker` cannot be empty, expected one of `http`, `memory`, `mqtt`, `nats`, \
              `rabbitmq`, `redis`, `nsq`, `kafka`, `googlepubsub`"
            ]
        );
    }

    #[test]
    fn heartbeat_pairs_follow_the_effective_values() {
        let ok = |attr| check(attr).map(|c| (c.ttl, c.interval));
        assert!(ok(quote!(name = "s", ttl = 10, interval = 5)).is_ok());
        assert!(ok(quote!(name = "s", ttl = 31)).is_ok());
        assert!(ok(quote!(name = "s", interval = 89)).is_ok());
        assert_eq!(
            check(quote!(name = "s", ttl = 10, interval = 10)).expect_err("errors"),
            [
                "`interval` (10s) must be shorter than `ttl` (10s), or the registration expires \
              between heartbeats"
            ]
        );
        assert_eq!(
            check(quote!(name = "s", ttl = 30)).expect_err("errors"),
            [
                "`ttl` (30s) must be longer than the default `interval` (30s); add a shorter one, \
              e.g. `interval = 15`"
            ]
        );
        assert_eq!(
            check(quote!(name = "s", ttl = "30s")).expect_err("errors"),
            [
                "`ttl` (30s) must be longer than the default `interval` (30s); add a shorter one, \
              e.g. `interval = \"15s\"`"
            ]
        );
        assert_eq!(
            check(quote!(name = "s", interval = "1m30s")).expect_err("errors"),
            [
                "`interval` (1m30s) must be shorter than the default `ttl` (1m30s); add a longer \
              one, e.g. `ttl = \"4m30s\"`"
            ]
        );
        assert_eq!(
            check(quote!(name = "s", ttl = 0, interval = "0s")).expect_err("errors"),
            [
                "`ttl` must be greater than zero",
                "`interval` must be greater than zero"
            ]
        );
        assert_eq!(
            check(quote!(name = "s", ttl = 1)).expect_err("errors")[0],
            "`ttl` (1s) must be longer than the default `interval` (30s); add a shorter one, \
             e.g. `interval = \"500ms\"`"
        );
    }

    #[test]
    fn addresses() {
        let bind = |text| check_host_port(text, true);
        let advertise = |text| check_host_port(text, false);
        for ok in [
            "127.0.0.1:0",
            ":8080",
            "localhost:80",
            "[::1]:65535",
            "0.0.0.0:1",
        ] {
            assert_eq!(bind(ok), Ok(()), "{ok}");
        }
        assert_eq!(advertise("student.example:8080"), Ok(()));
        assert_eq!(
            bind("127.0.0.1"),
            Err("expected `host:port`, e.g. `127.0.0.1:8080` or `:8080`".to_owned())
        );
        assert_eq!(
            bind("127.0.0.1:65536"),
            Err("the port `65536` is not a number from 0 to 65535".to_owned())
        );
        assert_eq!(bind("127.0.0.1:"), Err("missing port after `:`".to_owned()));
        assert_eq!(
            bind("::1:80"),
            Err("write an IPv6 host in brackets: `[::1]:80`".to_owned())
        );
        assert_eq!(
            bind("[::g]:80"),
            Err("`::g` is not an IPv6 address".to_owned())
        );
        assert_eq!(
            bind("[::1:80"),
            Err("unbalanced `[` around the host".to_owned())
        );
        assert_eq!(
            bind("example.com:80"),
            Err(
                "the server binds an IP address such as `0.0.0.0:80`, not a host name; host \
                 names go in `advertise`"
                    .to_owned()
            )
        );
        assert_eq!(
            advertise("exa mple:80"),
            Err("a space is not allowed in a host name".to_owned())
        );
    }

    #[test]
    fn every_error_of_an_attribute_is_reported() {
        let errors = check(quote!(
            name = "a b",
            registry = "consol",
            address = "nowhere",
            ttl = 5,
            registry_address = "",
            broker_address = "a:1, b:2",
            advertise = ":x",
        ))
        .expect_err("errors");
        assert_eq!(errors.len(), 7, "{errors:#?}");
    }

    #[test]
    fn durations_are_shown_as_go_does() {
        assert_eq!(show(Duration::from_secs(90)), "1m30s");
        assert_eq!(show(Duration::from_secs(3600)), "1h");
        assert_eq!(show(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
        assert_eq!(show(Duration::from_millis(500)), "500ms");
        assert_eq!(show(Duration::from_micros(5)), "5us");
        assert_eq!(show(Duration::from_nanos(5)), "5ns");
        assert_eq!(show(Duration::ZERO), "0s");
    }
}
