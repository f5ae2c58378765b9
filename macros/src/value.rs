//! Values of attribute keys that several macros take: the [`Arg`] a key's value is kept in,
//! the literal inside an `Expr`, and durations (seconds or Go's `"1m30s"`).

use std::time::Duration;

use proc_macro2::TokenStream;
use syn::{Expr, ExprLit, Ident, Lit};

use crate::diag::Errors;

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

/// The literal an attribute value holds, seeing through the invisible groups that
/// `macro_rules!` wraps around `$e:expr`.
pub(crate) fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// A duration value: seconds as an integer, or a Go duration string (`"1m30s"`).
pub(crate) fn duration_arg(key: Ident, value: Expr, errors: &mut Errors) -> Option<Arg<Duration>> {
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

/// A duration for `key` as an error message would suggest it.
fn example(key: &str) -> &'static str {
    match key {
        "ttl" => "\"90s\"",
        "interval" => "\"30s\"",
        "backoff" => "\"100ms\"",
        _ => "\"10s\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
