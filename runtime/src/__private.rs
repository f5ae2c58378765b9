//! Items the macros' generated code names. Not a public API: no stability promise.

use std::marker::PhantomData;

pub use crate::rpc::describe::{DescribeFields, DescribeName, Describer};
pub use crate::service::{Service, ServiceBuilder};
pub use crate::{Error, Event, Result, Routes, broker, codec, registry};
pub use ::core::option::Option::{self, None, Some};
pub use ::core::result::Result::{Err, Ok};
pub use ::inventory;
pub use ::prost;
pub use ::serde;
pub use ::std::sync::Arc;
pub use ::std::time::Duration;
pub use ::tokio;

/// Implemented by `#[handlers]`: the endpoints and subscriptions of an impl block.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[handlers]` impl block",
    note = "add `#[rmicro::handlers]` to an `impl {Self}` block holding its endpoints"
)]
pub trait Handlers: Sized + Send + Sync + 'static {
    /// The routes of `Self`.
    fn routes() -> Routes<Self>;
}

/// Autoref dispatch: `(&&RoutesOf::<S>::new()).routes()` is `S::routes()` when `S` has a
/// `#[handlers]` block and empty routes otherwise, so a service with subscribers only needs
/// no empty impl block.
pub struct RoutesOf<S>(PhantomData<S>);

impl<S> RoutesOf<S> {
    /// The dispatcher.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// Picked when `S: Handlers`.
pub trait ViaHandlers<S> {
    /// `S::routes()`.
    fn routes(&self) -> Routes<S>;
}

impl<S: Handlers> ViaHandlers<S> for &RoutesOf<S> {
    fn routes(&self) -> Routes<S> {
        S::routes()
    }
}

/// Picked when `S` has no `#[handlers]` block.
pub trait ViaNoHandlers<S> {
    /// Empty routes.
    fn routes(&self) -> Routes<S>;
}

// No bounds on `S`: a service type that is not `Send + Sync` is then reported once, by
// `ServiceBuilder::handler`, rather than as a failed method lookup first.
impl<S> ViaNoHandlers<S> for RoutesOf<S> {
    fn routes(&self) -> Routes<S> {
        Routes::default()
    }
}

pub use crate::service::free::{FreeSubscriber, free_subscribers};

/// Autoref dispatch over a payload type: `(&&ProtoProbe::<T>::new()).protobuf_codec()` is
/// `T`'s protobuf codec when `T: prost::Message + Default` and `None` otherwise. The macros
/// register what it finds, so a type deriving both serde and prost speaks protobuf in the
/// service that names it without any registration by hand.
pub struct ProtoProbe<T>(PhantomData<fn() -> T>);

impl<T> ProtoProbe<T> {
    /// The probe.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// Picked when `T` is a prost message.
pub trait ViaProst {
    /// `T`'s codec.
    fn protobuf_codec(&self) -> Option<codec::ProtoCodec>;
}

impl<T: ::prost::Message + Default + 'static> ViaProst for &ProtoProbe<T> {
    fn protobuf_codec(&self) -> Option<codec::ProtoCodec> {
        Some(codec::ProtoCodec::of::<T>())
    }
}

/// Picked for any other type.
pub trait ViaNoProst {
    /// `None`.
    fn protobuf_codec(&self) -> Option<codec::ProtoCodec>;
}

impl<T> ViaNoProst for ProtoProbe<T> {
    fn protobuf_codec(&self) -> Option<codec::ProtoCodec> {
        None
    }
}

/// Registers what a probe found (`#[handlers]`, when its routes are built).
pub fn register_protobuf(codec: Option<codec::ProtoCodec>) {
    if let Some(codec) = codec {
        crate::codec::protobuf_register(codec);
    }
}

pub use crate::codec::{ProtoCodec, ProtobufType};

/// Used by generated code to point type errors at the user's payload type.
pub const fn assert_decode<T: codec::Decode>() {}

/// Used by generated code to point type errors at the user's response type.
pub const fn assert_encode<T: codec::Encode>() {}

/// Decodes a raw broker event for a free `#[subscribe]` function. Generated code names `T`
/// with the span of the user's payload type, so a type that cannot be decoded is reported
/// there (once, with `Decode`'s note).
pub fn decode_event<T: codec::Decode>(raw: broker::Event) -> Result<Event<T>> {
    Event::decode(raw)
}

/// Converts a handler's error. Generated code names `E` with the span of the user's error
/// type, so a type without the conversion is reported there.
pub fn into_error<E: Into<Error>>(error: E) -> Error {
    error.into()
}

/// What `#[rmicro::main]` runs before the user's body: logging from `RUST_LOG` (info by
/// default) unless the program installed a subscriber already, and ring as the process's one
/// rustls crypto provider (two providers in one process make rustls panic at the first TLS
/// connection).
pub fn init() {
    crate::service::init_logging();
    crate::service::install_crypto_provider();
}

/// What `#[rmicro::main]` runs after the user's body: exports the spans still buffered, when
/// traces are on.
pub async fn finish() {
    #[cfg(feature = "otel")]
    crate::otel::flush().await;
}
