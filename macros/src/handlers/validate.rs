//! The rules across a `#[handlers]` block: one method per endpoint name, one per subscription.

use std::collections::BTreeMap;

use syn::{Ident, Type};

use super::args::{Block, Streaming};
use crate::diag::Errors;
use crate::naming;
use crate::subscribe::args::SubscriberFn;
use crate::subscribe::validate::{self as subscription, Subscription};

/// An endpoint, named.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// `Handler.Method`.
    pub(crate) name: String,
    pub(crate) method: Ident,
    pub(crate) streaming: Option<Streaming>,
    pub(crate) request: Type,
    pub(crate) response: Type,
    pub(crate) error: Option<Type>,
    /// The method's doc comment: the endpoint's `description` in the registry.
    pub(crate) doc: Option<String>,
}

/// A subscription and the method that handles it.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) subscription: Subscription,
    pub(crate) method: Ident,
    pub(crate) function: SubscriberFn,
}

/// The checked routes of a `#[handlers]` block.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) subscribers: Vec<Subscriber>,
}

/// Checks `block`, recording every broken rule; `Some` when none is broken.
pub(crate) fn validate(block: Block, errors: &mut Errors) -> Option<Config> {
    let before = errors.len();
    let handler = block.handler.to_string();

    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut names: BTreeMap<String, Ident> = BTreeMap::new();
    for endpoint in block.endpoints {
        let name = naming::endpoint_name(&handler, &endpoint.method.to_string());
        if let Some(first) = names.get(&name) {
            // The same method twice is rustc's to report (duplicate definitions).
            if *first != endpoint.method {
                errors.spanned(
                    &endpoint.method,
                    format!(
                        "`{}` and `{first}` both serve endpoint `{name}`; rename one of them",
                        endpoint.method
                    ),
                );
            }
            continue;
        }
        names.insert(name.clone(), endpoint.method.clone());
        endpoints.push(Endpoint {
            name,
            method: endpoint.method,
            streaming: endpoint.streaming,
            request: endpoint.request,
            response: endpoint.response,
            error: endpoint.error,
            doc: endpoint.doc,
        });
    }

    let mut subscribers: Vec<Subscriber> = Vec::new();
    for subscriber in block.subscribers {
        if let Some(service) = &subscriber.args.service {
            errors.spanned(
                &service.key,
                "`service` is for free functions: a method of a `#[handlers]` block subscribes \
                 for the service it belongs to",
            );
            continue;
        }
        let Some(subscription) = subscription::validate(&subscriber.args, errors) else {
            continue;
        };
        let first = subscribers.iter().find(|s| {
            s.subscription.topic == subscription.topic && s.subscription.queue == subscription.queue
        });
        if let Some(first) = first {
            let queue = match &subscription.queue {
                Some(queue) => format!(" in queue `{queue}`"),
                None => String::new(),
            };
            let message = format!(
                "duplicate subscription to `{}`{queue}: `{}` already handles it",
                subscription.topic, first.method
            );
            match &subscriber.args.topic {
                Some(topic) => errors.spanned(topic, message),
                None => errors.spanned(&subscriber.method, message),
            }
            continue;
        }
        subscribers.push(Subscriber {
            subscription,
            method: subscriber.method,
            function: subscriber.function,
        });
    }

    if errors.len() > before {
        return None;
    }
    Some(Config {
        endpoints,
        subscribers,
    })
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::ItemImpl;

    use super::*;
    use crate::handlers::args;

    fn check(item: TokenStream) -> Result<Config, Vec<String>> {
        let mut item: ItemImpl = syn::parse2(item).expect("an impl block");
        let mut errors = Errors::new();
        let config = args::parse(TokenStream::new(), &mut item, &mut errors)
            .and_then(|block| validate(block, &mut errors));
        match errors.finish() {
            Ok(()) => Ok(config.expect("a config when there are no errors")),
            Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn endpoints_are_named_as_go_micro_does() {
        let config = check(quote! {
            impl StudentService {
                pub async fn get_student(&self, r: R) -> Result<T, E> { todo!() }
                pub async fn ping(&self, r: R) -> Result<T, E> { todo!() }
            }
        })
        .expect("valid");
        let names: Vec<&str> = config.endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["StudentService.GetStudent", "StudentService.Ping"]);
    }

    #[test]
    fn two_methods_one_endpoint() {
        let errors = check(quote! {
            impl S {
                pub async fn get_student(&self, r: R) -> Result<T, E> { todo!() }
                pub async fn getStudent(&self, r: R) -> Result<T, E> { todo!() }
                pub async fn get_student_(&self, r: R) -> Result<T, E> { todo!() }
            }
        })
        .expect_err("errors");
        assert_eq!(
            errors,
            [
                "`getStudent` and `get_student` both serve endpoint `S.GetStudent`; rename one of them",
                "`get_student_` and `get_student` both serve endpoint `S.GetStudent`; rename one of them",
            ]
        );
    }

    #[test]
    fn same_method_twice_is_left_to_rustc() {
        assert!(
            check(quote! {
                impl S {
                    pub async fn get(&self, r: R) -> Result<T, E> { todo!() }
                    pub async fn get(&self, r: R) -> Result<T, E> { todo!() }
                }
            })
            .is_ok()
        );
    }

    #[test]
    fn subscriptions() {
        let errors = check(quote! {
            impl S {
                #[subscribe("t")]
                async fn a(&self, e: Event<X>) -> Result<()> { todo!() }
                #[subscribe("t", queue = "q")]
                async fn b(&self, e: Event<X>) -> Result<()> { todo!() }
                #[subscribe("t")]
                async fn c(&self, e: Event<X>) -> Result<()> { todo!() }
                #[subscribe("t", queue = "q")]
                async fn d(&self, e: Event<X>) -> Result<()> { todo!() }
                #[subscribe("u", service = "other")]
                async fn e(&self, e: Event<X>) -> Result<()> { todo!() }
                #[subscribe("")]
                async fn f(&self, e: Event<X>) -> Result<()> { todo!() }
            }
        })
        .expect_err("errors");
        assert_eq!(
            errors,
            [
                "duplicate subscription to `t`: `a` already handles it",
                "duplicate subscription to `t` in queue `q`: `b` already handles it",
                "`service` is for free functions: a method of a `#[handlers]` block subscribes \
                 for the service it belongs to",
                "the topic cannot be empty",
            ]
        );
    }

    #[test]
    fn one_method_may_subscribe_to_several_topics() {
        let config = check(quote! {
            impl S {
                #[subscribe("a")]
                #[subscribe("b")]
                async fn on(&self, x: X) -> Result<()> { todo!() }
            }
        })
        .expect("valid");
        let topics: Vec<&str> = config
            .subscribers
            .iter()
            .map(|s| s.subscription.topic.as_str())
            .collect();
        assert_eq!(topics, ["a", "b"]);
    }
}
