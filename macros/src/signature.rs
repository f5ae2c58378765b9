//! Reading the shape of the user's functions: receiver, arguments, `Result` return types and
//! `Event<T>` payloads. Types are only looked at syntactically here; whether they can be
//! decoded or encoded is left to the compiler, through spanned assertions in the expansion.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{
    FnArg, GenericArgument, GenericParam, PatType, PathArguments, Receiver, ReturnType, Signature,
    Type,
};

use crate::diag::Errors;

/// The arguments of a signature: its receiver, if any, and the others.
pub(crate) struct Inputs<'a> {
    pub(crate) receiver: Option<&'a Receiver>,
    pub(crate) args: Vec<&'a PatType>,
}

pub(crate) fn inputs(sig: &Signature) -> Inputs<'_> {
    let mut receiver = None;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r),
            FnArg::Typed(arg) => args.push(arg),
        }
    }
    Inputs { receiver, args }
}

/// The span of the parentheses around the arguments.
pub(crate) fn parens(sig: &Signature) -> Span {
    sig.paren_token.span.join()
}

/// `fn name(..) -> Output`, without attributes, for errors about the signature as a whole.
pub(crate) fn head(sig: &Signature) -> TokenStream {
    let Signature {
        asyncness,
        fn_token,
        ident,
        output,
        ..
    } = sig;
    let mut tokens = quote!(#asyncness #fn_token #ident);
    sig.paren_token
        .surround(&mut tokens, |tokens| sig.inputs.to_tokens(tokens));
    output.to_tokens(&mut tokens);
    tokens
}

/// Whether the receiver is `&self` (or `self: &Self`).
pub(crate) fn is_shared_self(receiver: &Receiver) -> bool {
    receiver.mutability.is_none()
        && matches!(&*receiver.ty, Type::Reference(r) if r.mutability.is_none())
}

/// The `T` of a return type `Result<T, ..>`: any path whose last segment is `Result` with
/// type arguments, so `Result<T, E>`, `rmicro::Result<T>` and `std::result::Result<T, E>`.
pub(crate) fn result_ok(output: &ReturnType) -> Option<&Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    first_type_arg(ty, "Result")
}

/// The `E` of a return type `Result<T, E>`; `None` for `rmicro::Result<T>` and other
/// one-argument aliases.
pub(crate) fn result_err(output: &ReturnType) -> Option<&Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    type_args(ty, "Result").nth(1)
}

/// The `T` of `Requests<T>` (a stream's incoming side; any path ending in `Requests`).
pub(crate) fn requests_item(ty: &Type) -> Option<&Type> {
    first_type_arg(ty, "Requests")
}

/// The `T` of `Replies<T>` (a stream's outgoing side; any path ending in `Replies`).
pub(crate) fn replies_item(ty: &Type) -> Option<&Type> {
    first_type_arg(ty, "Replies")
}

/// The `T` of `Event<T>` (any path ending in `Event`).
pub(crate) fn event_payload(ty: &Type) -> Option<&Type> {
    first_type_arg(ty, "Event")
}

fn first_type_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    type_args(ty, name).next()
}

/// The type arguments of `ty` if it is a path whose last segment is `name`.
fn type_args<'a>(ty: &'a Type, name: &str) -> impl Iterator<Item = &'a Type> {
    let args = match ungroup(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .filter(|last| last.ident == name)
            .and_then(|last| match &last.arguments {
                PathArguments::AngleBracketed(args) => Some(&args.args),
                _ => None,
            }),
        _ => None,
    };
    args.into_iter().flatten().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        ty => ty,
    }
}

/// Whether `ty` is `()`.
pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Tuple(t) if t.elems.is_empty())
}

/// Records an error for type or const parameters: the generated code names the function
/// with concrete types.
pub(crate) fn reject_generics(sig: &Signature, what: &str, errors: &mut Errors) {
    let generic = sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)));
    if generic {
        errors.spanned(&sig.generics, format!("{what} cannot be generic"));
    }
}

/// `#[allow(clippy::unused_async)]`: handlers must be `async fn`s, awaiting or not, so
/// clippy's advice to drop the `async` of one that does not await cannot be followed.
pub(crate) fn allow_unused_async() -> syn::Attribute {
    syn::parse_quote!(#[allow(clippy::unused_async)])
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    #[test]
    fn results_are_found_by_their_last_segment() {
        let ok = |output: ReturnType| result_ok(&output).map(|t| t.to_token_stream().to_string());
        assert_eq!(
            ok(parse_quote!(-> Result<Student, Error>)).as_deref(),
            Some("Student")
        );
        assert_eq!(
            ok(parse_quote!(-> rmicro::Result<Student>)).as_deref(),
            Some("Student")
        );
        assert_eq!(
            ok(parse_quote!(-> ::std::result::Result<Vec<u8>, E>)).as_deref(),
            Some("Vec < u8 >")
        );
        assert_eq!(ok(parse_quote!(-> Student)), None);
        assert_eq!(ok(parse_quote!(-> Option<Student>)), None);
        assert_eq!(ok(ReturnType::Default), None);
        let err = |output: ReturnType| result_err(&output).map(|t| t.to_token_stream().to_string());
        assert_eq!(
            err(parse_quote!(-> Result<Student, MyError>)).as_deref(),
            Some("MyError")
        );
        assert_eq!(err(parse_quote!(-> rmicro::Result<Student>)), None);
    }

    #[test]
    fn event_payloads() {
        let payload = |ty: Type| event_payload(&ty).map(|t| t.to_token_stream().to_string());
        assert_eq!(
            payload(parse_quote!(Event<Student>)).as_deref(),
            Some("Student")
        );
        assert_eq!(
            payload(parse_quote!(rmicro::Event<Student>)).as_deref(),
            Some("Student")
        );
        assert_eq!(payload(parse_quote!(Student)), None);
        assert!(is_unit(&parse_quote!(())));
        assert!(!is_unit(&parse_quote!((u8,))));
    }

    #[test]
    fn receivers() {
        let sig = |sig: Signature| inputs(&sig).receiver.is_some_and(is_shared_self);
        assert!(sig(parse_quote!(fn f(&self))));
        assert!(sig(parse_quote!(fn f(&'a self))));
        assert!(sig(parse_quote!(fn f(self: &Self))));
        assert!(!sig(parse_quote!(fn f(&mut self))));
        assert!(!sig(parse_quote!(fn f(self))));
        assert!(!sig(parse_quote!(fn f(self: Arc<Self>))));
        assert!(!sig(parse_quote!(fn f(x: u8))));
    }
}
