//! Turns a checked `#[service]` configuration into the struct's `service_builder` and `run`.

use std::time::Duration;

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::ItemStruct;

use super::validate::Config;

/// The struct, unchanged, and an impl block with `service_builder()` and `run()`.
pub(crate) fn service(config: &Config, item: &ItemStruct) -> TokenStream {
    let ident = &item.ident;
    let builder = builder(config);
    let builder_doc = format!(
        " The builder of the `{}` service, set up as `#[service]` declares it.",
        config.name
    );
    let run_doc = format!(
        " Runs this value as the `{}` service until the process gets SIGINT or SIGTERM.",
        config.name
    );
    quote! {
        #item

        impl #ident {
            #[doc = #builder_doc]
            ///
            /// [`Self::run`] runs it; call it yourself to change settings in code, or to
            /// attach a handler value and routes of your own.
            #[must_use]
            pub fn service_builder() -> ::rmicro::__private::ServiceBuilder {
                #builder
            }

            #[doc = #run_doc]
            ///
            /// Settings from flags and `MICRO_*` environment variables override the
            /// attribute's. The endpoints are those of the `#[handlers]` impl block, if any,
            /// plus the `#[subscribe]` functions of this program.
            ///
            /// # Errors
            ///
            /// Fails when the configuration is invalid, or when the server, the registry or
            /// the broker cannot be started.
            pub async fn run(self) -> ::rmicro::__private::Result<()> {
                self.into_builder().run().await
            }

            /// Starts this value as the service and returns the running service, without
            /// reading flags or the environment and without waiting for a signal: for tests,
            /// and for programs that stop the service themselves with `Service::stop`.
            ///
            /// # Errors
            ///
            /// Fails when the server, the registry or the broker cannot be started.
            pub async fn start(self) -> ::rmicro::__private::Result<::rmicro::__private::Service> {
                self.into_builder().start().await
            }

            /// The builder of [`Self::service_builder`] with this value's endpoints and
            /// subscriptions attached: what [`Self::run`] and [`Self::start`] use.
            #[must_use]
            pub fn into_builder(self) -> ::rmicro::__private::ServiceBuilder {
                use ::rmicro::__private::{ViaHandlers as _, ViaNoHandlers as _};
                let routes = (&&::rmicro::__private::RoutesOf::<Self>::new()).routes();
                Self::service_builder().handler(self, routes)
            }
        }
    }
}

/// The same impl block with bodies that never run, emitted next to errors so that callers of
/// `run` do not report errors of their own.
pub(crate) fn dummy(item: &ItemStruct) -> TokenStream {
    let ident = &item.ident;
    quote! {
        impl #ident {
            #[allow(missing_docs, clippy::all)]
            pub fn service_builder() -> ::rmicro::__private::ServiceBuilder {
                ::core::unimplemented!()
            }

            #[allow(missing_docs, clippy::all)]
            pub async fn run(self) -> ::rmicro::__private::Result<()> {
                ::core::unimplemented!()
            }

            #[allow(missing_docs, clippy::all)]
            pub async fn start(self) -> ::rmicro::__private::Result<::rmicro::__private::Service> {
                ::core::unimplemented!()
            }

            #[allow(missing_docs, clippy::all)]
            pub fn into_builder(self) -> ::rmicro::__private::ServiceBuilder {
                ::core::unimplemented!()
            }
        }
    }
}

/// `Service::builder("name").version(..)...`, one call per configured value.
fn builder(config: &Config) -> TokenStream {
    let name = &config.name;
    let mut calls = TokenStream::new();
    let strings = [
        ("version", &config.version),
        ("registry", &config.registry),
        ("registry_address", &config.registry_address),
        ("broker", &config.broker),
        ("broker_address", &config.broker_address),
        ("address", &config.address),
        ("advertise", &config.advertise),
    ];
    for (method, value) in strings {
        if let Some(value) = value {
            let method = syn::Ident::new(method, proc_macro2::Span::call_site());
            calls.extend(quote!(.#method(#value)));
        }
    }
    if let Some(ttl) = config.ttl {
        let ttl = duration(ttl);
        calls.extend(quote!(.ttl(#ttl)));
    }
    if let Some(interval) = config.interval {
        let interval = duration(interval);
        calls.extend(quote!(.interval(#interval)));
    }
    for (key, value) in &config.metadata {
        calls.extend(quote!(.metadata(#key, #value)));
    }
    for (method, layer) in &config.layers {
        calls.extend(quote!(.#method(#layer)));
    }
    quote!(::rmicro::__private::Service::builder(#name) #calls)
}

/// The most readable constructor of `d`: `Duration::from_secs(10)`,
/// `Duration::from_millis(500)`, ...
fn duration(d: Duration) -> TokenStream {
    let call = |constructor: &str, amount: u64| {
        let constructor = syn::Ident::new(constructor, proc_macro2::Span::call_site());
        let amount = Literal::u64_unsuffixed(amount);
        quote!(::rmicro::__private::Duration::#constructor(#amount))
    };
    if d.subsec_nanos() == 0 {
        return call("from_secs", d.as_secs());
    }
    match u64::try_from(d.as_nanos()) {
        Ok(nanos) if nanos % 1_000_000 == 0 => call("from_millis", nanos / 1_000_000),
        Ok(nanos) if nanos % 1_000 == 0 => call("from_micros", nanos / 1_000),
        Ok(nanos) => call("from_nanos", nanos),
        Err(_) => {
            let secs = Literal::u64_unsuffixed(d.as_secs());
            let nanos = Literal::u32_unsuffixed(d.subsec_nanos());
            quote!(::rmicro::__private::Duration::new(#secs, #nanos))
        }
    }
}
