//! The rules on a subscription's topic, queue and service; yields a span-free configuration.

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
}

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
    if errors.len() > before {
        return None;
    }
    Some(Subscription {
        topic: args.topic.as_ref()?.value(),
        queue: args.queue.as_ref().map(|q| q.value.value()),
        service: args.service.as_ref().map(|s| s.value.value()),
    })
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
            })
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
