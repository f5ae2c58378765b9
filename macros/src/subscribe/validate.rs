//! The rules on a subscription's topic, queue and service; yields a span-free configuration.

use std::time::Duration;

use syn::LitStr;

use super::args::{Pair, SubscribeArgs};
use crate::diag::Errors;
use crate::naming;

/// Where a subscriber listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) topic: String,
    pub(crate) queue: Option<String>,
    /// The service a free subscriber belongs to; `None` = the program's only service.
    pub(crate) service: Option<String>,
    /// What happens to a message the subscriber fails on; `None`: the broker's own rule.
    pub(crate) redelivery: Option<Redelivery>,
}

/// `attempts`, `backoff` and `dead_letter`, as given (`None`: the runtime's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redelivery {
    pub(crate) attempts: Option<u32>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) dead_letter: Option<String>,
}

/// The longest `backoff` allowed: longer pauses hold the subscription for that long.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Checks `args`, recording every broken rule; `Some` when none is broken.
pub(crate) fn validate(args: &SubscribeArgs, errors: &mut Errors) -> Option<Subscription> {
    let before = errors.len();
    if let Some(topic) = &args.topic {
        check_topic(topic, errors);
    }
    if let Some(queue) = &args.queue {
        check_queue(queue, errors);
    }
    if let Some(service) = &args.service {
        check_service(service, errors);
    }
    if let Some(dead_letter) = &args.dead_letter {
        check_dead_letter(dead_letter, args.topic.as_ref(), errors);
    }
    if let Some(backoff) = &args.backoff
        && backoff.value > MAX_BACKOFF
    {
        errors.spanned(
            &backoff.lit,
            "`backoff` is at most 10m: the subscriber holds the message (and, where order is \
             kept, its queue) for every pause",
        );
    }
    if errors.len() > before {
        return None;
    }
    let redelivery = (args.attempts.is_some()
        || args.backoff.is_some()
        || args.dead_letter.is_some())
    .then(|| Redelivery {
        attempts: args.attempts.as_ref().map(|a| a.value),
        backoff: args.backoff.as_ref().map(|b| b.value),
        dead_letter: args.dead_letter.as_ref().map(|d| d.value.value()),
    });
    Some(Subscription {
        topic: args.topic.as_ref()?.value(),
        queue: args.queue.as_ref().map(|q| q.value.value()),
        service: args.service.as_ref().map(|s| s.value.value()),
        redelivery,
    })
}

fn check_dead_letter(dead_letter: &Pair, topic: Option<&LitStr>, errors: &mut Errors) {
    let text = dead_letter.value.value();
    if text.is_empty() {
        errors.spanned(
            &dead_letter.value,
            "`dead_letter` cannot be empty; leave it out to drop a message after its last try",
        );
    } else if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        errors.spanned(
            &dead_letter.value,
            format!(
                "invalid dead-letter topic `{}`: {} is not allowed in a topic",
                text.escape_debug(),
                naming::show_char(c)
            ),
        );
    } else if topic.is_some_and(|t| t.value() == text) {
        errors.spanned(
            &dead_letter.value,
            format!(
                "the dead-letter topic cannot be the topic itself: failed messages would come \
                 back to this subscriber; e.g. `dead_letter = \"{text}.dead\"`"
            ),
        );
    }
}

fn check_topic(topic: &LitStr, errors: &mut Errors) {
    let text = topic.value();
    if text.is_empty() {
        errors.spanned(topic, "the topic cannot be empty");
    } else if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        errors.spanned(
            topic,
            format!(
                "invalid topic `{}`: {} is not allowed in a topic",
                text.escape_debug(),
                naming::show_char(c)
            ),
        );
    }
}

fn check_queue(queue: &Pair, errors: &mut Errors) {
    let text = queue.value.value();
    if text.is_empty() {
        errors.spanned(
            &queue.value,
            "`queue` cannot be empty; leave it out for every subscriber to get every message",
        );
    } else if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        errors.spanned(
            &queue.value,
            format!(
                "invalid queue `{}`: {} is not allowed in a queue name",
                text.escape_debug(),
                naming::show_char(c)
            ),
        );
    }
}

fn check_service(service: &Pair, errors: &mut Errors) {
    let text = service.value.value();
    if text.is_empty() {
        errors.spanned(
            &service.value,
            "`service` cannot be empty; leave it out when the program runs one service",
        );
    } else if let Some(c) = naming::invalid_name_char(&text) {
        errors.spanned(
            &service.value,
            format!(
                "invalid service name `{text}`: {} is not allowed; use letters, digits, `.`, \
                 `_` and `-`",
                naming::show_char(c)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::{Span, TokenStream};
    use quote::quote;

    use super::*;

    fn check(tokens: TokenStream) -> Result<Subscription, Vec<String>> {
        let mut errors = Errors::new();
        let args = SubscribeArgs::parse(tokens, Span::call_site(), &mut errors).expect("syntax");
        let subscription = validate(&args, &mut errors);
        match errors.finish() {
            Ok(()) => Ok(subscription.expect("a subscription when there are no errors")),
            Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn a_valid_subscription() {
        assert_eq!(
            check(quote!(
                "go.micro.srv.message",
                queue = "workers",
                service = "student_service"
            )),
            Ok(Subscription {
                topic: "go.micro.srv.message".to_owned(),
                queue: Some("workers".to_owned()),
                service: Some("student_service".to_owned()),
                redelivery: None,
            })
        );
        assert_eq!(
            check(quote!(
                "t",
                attempts = 5,
                backoff = "50ms",
                dead_letter = "t.dead"
            ))
            .map(|s| s.redelivery),
            Ok(Some(Redelivery {
                attempts: Some(5),
                backoff: Some(Duration::from_millis(50)),
                dead_letter: Some("t.dead".to_owned()),
            }))
        );
        assert_eq!(
            check(quote!("t", dead_letter = "t.dead")).map(|s| s.redelivery),
            Ok(Some(Redelivery {
                attempts: None,
                backoff: None,
                dead_letter: Some("t.dead".to_owned()),
            })),
            "the runtime's defaults fill in the rest"
        );
    }

    #[test]
    fn redelivery_keys_are_checked() {
        assert_eq!(
            check(quote!("t", dead_letter = "t")).expect_err("errors"),
            [
                "the dead-letter topic cannot be the topic itself: failed messages would come back \
              to this subscriber; e.g. `dead_letter = \"t.dead\"`"
            ]
        );
        assert_eq!(
            check(quote!(
                "t",
                attempts = 0,
                backoff = "1h",
                dead_letter = "a b"
            ))
            .expect_err("errors"),
            [
                "`attempts` counts the first try too, so it is at least 1 (1 = no retries)",
                "invalid dead-letter topic `a b`: a space is not allowed in a topic",
                "`backoff` is at most 10m: the subscriber holds the message (and, where order \
                 is kept, its queue) for every pause",
            ]
        );
        assert_eq!(
            check(quote!(
                "t",
                attempts = 101,
                backoff = "5parsecs",
                dead_letter = ""
            ))
            .expect_err("errors"),
            [
                "`attempts = 101` is more than 100: a message that always fails would hold its \
                 subscriber that long; send it to a `dead_letter` topic sooner",
                "invalid duration `5parsecs`: unknown unit `parsecs`, expected one of `ns`, `us`, \
                 `ms`, `s`, `m`, `h`",
                "`dead_letter` cannot be empty; leave it out to drop a message after its last try",
            ]
        );
        assert_eq!(
            check(quote!("t", attempts = "5", attempts = 6)).expect_err("errors"),
            [
                "expected how many times to try a message in all, e.g. `attempts = 5`",
                "duplicate key `attempts`",
            ]
        );
    }

    #[test]
    fn topics_queues_and_services_are_checked() {
        assert_eq!(
            check(quote!("")),
            Err(vec!["the topic cannot be empty".to_owned()])
        );
        assert_eq!(
            check(quote!("go.micro message")),
            Err(vec![
                "invalid topic `go.micro message`: a space is not allowed in a topic".to_owned()
            ])
        );
        assert_eq!(
            check(quote!("t\n", queue = "", service = "a/b")).expect_err("errors"),
            [
                "invalid topic `t\\n`: a line break is not allowed in a topic",
                "`queue` cannot be empty; leave it out for every subscriber to get every message",
                "invalid service name `a/b`: `/` is not allowed; use letters, digits, `.`, `_` \
                 and `-`",
            ]
        );
    }
}
