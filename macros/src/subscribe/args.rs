//! Parses `#[subscribe("topic", queue = "..", service = "..")]` and a subscriber's signature.
//! Shared by `#[subscribe]` on free functions and by `#[handlers]` for its methods.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Signature, Token, Type};

use crate::diag::{self, Errors};
use crate::signature::{self, Inputs};
use crate::value::{self, Arg};

/// The keys `#[subscribe]` takes after the topic.
pub(crate) const KEYS: &[&str] = &["queue", "service", "attempts", "backoff", "dead_letter"];

/// `key = "value"`, kept for its spans.
pub(crate) struct Pair {
    pub(crate) key: Ident,
    pub(crate) value: LitStr,
}

/// The arguments of one `#[subscribe(..)]`, as written.
#[derive(Default)]
pub(crate) struct SubscribeArgs {
    pub(crate) topic: Option<LitStr>,
    pub(crate) queue: Option<Pair>,
    pub(crate) service: Option<Pair>,
    /// Tries of a failing message in all.
    pub(crate) attempts: Option<Arg<u32>>,
    /// The pause before the second try.
    pub(crate) backoff: Option<Arg<Duration>>,
    /// Where a message goes after its last failed try.
    pub(crate) dead_letter: Option<Pair>,
    /// The keys given so far, for duplicates.
    seen: Vec<String>,
}

enum RawArg {
    Pair { key: Ident, value: Expr },
    Value(Expr),
}

impl Parse for RawArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
            let key = input.call(Ident::parse_any)?;
            input.parse::<Token![=]>()?;
            Ok(Self::Pair {
                key,
                value: input.parse()?,
            })
        } else {
            Ok(Self::Value(input.parse()?))
        }
    }
}

fn string(value: &Expr) -> Option<&LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        Expr::Group(group) => string(&group.expr),
        _ => None,
    }
}

impl SubscribeArgs {
    /// Parses the tokens inside `#[subscribe(..)]`; `attr` is the span a missing topic is
    /// reported at. A syntax error is returned, every other problem recorded in `errors`.
    pub(crate) fn parse(tokens: TokenStream, attr: Span, errors: &mut Errors) -> syn::Result<Self> {
        let raw = Punctuated::<RawArg, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut args = Self::default();
        // Whether a topic was written in a form that is reported on its own.
        let mut positional = false;
        for arg in raw {
            match arg {
                RawArg::Value(value) => match string(&value) {
                    Some(topic) if args.topic.is_none() => args.topic = Some(topic.clone()),
                    Some(_) => errors.spanned(
                        &value,
                        "a subscriber has one topic; add another `#[subscribe(\"..\")]` \
                         to subscribe to a second one",
                    ),
                    None => {
                        positional = true;
                        errors.spanned(
                            &value,
                            "expected the topic as a string literal, \
                             e.g. `#[subscribe(\"go.micro.srv.message\")]`",
                        );
                    }
                },
                RawArg::Pair { key, value } => {
                    // `topic = ".."` is reported as such, not also as a missing topic.
                    positional |= key == "topic";
                    args.add(key, &value, errors);
                }
            }
        }
        if args.topic.is_none() && !positional {
            errors.at(
                attr,
                "missing topic: `#[subscribe(\"go.micro.srv.message\")]` subscribes to \
                 `go.micro.srv.message`",
            );
        }
        Ok(args)
    }

    fn add(&mut self, key: Ident, value: &Expr, errors: &mut Errors) {
        let name = key.unraw().to_string();
        if KEYS.contains(&name.as_str()) {
            if self.seen.contains(&name) {
                errors.spanned(&key, format!("duplicate key `{name}`"));
                return;
            }
            self.seen.push(name.clone());
        }
        let slot = match name.as_str() {
            "attempts" => {
                self.attempts = attempts_arg(key, value, errors);
                return;
            }
            "backoff" => {
                self.backoff = value::duration_arg(key, value.clone(), errors);
                return;
            }
            "queue" => &mut self.queue,
            "service" => &mut self.service,
            "dead_letter" => &mut self.dead_letter,
            "topic" => {
                let topic = string(value).map_or("..".to_owned(), LitStr::value);
                errors.spanned(
                    &key,
                    format!("the topic needs no key: `#[subscribe(\"{topic}\")]`"),
                );
                return;
            }
            _ => {
                errors.spanned(&key, diag::unknown("key", &name, KEYS));
                return;
            }
        };
        match string(value) {
            Some(value) => {
                *slot = Some(Pair {
                    key,
                    value: value.clone(),
                });
            }
            None => errors.spanned(
                value,
                format!(
                    "expected a string literal, e.g. `{name} = {}`",
                    example(&name)
                ),
            ),
        }
    }
}

fn example(key: &str) -> &'static str {
    match key {
        "dead_letter" => "\"students.graded.dead\"",
        "service" => "\"student_service\"",
        _ => "\"student-workers\"",
    }
}

/// `attempts = N`: an integer from 1 to [`MAX_ATTEMPTS`].
fn attempts_arg(key: Ident, value: &Expr, errors: &mut Errors) -> Option<Arg<u32>> {
    let Some(Lit::Int(int)) = value::literal(value) else {
        errors.spanned(
            value,
            "expected how many times to try a message in all, e.g. `attempts = 5`",
        );
        return None;
    };
    match int.base10_parse::<u32>() {
        Ok(0) => errors.spanned(
            int,
            "`attempts` counts the first try too, so it is at least 1 (1 = no retries)",
        ),
        Ok(n) if n > MAX_ATTEMPTS => errors.spanned(
            int,
            format!(
                "`attempts = {n}` is more than {MAX_ATTEMPTS}: a message that always fails would \
                 hold its subscriber that long; send it to a `dead_letter` topic sooner"
            ),
        ),
        Ok(n) => {
            return Some(Arg {
                key,
                lit: Lit::Int(int.clone()),
                value: n,
            });
        }
        Err(_) => errors.spanned(int, format!("`{int}` is not a whole number of tries")),
    }
    None
}

/// The most tries `attempts` allows.
pub(crate) const MAX_ATTEMPTS: u32 = 100;

/// How a subscriber takes its message.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// `event: Event<T>`: the decoded payload with its topic and headers.
    Event(Type),
    /// `payload: T`: the decoded payload alone.
    Plain(Type),
}

impl Payload {
    /// The decoded type `T`.
    pub(crate) fn ty(&self) -> &Type {
        match self {
            Self::Event(ty) | Self::Plain(ty) => ty,
        }
    }
}

/// What the generated code needs of a subscriber's signature.
#[derive(Debug, Clone)]
pub(crate) struct SubscriberFn {
    pub(crate) payload: Payload,
    /// The `E` of `Result<(), E>`, when written out.
    pub(crate) error: Option<Type>,
}

/// Reads a subscriber's signature: `async fn name(&self, event: Event<T>) -> Result<(), E>`
/// for a method (`method`), the same without `&self` for a free function, and `payload: T`
/// in place of `event: Event<T>`.
pub(crate) fn subscriber(
    sig: &Signature,
    method: bool,
    errors: &mut Errors,
) -> Option<SubscriberFn> {
    let name = &sig.ident;
    let shape = if method {
        format!("`async fn {name}(&self, event: Event<T>) -> rmicro::Result<()>`")
    } else {
        format!("`async fn {name}(event: Event<T>) -> rmicro::Result<()>`")
    };
    let before = errors.len();
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("the `async` keyword is missing from the function declaration: {shape}"),
        );
    }
    signature::reject_generics(sig, "subscribers", errors);
    let Inputs { receiver, args } = signature::inputs(sig);
    if method {
        match receiver {
            None => errors.at(
                signature::parens(sig),
                format!("subscriber `{name}` must take `&self` and the message: {shape}"),
            ),
            Some(r) if !signature::is_shared_self(r) => errors.spanned(
                r,
                format!(
                    "subscriber `{name}` must take `&self`: messages are handled concurrently \
                     on the shared service value"
                ),
            ),
            Some(_) => {}
        }
    }
    let payload = match args.as_slice() {
        [arg] => Some(match signature::event_payload(&arg.ty) {
            Some(ty) => Payload::Event(ty.clone()),
            None => Payload::Plain((*arg.ty).clone()),
        }),
        [] => {
            errors.at(
                signature::parens(sig),
                format!(
                    "subscriber `{name}` must take the message as its argument: \
                     `event: Event<T>` or `payload: T`"
                ),
            );
            None
        }
        [_, extra @ ..] => {
            let extra: Vec<_> = extra.iter().collect();
            errors.spanned(
                quote::quote!(#(#extra)*),
                format!(
                    "subscriber `{name}` takes one argument, the message, found {}: {shape}",
                    args.len()
                ),
            );
            None
        }
    };
    check_result(sig, &shape, errors);
    if errors.len() > before {
        return None;
    }
    Some(SubscriberFn {
        payload: payload?,
        error: signature::result_err(&sig.output).cloned(),
    })
}

fn check_result(sig: &Signature, shape: &str, errors: &mut Errors) {
    let name = &sig.ident;
    let message = format!(
        "subscriber `{name}` must return `Result<(), E>` where `E: Into<rmicro::Error>`: {shape}"
    );
    match signature::result_ok(&sig.output) {
        None => match &sig.output {
            syn::ReturnType::Type(_, ty) => errors.spanned(ty, message),
            syn::ReturnType::Default => errors.spanned(signature::head(sig), message),
        },
        Some(ok) if !signature::is_unit(ok) => errors.spanned(
            ok,
            format!(
                "subscriber `{name}` must return `Result<(), E>`: a handled message has \
                 no reply"
            ),
        ),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::parse_quote;

    use super::*;

    fn parse(tokens: TokenStream) -> (SubscribeArgs, Vec<String>) {
        let mut errors = Errors::new();
        let args =
            SubscribeArgs::parse(tokens, Span::call_site(), &mut errors).expect("valid syntax");
        (args, messages(errors))
    }

    fn messages(errors: Errors) -> Vec<String> {
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn topic_then_keys() {
        let (args, errors) = parse(quote!("go.micro.srv.message", queue = "q", service = "s"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            args.topic.map(|t| t.value()).as_deref(),
            Some("go.micro.srv.message")
        );
        assert_eq!(args.queue.map(|q| q.value.value()).as_deref(), Some("q"));
        assert_eq!(args.service.map(|s| s.value.value()).as_deref(), Some("s"));
    }

    #[test]
    fn mistakes_in_arguments() {
        assert_eq!(
            parse(quote!()).1,
            [
                "missing topic: `#[subscribe(\"go.micro.srv.message\")]` subscribes to \
              `go.micro.srv.message`"
            ]
        );
        assert_eq!(
            parse(quote!(
                "t",
                quene = "q",
                queue = "a",
                queue = "b",
                service = 1
            ))
            .1,
            [
                "unknown key `quene`, expected one of `queue`, `service`, `attempts`, `backoff`, \
                 `dead_letter` (did you mean `queue`?)",
                "duplicate key `queue`",
                "expected a string literal, e.g. `service = \"student_service\"`",
            ]
        );
        assert_eq!(
            parse(quote!(topic = "t")).1,
            ["the topic needs no key: `#[subscribe(\"t\")]`"]
        );
        assert_eq!(
            parse(quote!("a", "b")).1,
            [
                "a subscriber has one topic; add another `#[subscribe(\"..\")]` to subscribe to a \
              second one"
            ]
        );
        assert_eq!(
            parse(quote!(TOPIC)).1,
            ["expected the topic as a string literal, e.g. \
              `#[subscribe(\"go.micro.srv.message\")]`"]
        );
    }

    fn check(sig: Signature, method: bool) -> Result<String, Vec<String>> {
        let mut errors = Errors::new();
        let payload = subscriber(&sig, method, &mut errors).map(|s| s.payload);
        let errors = messages(errors);
        match payload {
            Some(Payload::Event(ty)) if errors.is_empty() => Ok(format!("event {}", quote!(#ty))),
            Some(Payload::Plain(ty)) if errors.is_empty() => Ok(format!("plain {}", quote!(#ty))),
            _ => Err(errors),
        }
    }

    #[test]
    fn subscriber_signatures() {
        assert_eq!(
            check(
                parse_quote!(async fn f(e: Event<Student>) -> rmicro::Result<()>),
                false
            ),
            Ok("event Student".to_owned())
        );
        assert_eq!(
            check(
                parse_quote!(async fn f(&self, s: Student) -> Result<(), E>),
                true
            ),
            Ok("plain Student".to_owned())
        );
        assert_eq!(
            check(parse_quote!(fn f(e: Event<Student>) -> Result<()>), false),
            Err(vec![
                "the `async` keyword is missing from the function declaration: \
                      `async fn f(event: Event<T>) -> rmicro::Result<()>`"
                    .to_owned()
            ])
        );
        let errors = check(
            parse_quote!(async fn f(a: A, b: B) -> Result<String>),
            false,
        )
        .expect_err("two errors");
        assert_eq!(
            errors,
            [
                "subscriber `f` takes one argument, the message, found 2: \
                 `async fn f(event: Event<T>) -> rmicro::Result<()>`",
                "subscriber `f` must return `Result<(), E>`: a handled message has no reply",
            ]
        );
        assert_eq!(
            check(parse_quote!(async fn f<T>()), false)
                .expect_err("three errors")
                .len(),
            3
        );
        assert_eq!(
            check(
                parse_quote!(async fn f(&mut self, e: E) -> Result<()>),
                true
            ),
            Err(vec![
                "subscriber `f` must take `&self`: messages are handled concurrently on \
                      the shared service value"
                    .to_owned()
            ])
        );
        assert_eq!(
            check(parse_quote!(async fn f(e: E) -> Result<()>), true),
            Err(vec![
                "subscriber `f` must take `&self` and the message: \
                      `async fn f(&self, event: Event<T>) -> rmicro::Result<()>`"
                    .to_owned()
            ])
        );
    }
}
