//! Turns a checked `#[handlers]` block into its `Handlers` impl: the routes table.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens as _, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl, Type};

use super::args::Streaming;
use super::validate::{Config, Endpoint, Subscriber};
use crate::subscribe::args::{Payload, SubscriberFn};
use crate::subscribe::{assert_decode, map_err, option, redelivery};

/// The impl block (without its `#[subscribe]` marks) and `impl Handlers for S`.
pub(crate) fn handlers(config: &Config, item: &ItemImpl) -> TokenStream {
    let self_ty = &item.self_ty;
    let mut asserts = TokenStream::new();
    let mut probes = TokenStream::new();
    let mut probed = std::collections::HashSet::new();
    let mut register_protobuf = |ty: &Type| {
        if probed.insert(ty.to_token_stream().to_string()) {
            self::register_protobuf(ty)
        } else {
            TokenStream::new()
        }
    };
    let mut routes = TokenStream::new();
    for endpoint in &config.endpoints {
        asserts.extend(assert_decode(&endpoint.request));
        asserts.extend(assert_encode(&endpoint.response));
        probes.extend(register_protobuf(&endpoint.request));
        probes.extend(register_protobuf(&endpoint.response));
        routes.extend(self::endpoint(endpoint));
    }
    for subscriber in &config.subscribers {
        let payload = subscriber.function.payload.ty();
        asserts.extend(assert_decode(payload));
        probes.extend(register_protobuf(payload));
        routes.extend(self::subscriber(subscriber));
    }
    if !probes.is_empty() {
        probes = quote! {
            use ::rmicro::__private::{ViaNoProst as _, ViaProst as _};
            #probes
        };
    }
    let describe = if config.endpoints.is_empty() {
        TokenStream::new()
    } else {
        quote!(
            use ::rmicro::__private::{DescribeFields as _, DescribeName as _};
        )
    };
    quote! {
        #item

        impl ::rmicro::__private::Handlers for #self_ty {
            fn routes() -> ::rmicro::__private::Routes<Self> {
                #describe
                #asserts
                #probes
                ::rmicro::__private::Routes::new()
                    #routes
            }
        }
    }
}

/// `assert_encode::<T>();` at `T`'s span (see `assert_decode`).
fn assert_encode(ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> ::rmicro::__private::assert_encode::<#ty>();)
}

/// Registers `T`'s protobuf codec when `T` is a prost message (autoref dispatch; nothing
/// otherwise), so a type deriving both serde and prost speaks protobuf in this service.
fn register_protobuf(ty: &Type) -> TokenStream {
    quote! {
        ::rmicro::__private::register_protobuf(
            (&&::rmicro::__private::ProtoProbe::<#ty>::new()).protobuf_codec(),
        );
    }
}

/// The registry's description of `T`, by autoref dispatch: its fields when it has them, its
/// name otherwise.
fn describe(ty: &Type) -> TokenStream {
    quote!((&&::rmicro::__private::Describer::<#ty>::new()).value())
}

/// Locals at mixed-site hygiene, which cannot collide with the user's names.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn endpoint(endpoint: &Endpoint) -> TokenStream {
    let Endpoint {
        name,
        method,
        streaming,
        request,
        response,
        error,
        doc,
    } = endpoint;
    let (this, req) = (local("this"), local("req"));
    let (requests, replies) = (local("requests"), local("replies"));
    let describe_request = describe(request);
    let describe_response = describe(response);
    let description = doc
        .as_deref()
        .map(|doc| quote!(.description(#name, #doc)))
        .unwrap_or_default();
    let requests_ty = quote!(::rmicro::rpc::stream::Requests<#request>);
    let replies_ty = quote!(::rmicro::rpc::stream::Replies<#response>);
    let (route, arguments, call) = match streaming {
        None => (
            quote!(endpoint),
            quote!(#req: #request),
            quote!(#this.#method(#req)),
        ),
        Some(Streaming::Server) => (
            quote!(server_stream),
            quote!(#req: #request, #replies: #replies_ty),
            quote!(#this.#method(#req, #replies)),
        ),
        Some(Streaming::Client) => (
            quote!(client_stream),
            quote!(#requests: #requests_ty),
            quote!(#this.#method(#requests)),
        ),
        Some(Streaming::Bidirectional) => (
            quote!(bidi_stream),
            quote!(#requests: #requests_ty, #replies: #replies_ty),
            quote!(#this.#method(#requests, #replies)),
        ),
    };
    let call = map_err(quote!(#call.await), error.as_ref());
    quote! {
        .#route::<#request, #response, _, _>(
            #name,
            #describe_request,
            #describe_response,
            |#this: ::rmicro::__private::Arc<Self>, #arguments| async move {
                #call
            },
        )
        #description
    }
}

fn subscriber(subscriber: &Subscriber) -> TokenStream {
    let Subscriber {
        subscription,
        method,
        function: SubscriberFn { payload, error },
    } = subscriber;
    let topic = &subscription.topic;
    let queue = option(subscription.queue.as_deref());
    let ty = payload.ty();
    let (this, event) = (local("this"), local("event"));
    let argument = match payload {
        Payload::Event(_) => quote!(#event),
        Payload::Plain(_) => quote!(#event.into_payload()),
    };
    let call = map_err(quote!(#this.#method(#argument).await), error.as_ref());
    let policy = subscription.redelivery.as_ref().map(|policy| {
        let policy = redelivery(policy);
        quote!(.redelivery(#policy))
    });
    quote! {
        .subscription::<#ty, _, _>(
            #topic,
            #queue,
            |#this: ::rmicro::__private::Arc<Self>, #event: ::rmicro::__private::Event<#ty>| async move {
                #call
            },
        )
        #policy
    }
}

/// `#[handlers] impl StudentServiceHandler for S { .. }`: the impl unchanged, and `S`'s routes
/// are the generated trait's, so `#[service]`'s `run()` serves the proto service's endpoints.
pub(crate) fn generated_trait(item: &syn::ItemImpl) -> TokenStream {
    let self_ty = &item.self_ty;
    let trait_path = item.trait_.as_ref().map(|(_, path, _)| path);
    quote! {
        #item

        impl ::rmicro::__private::Handlers for #self_ty {
            fn routes() -> ::rmicro::__private::Routes<Self> {
                <Self as #trait_path>::routes()
            }
        }
    }
}
