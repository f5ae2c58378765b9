//! `#[handlers]` on a service's impl block: every `pub async fn` becomes an RPC endpoint named
//! `Type.Method`, every method marked `#[subscribe("topic")]` a subscription.

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Item, ItemImpl};

use crate::diag::{self, Errors};

/// Expands `#[handlers(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut item: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(error) => return not_an_impl(item, error),
    };
    if attr.is_empty() && item.generics.params.is_empty() && is_generated_handler_trait(&item) {
        return expand::generated_trait(&item);
    }
    let mut errors = Errors::new();
    let config = args::parse(attr, &mut item, &mut errors)
        .and_then(|block| validate::validate(block, &mut errors));
    match (errors.finish(), config) {
        (Ok(()), Some(config)) => expand::handlers(&config, &item),
        (Err(errors), _) => diag::with_errors(&item, &errors),
        (Ok(()), None) => quote!(#item),
    }
}

/// `impl StudentServiceHandler for S`: an impl of the handler trait `rmicro-build` generates
/// for a proto service (named `<Service>Handler`, with a provided `routes()`).
fn is_generated_handler_trait(item: &ItemImpl) -> bool {
    item.trait_.as_ref().is_some_and(|(bang, path, _)| {
        bang.is_none()
            && path
                .segments
                .last()
                .is_some_and(|s| s.ident.to_string().ends_with("Handler"))
    })
}

/// The error for `#[handlers]` on anything but an impl block.
fn not_an_impl(item: TokenStream, error: syn::Error) -> TokenStream {
    let Ok(other) = syn::parse2::<Item>(item.clone()) else {
        return diag::with_errors(item, &error);
    };
    let (what, head) = diag::item_kind(&other);
    let hint = match other {
        Item::Struct(_) => "; put `#[service]` on the struct",
        Item::Fn(_) => "; for a function that handles messages, use `#[subscribe(\"topic\")]`",
        _ => "",
    };
    let error = syn::Error::new_spanned(
        head,
        format!(
            "`#[handlers]` goes on the impl block that holds a service's endpoints, not {what}{hint}"
        ),
    );
    diag::with_errors(item, &error)
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;
    use quote::quote;

    use super::expand;
    use crate::test_util::pretty;

    #[test]
    fn a_generated_handler_trait() {
        assert_snapshot!(pretty(expand(
            quote!(),
            quote! {
                impl message::StudentServiceHandler for Students {
                    async fn get_student(&self, request: StudentRequest) -> rmicro::Result<Student> {
                        Ok(Student::default())
                    }
                }
            },
        )));
    }

    #[test]
    fn endpoints_and_subscribers() {
        assert_snapshot!(pretty(expand(
            quote!(),
            quote! {
                impl StudentService {
                    pub async fn get_student(&self, req: StudentRequest) -> Result<Student, rmicro::Error> {
                        Ok(Student { name: req.name })
                    }

                    pub async fn delete_student(&self, req: StudentRequest) -> Result<(), StoreError> {
                        self.store.delete(&req.name).await
                    }

                    #[subscribe("go.micro.srv.message")]
                    async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> {
                        Ok(())
                    }

                    #[subscribe("students.graded", queue = "graders", attempts = 4, dead_letter = "students.graded.dead")]
                    async fn on_graded(&self, student: Student) -> rmicro::Result<()> {
                        Ok(())
                    }

                    fn helper(&self) {}
                }
            },
        )));
    }

    #[test]
    fn an_empty_block() {
        assert_snapshot!(pretty(expand(quote!(), quote!(impl StudentService {}))));
    }

    #[test]
    fn errors_keep_the_block_without_subscribe_marks() {
        assert_snapshot!(pretty(expand(
            quote!(),
            quote! {
                impl StudentService {
                    pub async fn get_student(&mut self, req: StudentRequest) -> Student {
                        Student { name: req.name }
                    }

                    #[subscribe("")]
                    async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> {
                        Ok(())
                    }
                }
            },
        )));
    }
}
