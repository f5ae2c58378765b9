//! Parses `#[service(..)]`'s arguments into values that keep their spans.
//!
//! This phase checks what each value is on its own (a string, a duration); the rules across
//! values (a known registry, `interval < ttl`, ...) are `validate`'s.

use std::collections::BTreeSet;
use std::time::Duration;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitStr, Meta, Token};

use crate::diag::{self, Errors};
pub(crate) use crate::value::Arg;
use crate::value::{duration_arg, literal};

/// Every key `#[service]` takes.
pub(crate) const KEYS: &[&str] = &[
    "name",
    "version",
    "registry",
    "registry_address",
    "broker",
    "broker_address",
    "address",
    "advertise",
    "ttl",
    "interval",
    "metadata",
    "layer",
    "call_layer",
    "subscriber_layer",
    "publisher_layer",
];

/// The keys that name a middleware layer: each may be given more than once (one layer each,
/// the first the outermost), and takes any expression.
pub(crate) const LAYER_KEYS: &[&str] =
    &["layer", "call_layer", "subscriber_layer", "publisher_layer"];

/// One `key = "value"` of `metadata(..)`.
pub(crate) struct MetadataEntry {
    pub(crate) key: String,
    pub(crate) value: LitStr,
}

/// The arguments of `#[service(..)]`, as written.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Arg<String>>,
    pub(crate) version: Option<Arg<String>>,
    pub(crate) registry: Option<Arg<String>>,
    pub(crate) registry_address: Option<Arg<String>>,
    pub(crate) broker: Option<Arg<String>>,
    pub(crate) broker_address: Option<Arg<String>>,
    pub(crate) address: Option<Arg<String>>,
    pub(crate) advertise: Option<Arg<String>>,
    pub(crate) ttl: Option<Arg<Duration>>,
    pub(crate) interval: Option<Arg<Duration>>,
    pub(crate) metadata: Vec<MetadataEntry>,
    /// `layer = <expr>` and the other layer keys, in the order written: the builder method
    /// (the key) and the expression.
    pub(crate) layers: Vec<(Ident, Expr)>,
    /// Every known key written, even with a value that could not be read: a `name` with a
    /// bad value is not also a missing `name`.
    pub(crate) given: BTreeSet<String>,
    /// Known keys that an unknown key looks like a misspelling of (`nmae`): reported with a
    /// suggestion, and so not also as missing.
    pub(crate) misspelled: BTreeSet<String>,
}

impl Args {
    /// Parses the attribute's tokens. A syntax error is returned (nothing can be read past
    /// it); every other problem is recorded in `errors` and parsing goes on.
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
        let mut args = Self::default();
        for meta in metas {
            args.add(meta, errors);
        }
        Ok(args)
    }

    fn add(&mut self, meta: Meta, errors: &mut Errors) {
        let Some(key) = meta.path().get_ident().cloned() else {
            errors.spanned(
                meta.path(),
                format!("expected a key, expected one of {}", diag::OneOf(KEYS)),
            );
            return;
        };
        let name = key.to_string();
        if !KEYS.contains(&name.as_str()) {
            if let Some(meant) = diag::did_you_mean(&name, KEYS.iter().copied()) {
                self.misspelled.insert(meant.to_owned());
            }
            errors.spanned(&key, diag::unknown("key", &name, KEYS));
            return;
        }
        if LAYER_KEYS.contains(&name.as_str()) {
            self.given.insert(name.clone());
            match meta {
                Meta::NameValue(pair) => self.layers.push((key, pair.value)),
                _ => errors.spanned(
                    &key,
                    format!(
                        "`{name}` needs a layer, e.g. `{name} = tower::timeout::TimeoutLayer::new(Duration::from_secs(5))`"
                    ),
                ),
            }
            return;
        }
        if !self.given.insert(name.clone()) {
            errors.spanned(&key, format!("duplicate key `{name}`"));
            return;
        }
        if name == "metadata" {
            self.metadata = parse_metadata(&meta, errors);
            return;
        }
        let value = match meta {
            Meta::NameValue(pair) => pair.value,
            Meta::Path(_) => {
                errors.spanned(
                    &key,
                    format!("`{name}` needs a value, e.g. `{name} = {}`", example(&name)),
                );
                return;
            }
            Meta::List(list) => {
                errors.spanned(
                    &list,
                    format!(
                        "`{name}` takes a value, not a list: `{name} = {}`",
                        example(&name)
                    ),
                );
                return;
            }
        };
        match name.as_str() {
            "ttl" => self.ttl = duration_arg(key, value, errors),
            "interval" => self.interval = duration_arg(key, value, errors),
            _ => {
                let arg = string_arg(key, value, errors);
                *self.string_slot(&name) = arg;
            }
        }
    }

    fn string_slot(&mut self, name: &str) -> &mut Option<Arg<String>> {
        match name {
            "version" => &mut self.version,
            "registry" => &mut self.registry,
            "registry_address" => &mut self.registry_address,
            "broker" => &mut self.broker,
            "broker_address" => &mut self.broker_address,
            "address" => &mut self.address,
            "advertise" => &mut self.advertise,
            _ => &mut self.name,
        }
    }
}

/// A value for `key` as it would appear in a message.
fn example(key: &str) -> &'static str {
    match key {
        "name" => "\"student_service\"",
        "version" => "\"v1.0.0\"",
        "registry" => "\"consul\"",
        "registry_address" => "\"127.0.0.1:8500\"",
        "broker" => "\"nats\"",
        "broker_address" => "\"127.0.0.1:4222\"",
        "address" => "\"127.0.0.1:8080\"",
        "advertise" => "\"10.0.0.1:8080\"",
        "ttl" => "\"90s\"",
        "interval" => "\"30s\"",
        _ => "\"..\"",
    }
}

fn string_arg(key: Ident, value: Expr, errors: &mut Errors) -> Option<Arg<String>> {
    match literal(&value) {
        Some(Lit::Str(s)) => Some(Arg {
            value: s.value(),
            lit: Lit::Str(s.clone()),
            key,
        }),
        found => {
            let name = key.to_string();
            // Quote what was written when it reads as a value (`name = student_service`,
            // `version = 1`); constants and other expressions cannot be read by a macro.
            let written = match (found, &value) {
                (Some(lit), _) => Some(lit.to_token_stream().to_string()),
                (None, Expr::Path(path)) => path.path.get_ident().map(Ident::to_string),
                _ => None,
            };
            let hint = match written {
                // `name = NAME`: a constant, which a macro cannot read.
                Some(written) if written.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                    format!(
                        ": a macro cannot read the value of `{written}`; write it out, \
                         e.g. `{name} = {}`",
                        example(&name)
                    )
                }
                Some(written) => format!(", e.g. `{name} = \"{written}\"`"),
                None => format!(", e.g. `{name} = {}`", example(&name)),
            };
            errors.spanned(&value, format!("expected a string literal{hint}"));
            None
        }
    }
}

/// A metadata key: an identifier (`region`) or a string (`"app.kubernetes.io/name"`).
enum MetadataKey {
    Ident(Ident),
    Str(LitStr),
}

struct RawEntry {
    key: MetadataKey,
    value: Expr,
}

impl Parse for RawEntry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = if input.peek(LitStr) {
            MetadataKey::Str(input.parse()?)
        } else {
            MetadataKey::Ident(input.call(Ident::parse_any)?)
        };
        input.parse::<Token![=]>()?;
        Ok(Self {
            key,
            value: input.parse()?,
        })
    }
}

fn parse_metadata(meta: &Meta, errors: &mut Errors) -> Vec<MetadataEntry> {
    let list = match meta {
        Meta::List(list) => list,
        other => {
            errors.spanned(
                other,
                "`metadata` takes a list of pairs: `metadata(key = \"value\", ..)`",
            );
            return Vec::new();
        }
    };
    let raw = match list.parse_args_with(Punctuated::<RawEntry, Token![,]>::parse_terminated) {
        Ok(raw) => raw,
        Err(error) => {
            errors.push(error);
            return Vec::new();
        }
    };
    let mut entries: Vec<MetadataEntry> = Vec::new();
    for entry in raw {
        let (key, key_span) = match &entry.key {
            MetadataKey::Ident(ident) => (ident.unraw().to_string(), ident.span()),
            MetadataKey::Str(s) => (s.value(), s.span()),
        };
        let value = match literal(&entry.value) {
            Some(Lit::Str(s)) => s.clone(),
            Some(lit) => {
                errors.spanned(
                    &entry.value,
                    format!(
                        "metadata values are strings: `{key} = \"{}\"`",
                        lit.to_token_stream()
                    ),
                );
                continue;
            }
            None => {
                errors.spanned(
                    &entry.value,
                    format!("expected a string literal, e.g. `{key} = \"value\"`"),
                );
                continue;
            }
        };
        if key.is_empty() {
            errors.at(key_span, "metadata keys cannot be empty");
            continue;
        }
        if entries.iter().any(|e| e.key == key) {
            errors.at(key_span, format!("duplicate metadata key `{key}`"));
            continue;
        }
        entries.push(MetadataEntry { key, value });
    }
    entries
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse(attr: TokenStream) -> (Args, Vec<String>) {
        let mut errors = Errors::new();
        let args = Args::parse(attr, &mut errors).expect("valid syntax");
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (args, messages)
    }

    #[test]
    fn reads_every_key() {
        let (args, errors) = parse(quote! {
            name = "student_service", version = "v1.0.0",
            registry = "consul", registry_address = "127.0.0.1:8500",
            broker = "nats", broker_address = "127.0.0.1:4222",
            address = "127.0.0.1:0", advertise = "10.0.0.1:8080",
            ttl = 10, interval = "5s",
            metadata(region = "eu", "app.kubernetes.io/name" = "student", r#type = "x"),
        });
        assert!(errors.is_empty(), "{errors:?}");
        let value = |arg: &Option<Arg<String>>| arg.as_ref().map(|a| a.value.clone());
        assert_eq!(value(&args.name).as_deref(), Some("student_service"));
        assert_eq!(value(&args.version).as_deref(), Some("v1.0.0"));
        assert_eq!(value(&args.registry).as_deref(), Some("consul"));
        assert_eq!(
            value(&args.registry_address).as_deref(),
            Some("127.0.0.1:8500")
        );
        assert_eq!(value(&args.broker).as_deref(), Some("nats"));
        assert_eq!(
            value(&args.broker_address).as_deref(),
            Some("127.0.0.1:4222")
        );
        assert_eq!(value(&args.address).as_deref(), Some("127.0.0.1:0"));
        assert_eq!(value(&args.advertise).as_deref(), Some("10.0.0.1:8080"));
        assert_eq!(args.ttl.map(|a| a.value), Some(Duration::from_secs(10)));
        assert_eq!(args.interval.map(|a| a.value), Some(Duration::from_secs(5)));
        let metadata: Vec<(String, String)> = args
            .metadata
            .iter()
            .map(|e| (e.key.clone(), e.value.value()))
            .collect();
        assert_eq!(
            metadata,
            [
                ("region".to_owned(), "eu".to_owned()),
                ("app.kubernetes.io/name".to_owned(), "student".to_owned()),
                ("type".to_owned(), "x".to_owned()),
            ]
        );
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let (_, errors) = parse(quote!(nmae = "s", regsitry = "mdns", colour = "red"));
        assert_eq!(errors.len(), 3);
        assert!(errors[0].starts_with("unknown key `nmae`, expected one of `name`, "));
        assert!(
            errors[0].ends_with("(did you mean `name`?)"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].ends_with("(did you mean `registry`?)"),
            "{}",
            errors[1]
        );
        assert!(!errors[2].contains("did you mean"), "{}", errors[2]);
    }

    #[test]
    fn duplicate_keys_are_reported_once_each() {
        let (args, errors) = parse(quote!(name = "a", name = "b", ttl = 10, ttl = 20));
        assert_eq!(errors, ["duplicate key `name`", "duplicate key `ttl`"]);
        assert_eq!(args.name.map(|a| a.value).as_deref(), Some("a"));
    }

    #[test]
    fn values_must_be_literals_of_the_right_kind() {
        let (_, errors) = parse(quote!(
            name = 5,
            version,
            registry(consul),
            ttl = TTL,
            broker = nats
        ));
        assert_eq!(
            errors,
            [
                "expected a string literal, e.g. `name = \"5\"`",
                "`version` needs a value, e.g. `version = \"v1.0.0\"`",
                "`registry` takes a value, not a list: `registry = \"consul\"`",
                "expected seconds or a duration string, e.g. `ttl = 10` or `ttl = \"1m30s\"`",
                "expected a string literal, e.g. `broker = \"nats\"`",
            ]
        );
        let (_, errors) = parse(quote!(name = NAME));
        assert_eq!(
            errors,
            [
                "expected a string literal: a macro cannot read the value of `NAME`; write it out, \
              e.g. `name = \"student_service\"`"
            ]
        );
        let (_, errors) = parse(quote!(name = NAME.to_owned()));
        assert_eq!(
            errors,
            ["expected a string literal, e.g. `name = \"student_service\"`"]
        );
    }

    #[test]
    fn duration_literals() {
        let (args, errors) = parse(quote!(ttl = 10u64, interval = "1m"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.ttl.map(|a| a.value), Some(Duration::from_secs(10)));
        assert_eq!(
            args.interval.map(|a| a.value),
            Some(Duration::from_secs(60))
        );

        let (_, errors) = parse(quote!(ttl = 10s, interval = -5));
        assert_eq!(
            errors,
            [
                "`10s` is not a duration literal: write `ttl = \"10s\"` (a string), or `ttl = 10` for seconds",
                "`interval` cannot be negative",
            ]
        );
        let (_, errors) = parse(quote!(ttl = ""));
        assert_eq!(errors, ["`ttl` cannot be empty, e.g. `ttl = \"90s\"`"]);
        let (_, errors) = parse(quote!(ttl = "1m30", interval = 10days));
        assert_eq!(
            errors,
            [
                "invalid duration `1m30`: missing unit after `30`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h`",
                "invalid duration `10days`: unknown unit `days`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h`",
            ]
        );
    }

    #[test]
    fn metadata_pairs() {
        let (args, errors) = parse(quote!(metadata(a = "1", a = "2", b = 3, "" = "x", c = X)));
        assert_eq!(
            errors,
            [
                "duplicate metadata key `a`",
                "metadata values are strings: `b = \"3\"`",
                "metadata keys cannot be empty",
                "expected a string literal, e.g. `c = \"value\"`",
            ]
        );
        assert_eq!(args.metadata.len(), 1);

        let (_, errors) = parse(quote!(metadata = "a=b"));
        assert_eq!(
            errors,
            ["`metadata` takes a list of pairs: `metadata(key = \"value\", ..)`"]
        );
    }

    #[test]
    fn syntax_errors_stop_parsing() {
        let mut errors = Errors::new();
        assert!(Args::parse(quote!(name = ), &mut errors).is_err());
        assert!(Args::parse(quote!(name "x"), &mut errors).is_err());
        assert!(errors.is_empty());
    }
}
