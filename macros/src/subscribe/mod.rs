//! `#[subscribe("topic")]` on a free `async fn`: the function handles every message published
//! on the topic, registered with the runtime at link time. (Inside a `#[handlers]` impl block
//! the attribute is read by `#[handlers]` instead.)

pub(crate) mod args;
mod expand;
pub(crate) mod validate;

pub(crate) use expand::{assert_decode, map_err, option, redelivery};

use proc_macro2::{Span, TokenStream};
use syn::Item;

use crate::diag::{self, Errors};
use crate::signature;

/// Expands `#[subscribe(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(error) => return diag::with_errors(item, &error),
    };
    let mut errors = Errors::new();
    let Item::Fn(function) = &item else {
        let (what, head) = diag::item_kind(&item);
        errors.spanned(
            head,
            format!("`#[subscribe]` goes on an `async fn` that handles messages, not {what}"),
        );
        return finish(&item, errors);
    };
    if signature::inputs(&function.sig).receiver.is_some() {
        errors.at(
            Span::call_site(),
            "`#[subscribe]` on a method needs `#[handlers]` on its impl block: \
             `#[handlers] impl MyService { .. }`",
        );
        return finish(&item, errors);
    }
    let subscription = match args::SubscribeArgs::parse(attr, Span::call_site(), &mut errors) {
        Ok(args) => validate::validate(&args, &mut errors),
        Err(syntax) => {
            errors.push(syntax);
            None
        }
    };
    let signature = args::subscriber(&function.sig, false, &mut errors);
    match (subscription, signature) {
        (Some(subscription), Some(signature)) if errors.is_empty() => {
            expand::free(&subscription, &signature, function)
        }
        _ => finish(&item, errors),
    }
}

fn finish(item: &Item, errors: Errors) -> TokenStream {
    match errors.finish() {
        Ok(()) => quote::quote!(#item),
        Err(errors) => diag::with_errors(item, &errors),
    }
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;
    use quote::quote;

    use super::expand;
    use crate::test_util::pretty;

    #[test]
    fn event_payload() {
        assert_snapshot!(pretty(expand(
            quote!("go.micro.srv.message"),
            quote! {
                async fn on_message(event: Event<Student>) -> rmicro::Result<()> {
                    println!("received {}", event.name);
                    Ok(())
                }
            },
        )));
    }

    #[test]
    fn plain_payload_queue_service_and_error_type() {
        assert_snapshot!(pretty(expand(
            quote!(
                "students.graded",
                queue = "graders",
                service = "student_service"
            ),
            quote! {
                pub async fn on_graded(student: Student) -> Result<(), StoreError> {
                    store().save(student).await
                }
            },
        )));
    }

    #[test]
    fn redelivery_policy() {
        assert_snapshot!(pretty(expand(
            quote!(
                "students.graded",
                queue = "graders",
                attempts = 5,
                backoff = "250ms",
                dead_letter = "students.graded.dead"
            ),
            quote! {
                async fn on_graded(student: Student) -> rmicro::Result<()> {
                    Ok(())
                }
            },
        )));
    }

    #[test]
    fn errors_keep_the_function() {
        assert_snapshot!(pretty(expand(
            quote!("", quene = "graders"),
            quote! {
                fn on_graded(student: Student, extra: u8) -> Option<()> {
                    None
                }
            },
        )));
    }
}
