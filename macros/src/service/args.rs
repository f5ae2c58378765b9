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
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Meta, Token};

use crate::diag::{self, Errors};

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

/// A `key = value` argument: its parsed value and the tokens errors point at.
pub(crate) struct Arg<T> {
    pub(crate) key: Ident,
    pub(crate) lit: Lit,
    pub(crate) value: T,
}

impl<T> Arg<T> {
    /// `key = value`, for errors about the pair as a whole.
    pub(crate) fn pair(&self) -> TokenStream {
        let (key, lit) = (&self.key, &self.lit);
        quote::quote!(#key = #lit)
    }
}

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

/// The literal an attribute value holds, seeing through the invisible groups that
/// `macro_rules!` wraps around `$e:expr`.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
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

fn duration_arg(key: Ident, value: Expr, errors: &mut Errors) -> Option<Arg<Duration>> {
    let name = key.to_string();
    let Some(lit) = literal(&value) else {
        let negative = matches!(&value, Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)));
        let message = if negative {
            format!("`{name}` cannot be negative")
        } else {
            format!(
                "expected seconds or a duration string, e.g. `{name} = 10` or `{name} = \"1m30s\"`"
            )
        };
        errors.spanned(&value, message);
        return None;
    };
    if matches!(lit, Lit::Int(int) if int.base10_digits().starts_with('-')) {
        errors.spanned(lit, format!("`{name}` cannot be negative"));
        return None;
    }
    match duration_of(&name, lit) {
        Ok(duration) => Some(Arg {
            key,
            lit: lit.clone(),
            value: duration,
        }),
        Err(message) => {
            errors.spanned(lit, message);
            None
        }
    }
}

/// Integer suffixes that still mean "seconds".
const INTEGER_SUFFIXES: &[&str] = &[
    "", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
];

fn duration_of(key: &str, lit: &Lit) -> Result<Duration, String> {
    match lit {
        Lit::Int(int) if INTEGER_SUFFIXES.contains(&int.suffix()) => int
            .base10_parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("`{int}` seconds is out of range")),
        // `10s` lexes as the integer 10 with the suffix `s`.
        Lit::Int(int) if UNITS.iter().any(|(unit, _)| *unit == int.suffix()) => Err(format!(
            "`{int}` is not a duration literal: write `{key} = \"{int}\"` (a string), or \
             `{key} = {}` for seconds",
            int.base10_digits(),
        )),
        Lit::Int(int) => Err(format!(
            "invalid duration `{int}`: {}",
            unknown_unit(int.suffix())
        )),
        Lit::Str(s) if s.value().is_empty() => Err(format!(
            "`{key}` cannot be empty, e.g. `{key} = {}`",
            example(key)
        )),
        Lit::Str(s) => {
            parse_duration(&s.value()).map_err(|e| format!("invalid duration `{}`: {e}", s.value()))
        }
        _ => Err(format!(
            "expected seconds or a duration string, e.g. `{key} = 10` or `{key} = \"1m30s\"`"
        )),
    }
}

/// Go's duration units and their length in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The units as messages list them.
const UNIT_NAMES: &str = "`ns`, `us`, `ms`, `s`, `m`, `h`";

/// `` unknown unit `secs`, expected one of .. (did you mean `s`?) ``.
fn unknown_unit(unit: &str) -> String {
    let meant = match unit.to_ascii_lowercase().as_str() {
        "sec" | "secs" | "second" | "seconds" => Some("s"),
        "min" | "mins" | "minute" | "minutes" => Some("m"),
        "hr" | "hrs" | "hour" | "hours" => Some("h"),
        "milli" | "millis" | "msec" | "msecs" | "millisecond" | "milliseconds" => Some("ms"),
        "micro" | "micros" | "microsecond" | "microseconds" => Some("us"),
        "nano" | "nanos" | "nanosecond" | "nanoseconds" => Some("ns"),
        _ => None,
    }
    .or_else(|| {
        UNITS
            .iter()
            .map(|(name, _)| *name)
            .find(|name| name.eq_ignore_ascii_case(unit))
    });
    let mut message = format!("unknown unit `{unit}`, expected one of {UNIT_NAMES}");
    if let Some(meant) = meant {
        message.push_str(&format!(" (did you mean `{meant}`?)"));
    }
    message
}

/// Parses a duration the way go-micro's flags take them (and the runtime does): an integer
/// number of seconds (`"10"`) or Go duration syntax (`"1m30s"`, `"500ms"`, `"1.5h"`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().is_empty() {
        return Err("a duration cannot be empty".to_owned());
    }
    if text.contains(char::is_whitespace) {
        let compact: String = text.split_whitespace().collect();
        return match parse_duration(&compact) {
            Ok(_) => Err(format!("durations have no spaces: `\"{compact}\"`")),
            Err(_) => Err("durations have no spaces, e.g. `\"1m30s\"`".to_owned()),
        };
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if number.is_empty() || (whole.is_empty() && fraction.is_empty()) {
            return Err(format!("expected a number before `{unit}`"));
        }
        if fraction.contains('.') {
            return Err(format!("`{number}` is not a number"));
        }
        if unit.is_empty() {
            return Err(format!(
                "missing unit after `{number}`, expected one of {UNIT_NAMES}"
            ));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(unknown_unit(unit));
        };
        let part = (|| {
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().ok()?
            };
            let mut part = whole.checked_mul(scale)?;
            // Digits past nanosecond precision are dropped, as Go does.
            let mut place = scale;
            for digit in fraction.bytes() {
                place /= 10;
                part = part.checked_add(u128::from(digit - b'0') * place)?;
            }
            nanos.checked_add(part)
        })();
        nanos = part.ok_or_else(|| "out of range".to_owned())?;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| "out of range".to_owned())?;
    let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| "out of range".to_owned())?;
    Ok(Duration::new(secs, subsec))
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
    fn durations_take_seconds_and_go_syntax() {
        let ok = |text: &str| parse_duration(text).expect(text);
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("2us"), Duration::from_micros(2));
        assert_eq!(ok("2µs"), Duration::from_micros(2));
        assert_eq!(ok("1h2m3s4ms5ns"), Duration::new(3723, 4_000_005));
        assert_eq!(ok("0"), Duration::ZERO);
    }

    #[test]
    fn malformed_durations_say_why() {
        let err = |text: &str| parse_duration(text).expect_err(text);
        assert_eq!(err(""), "a duration cannot be empty");
        assert_eq!(
            err("10x"),
            "unknown unit `x`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h`"
        );
        assert_eq!(
            err("10secs"),
            "unknown unit `secs`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h` (did you mean `s`?)"
        );
        assert_eq!(
            err("1M"),
            "unknown unit `M`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h` (did you mean `m`?)"
        );
        assert_eq!(err("10 s"), "durations have no spaces: `\"10s\"`");
        assert_eq!(
            err("10 seconds"),
            "durations have no spaces, e.g. `\"1m30s\"`"
        );
        assert_eq!(
            err("1m30"),
            "missing unit after `30`, expected one of `ns`, `us`, `ms`, `s`, `m`, `h`"
        );
        assert_eq!(err("s"), "expected a number before `s`");
        assert_eq!(err("1.2.3s"), "`1.2.3` is not a number");
        assert_eq!(err("-5s"), "expected a number before `-`");
        assert_eq!(err("99999999999999999999999h"), "out of range");
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
