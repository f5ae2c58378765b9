//! Registers a free `#[subscribe]` function with the runtime.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Type};

use super::args::{Payload, SubscriberFn};
use super::validate::{Redelivery, Subscription};

/// An optional string as an `Option<&'static str>` expression.
pub(crate) fn option(value: Option<&str>) -> TokenStream {
    match value {
        Some(value) => quote!(::rmicro::__private::Some(#value)),
        None => quote!(::rmicro::__private::None),
    }
}

/// The runtime's `broker::Redelivery` that `policy` describes, as an expression.
pub(crate) fn redelivery(policy: &Redelivery) -> TokenStream {
    let Redelivery {
        attempts,
        backoff,
        dead_letter,
    } = policy;
    let mut expr = match attempts {
        Some(n) => quote!(::rmicro::__private::broker::Redelivery::new(#n)),
        None => {
            quote!(<::rmicro::__private::broker::Redelivery as ::core::default::Default>::default())
        }
    };
    if let Some(backoff) = backoff {
        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        let duration = if nanos % 1_000_000 == 0 {
            let millis = nanos / 1_000_000;
            quote!(::rmicro::__private::Duration::from_millis(#millis))
        } else {
            quote!(::rmicro::__private::Duration::from_nanos(#nanos))
        };
        expr = quote!(#expr.backoff(#duration));
    }
    if let Some(topic) = dead_letter {
        expr = quote!(#expr.dead_letter(#topic));
    }
    expr
}

/// `assert_decode::<T>();` at `T`'s span, so that a payload type that cannot be decoded is
/// reported on the user's type, with `Decode`'s note on how to fix it.
pub(crate) fn assert_decode(ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> ::rmicro::__private::assert_decode::<#ty>();)
}

/// `result.map_err(..)` converting a handler's error into `rmicro::Error`. The user's error
/// type, when the signature writes it out, is named with its span, so a type without the
/// conversion is reported there. (A closure rather than the function itself: passing the
/// function would check its bound a second time, at the attribute.)
pub(crate) fn map_err(result: TokenStream, error: Option<&Type>) -> TokenStream {
    let e = Ident::new("error", Span::mixed_site());
    match error {
        Some(ty) => quote!(#result.map_err(|#e| ::rmicro::__private::into_error::<#ty>(#e))),
        None => quote!(#result.map_err(::rmicro::__private::into_error)),
    }
}

/// The function, unchanged, and its `FreeSubscriber` submitted to the runtime's inventory,
/// with a probe of the payload type that submits its protobuf codec when it is a prost
/// message.
///
/// `decode_event::<T>` names the user's payload type with its span: that call is the check
/// that `T` can be decoded, reported on `T`.
pub(crate) fn free(
    subscription: &Subscription,
    function: &SubscriberFn,
    item: &ItemFn,
) -> TokenStream {
    let Subscription {
        topic,
        queue,
        service,
        redelivery: policy,
    } = subscription;
    let SubscriberFn { payload, error } = function;
    let function = &item.sig.ident;
    let name = format!("::{function}");
    let queue = option(queue.as_deref());
    let service = option(service.as_deref());
    let policy = match policy {
        Some(policy) => {
            let policy = redelivery(policy);
            quote!(::rmicro::__private::Some(|| #policy))
        }
        None => quote!(::rmicro::__private::None),
    };
    let ty = payload.ty();
    // Locals at mixed-site hygiene cannot collide with the user's names.
    let raw = Ident::new("raw", Span::mixed_site());
    let event = Ident::new("event", Span::mixed_site());
    let argument = match payload {
        Payload::Event(_) => quote!(#event),
        Payload::Plain(_) => quote!(#event.into_payload()),
    };
    let call = map_err(quote!(#function(#argument).await), error.as_ref());
    let allow = crate::signature::allow_unused_async();
    quote! {
        #allow
        #item

        const _: () = {
            const __RMICRO_SUBSCRIBER: ::rmicro::__private::FreeSubscriber =
                ::rmicro::__private::FreeSubscriber {
                    topic: #topic,
                    queue: #queue,
                    service: #service,
                    name: ::core::concat!(::core::module_path!(), #name),
                    redelivery: #policy,
                    handler: |#raw| {
                        ::std::boxed::Box::pin(async move {
                            let #event = ::rmicro::__private::decode_event::<#ty>(#raw)?;
                            #call
                        })
                    },
                };
            ::rmicro::__private::inventory::submit!(__RMICRO_SUBSCRIBER);
            fn __rmicro_protobuf() -> ::rmicro::__private::Option<::rmicro::__private::ProtoCodec> {
                use ::rmicro::__private::{ViaNoProst as _, ViaProst as _};
                (&&::rmicro::__private::ProtoProbe::<#ty>::new()).protobuf_codec()
            }
            ::rmicro::__private::inventory::submit!(
                ::rmicro::__private::ProtobufType::probe(__rmicro_protobuf)
            );
        };
    }
}
