//! `#[rmicro::main]` on `async fn main()`: tokio's multi-threaded runtime, with rmicro's set-up
//! run first. Small enough for one module; its phases are the three functions below.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Item, ItemFn};

use crate::diag::{self, Errors};

/// Expands `#[rmicro::main(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return not_a_function(item, error),
    };
    let mut errors = Errors::new();
    validate(&attr, &function, &mut errors);
    match errors.finish() {
        Ok(()) => expand_main(&function),
        Err(errors) => diag::with_errors(stub(&function), &errors),
    }
}

/// The rules: no arguments to the attribute, an `async fn` without parameters.
fn validate(attr: &TokenStream, function: &ItemFn, errors: &mut Errors) {
    if !attr.is_empty() {
        errors.spanned(attr, "`#[rmicro::main]` takes no arguments");
    }
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(&sig.generics, "the main function cannot be generic");
    }
    if !sig.inputs.is_empty() {
        errors.spanned(
            &sig.inputs,
            "the main function cannot take arguments; a service reads its flags and environment \
             itself when it runs",
        );
    }
}

/// `fn main() { async fn main() { body } init(); runtime.block_on(main() then finish()) }`.
fn expand_main(function: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = &sig.ident;
    let output = &sig.output;
    quote! {
        #(#attrs)*
        #vis fn #name() #output {
            async fn #name() #output #block

            ::rmicro::__private::init();
            ::rmicro::__private::tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("cannot start the tokio runtime")
                .block_on(async {
                    let output = #name().await;
                    ::rmicro::__private::finish().await;
                    output
                })
        }
    }
}

/// A synchronous stand-in emitted next to errors, so that the function's own mistakes still
/// show and nothing else breaks because of the attribute's.
fn stub(function: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = &sig.ident;
    let output = &sig.output;
    // With parameters, the body would only add errors about the names they bind.
    let body = if sig.inputs.is_empty() {
        quote!(let _ = async move #block;)
    } else {
        TokenStream::new()
    };
    quote! {
        #(#attrs)*
        #vis fn #name() #output {
            #body
            ::core::unimplemented!()
        }
    }
}

fn not_a_function(item: TokenStream, error: syn::Error) -> TokenStream {
    let Ok(other) = syn::parse2::<Item>(item.clone()) else {
        return diag::with_errors(item, &error);
    };
    let (what, head) = diag::item_kind(&other);
    let error = syn::Error::new_spanned(
        head,
        format!("`#[rmicro::main]` goes on `async fn main()`, not {what}"),
    );
    diag::with_errors(item, &error)
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn check(attr: TokenStream, function: ItemFn) -> Vec<String> {
        let mut errors = Errors::new();
        validate(&attr, &function, &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn an_async_fn_without_parameters() {
        assert!(
            check(
                quote!(),
                parse_quote!(
                    async fn main() {}
                )
            )
            .is_empty()
        );
        assert!(
            check(
                quote!(),
                parse_quote!(
                    async fn start() -> rmicro::Result<()> {
                        Ok(())
                    }
                )
            )
            .is_empty()
        );
        assert_eq!(
            check(
                quote!(flavor = "current_thread"),
                parse_quote!(
                    fn main<T>(args: T) {}
                )
            ),
            [
                "`#[rmicro::main]` takes no arguments",
                "the `async` keyword is missing from the function declaration",
                "the main function cannot be generic",
                "the main function cannot take arguments; a service reads its flags and \
                 environment itself when it runs",
            ]
        );
    }
}

#[cfg(test)]
mod snapshots {
    use insta::assert_snapshot;
    use quote::quote;

    use super::expand;
    use crate::test_util::pretty;

    #[test]
    fn main_returning_a_result() {
        assert_snapshot!(pretty(expand(
            quote!(),
            quote! {
                async fn main() -> rmicro::Result<()> {
                    StudentService::default().run().await
                }
            },
        )));
    }

    #[test]
    fn errors_give_a_synchronous_stand_in() {
        assert_snapshot!(pretty(expand(
            quote!(),
            quote! {
                /// Serves students.
                pub fn main() {
                    println!("hello");
                }
            },
        )));
    }
}
