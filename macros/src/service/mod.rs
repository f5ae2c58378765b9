//! `#[service(..)]` on a struct: the service's configuration, and its `service_builder()` and
//! `run()` methods.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::diag::{self, Errors};

/// Expands `#[service(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(error) => return diag::with_errors(item, &error),
    };
    let mut errors = Errors::new();
    validate::target(&item, &mut errors);
    let config = match args::Args::parse(attr, &mut errors) {
        Ok(args) => validate::validate(&args, &mut errors),
        Err(syntax) => {
            errors.push(syntax);
            None
        }
    };
    match (errors.finish(), config, &item) {
        (Ok(()), Some(config), Item::Struct(item)) => expand::service(&config, item),
        (Err(errors), _, Item::Struct(item)) if item.generics.params.is_empty() => {
            let dummy = expand::dummy(item);
            diag::with_errors(quote!(#item #dummy), &errors)
        }
        (Err(errors), _, item) => diag::with_errors(item, &errors),
        // `validate` yields a configuration only for a struct and without errors.
        (Ok(()), _, item) => quote!(#item),
    }
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;
    use quote::quote;

    use super::expand;
    use crate::test_util::pretty;

    #[test]
    fn seed_student_service() {
        assert_snapshot!(pretty(expand(
            quote!(
                name = "student_service",
                version = "v1.0.0",
                ttl = 10,
                interval = 5
            ),
            quote! {
                #[derive(Default)]
                pub struct StudentService {
                    classes: Vec<String>,
                }
            },
        )));
    }

    #[test]
    fn every_key() {
        assert_snapshot!(pretty(expand(
            quote!(
                name = "go.micro.srv.student",
                version = "latest",
                registry = "memory",
                registry_address = "127.0.0.1:8500",
                broker = "memory",
                broker_address = "127.0.0.1:0",
                address = "127.0.0.1:0",
                advertise = "10.0.0.1:8080",
                ttl = "1m30s",
                interval = "500ms",
                metadata(region = "eu", "app.kubernetes.io/name" = "student"),
                layer = auth::require_token("s3cret"),
                layer = tower::limit::ConcurrencyLimitLayer::new(64),
                call_layer = tower::timeout::TimeoutLayer::new(Duration::from_secs(5)),
                subscriber_layer = audit(),
                publisher_layer = audit(),
            ),
            quote!(
                struct StudentService;
            ),
        )));
    }

    #[test]
    fn errors_keep_the_struct_and_a_stand_in() {
        assert_snapshot!(pretty(expand(
            quote!(nmae = "student_service", registry = "consol", ttl = 0),
            quote!(
                struct StudentService(u8);
            ),
        )));
    }
}
