//! Protobuf: the process-wide table of prost codecs, keyed by `TypeId`, and the [`Proto`]
//! wrapper for prost types without serde.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use arc_swap::ArcSwap;

use super::{Decode, Encode, Format, JSON, PROTOBUF};
use crate::rpc::describe::short_type_name;
use crate::{Error, Result};

/// The protobuf codec of one `prost::Message` type, type-erased: what the table holds.
#[derive(Clone, Copy)]
pub struct ProtoCodec {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
    encode: fn(&dyn Any) -> Option<Vec<u8>>,
    /// Decodes into an `Option<T>` slot.
    decode: fn(&[u8], &mut dyn Any) -> std::result::Result<(), prost::DecodeError>,
}

impl fmt::Debug for ProtoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProtoCodec")
            .field(&self.type_name())
            .finish()
    }
}

fn encode_erased<T: prost::Message + 'static>(value: &dyn Any) -> Option<Vec<u8>> {
    value.downcast_ref::<T>().map(prost::Message::encode_to_vec)
}

fn decode_erased<T: prost::Message + Default + 'static>(
    body: &[u8],
    slot: &mut dyn Any,
) -> std::result::Result<(), prost::DecodeError> {
    if let Some(slot) = slot.downcast_mut::<Option<T>>() {
        *slot = Some(T::decode(body)?);
    }
    Ok(())
}

impl ProtoCodec {
    /// The codec of `T`.
    pub const fn of<T: prost::Message + Default + 'static>() -> ProtoCodec {
        ProtoCodec {
            type_id: TypeId::of::<T>,
            type_name: std::any::type_name::<T>,
            encode: encode_erased::<T>,
            decode: decode_erased::<T>,
        }
    }

    /// The Rust type's full name.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }

    fn type_id(&self) -> TypeId {
        (self.type_id)()
    }
}

/// A protobuf type submitted to the table at link time, with [`crate::protobuf!`] (what
/// `rmicro-build` output writes) or by the macros' generated code.
#[derive(Debug)]
pub struct ProtobufType {
    codec: fn() -> Option<ProtoCodec>,
}

fn some_codec<T: prost::Message + Default + 'static>() -> Option<ProtoCodec> {
    Some(ProtoCodec::of::<T>())
}

impl ProtobufType {
    /// The entry of `T`.
    pub const fn of<T: prost::Message + Default + 'static>() -> ProtobufType {
        ProtobufType {
            codec: some_codec::<T>,
        }
    }

    /// An entry that may turn out not to be protobuf: the macros' probe of a payload type.
    #[doc(hidden)]
    pub const fn probe(codec: fn() -> Option<ProtoCodec>) -> ProtobufType {
        ProtobufType { codec }
    }
}

inventory::collect!(ProtobufType);

type Table = HashMap<TypeId, ProtoCodec>;

static TABLE: OnceLock<ArcSwap<Table>> = OnceLock::new();

/// The table: built from the link-time entries on first use, then read without a lock.
fn table() -> &'static ArcSwap<Table> {
    TABLE.get_or_init(|| {
        let mut table = Table::new();
        for entry in inventory::iter::<ProtobufType> {
            if let Some(codec) = (entry.codec)() {
                table.insert(codec.type_id(), codec);
            }
        }
        ArcSwap::from_pointee(table)
    })
}

/// Registers `T`'s protobuf codec, so that `T` (a serde type deriving `prost::Message` too)
/// is encoded and decoded as protobuf when a message says `application/protobuf`, and
/// published and called with protobuf by default. Idempotent; cheap once registered.
pub fn register_protobuf<T: prost::Message + Default + 'static>() {
    register(ProtoCodec::of::<T>());
}

/// Adds `codec` to the table (copy-on-write: registrations happen at start-up).
pub(crate) fn register(codec: ProtoCodec) {
    let id = codec.type_id();
    let table = table();
    if table.load().contains_key(&id) {
        return;
    }
    table.rcu(|current| {
        let mut next = Table::clone(current);
        next.insert(id, codec);
        next
    });
    tracing::debug!(r#type = codec.type_name(), "protobuf codec registered");
}

/// The registered protobuf codec of `T`, if any.
pub fn protobuf_codec<T: ?Sized + 'static>() -> Option<ProtoCodec> {
    table().load().get(&TypeId::of::<T>()).copied()
}

pub(super) fn is_registered<T: 'static>() -> bool {
    table().load().contains_key(&TypeId::of::<T>())
}

fn not_registered<T>(id: &str) -> Error {
    let name = short_type_name(std::any::type_name::<T>());
    Error::unsupported_media_type(
        id,
        format!(
            "`{name}` has no protobuf codec: derive `prost::Message` on it and register it \
             (`rmicro::protobuf!({name})`, or generate it with `rmicro-build`), or send `{JSON}`"
        ),
    )
}

fn malformed(id: &str, err: &prost::DecodeError) -> Error {
    Error::bad_request(id, format!("malformed protobuf body: {err}"))
}

pub(super) fn decode_registered<T: 'static>(id: &str, body: &[u8]) -> Result<T> {
    let Some(codec) = protobuf_codec::<T>() else {
        return Err(not_registered::<T>(id));
    };
    let mut slot: Option<T> = None;
    (codec.decode)(body, &mut slot).map_err(|e| malformed(id, &e))?;
    slot.ok_or_else(|| {
        Error::internal_server_error(
            id,
            format!(
                "protobuf codec of `{}` decoded another type",
                codec.type_name()
            ),
        )
    })
}

pub(super) fn encode_registered<T: 'static>(id: &str, value: &T) -> Result<Vec<u8>> {
    let Some(codec) = protobuf_codec::<T>() else {
        return Err(not_registered::<T>(id));
    };
    (codec.encode)(value).ok_or_else(|| {
        Error::internal_server_error(
            id,
            format!(
                "protobuf codec of `{}` encoded another type",
                codec.type_name()
            ),
        )
    })
}

/// A `prost::Message` without serde derives, as an RPC request or response or an event
/// payload: protobuf only (a JSON message gets a 415 error naming the fix).
///
/// ```
/// use rmicro::codec::{Decode, Encode, Proto, PROTOBUF};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct Ping { #[prost(string, tag = "1")] text: String }
///
/// let body = Proto(Ping { text: "hi".into() }).encode("t", PROTOBUF)?;
/// assert_eq!(Proto::<Ping>::decode("t", PROTOBUF, &body)?.text, "hi");
/// assert_eq!(Proto::<Ping>::default_content_type(), PROTOBUF);
/// # Ok::<(), rmicro::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Proto<T>(pub T);

impl<T> Proto<T> {
    /// The message.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Proto<T> {
    fn from(value: T) -> Self {
        Proto(value)
    }
}

impl<T> std::ops::Deref for Proto<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Proto<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

fn protobuf_only<T>(id: &str, content_type: &str) -> Error {
    let name = short_type_name(std::any::type_name::<T>());
    Error::unsupported_media_type(
        id,
        format!(
            "`{name}` is protobuf only, got `{}`: send `{PROTOBUF}`, or derive \
             `serde::Serialize` and `serde::Deserialize` on `{name}` to accept JSON too",
            super::normalize(content_type)
        ),
    )
}

impl<T: prost::Message + Default> Decode for Proto<T> {
    fn decode(id: &str, content_type: &str, body: &[u8]) -> Result<Self> {
        match Format::of(content_type) {
            Some(Format::Protobuf) => T::decode(body).map(Proto).map_err(|e| malformed(id, &e)),
            _ => Err(protobuf_only::<T>(id, content_type)),
        }
    }
}

impl<T: prost::Message> Encode for Proto<T> {
    fn default_content_type() -> &'static str {
        PROTOBUF
    }

    fn encode(&self, id: &str, content_type: &str) -> Result<Vec<u8>> {
        match Format::of(content_type) {
            Some(Format::Protobuf) => Ok(self.0.encode_to_vec()),
            _ => Err(protobuf_only::<T>(id, content_type)),
        }
    }
}

/// Submits the protobuf codecs of prost message types to rmicro's table at link time, so that
/// they speak `application/protobuf` (and default to it) from the program's first line.
/// `rmicro-build` output writes this for every message it generates; write it yourself for
/// hand-written types deriving both serde and `prost::Message`.
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
/// pub struct Student { #[prost(string, tag = "1")] pub name: String }
///
/// rmicro::protobuf!(Student);
///
/// # fn main() {
/// use rmicro::codec::Encode;
/// assert_eq!(Student::default_content_type(), rmicro::codec::PROTOBUF);
/// # }
/// ```
#[macro_export]
macro_rules! protobuf {
    ($($ty:ty),+ $(,)?) => {
        $(
            $crate::__private::inventory::submit! {
                $crate::codec::ProtobufType::of::<$ty>()
            }
        )+
    };
}

/// Includes the Rust code `rmicro-build` generated for a proto package:
/// `pub mod message { rmicro::include_proto!("message"); }`.
#[macro_export]
macro_rules! include_proto {
    ($package:literal) => {
        ::core::include!(::core::concat!(
            ::core::env!("OUT_DIR"),
            "/",
            $package,
            ".rs"
        ));
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Both {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(int32, tag = "3")]
        grade: i32,
    }

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Linked {
        #[prost(string, tag = "1")]
        name: String,
    }

    crate::protobuf!(Linked);

    #[derive(Clone, PartialEq, prost::Message)]
    struct Bare {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn registration_gives_a_serde_type_protobuf() {
        let both = Both {
            name: "davie".into(),
            grade: 80,
        };
        // Before registration: JSON only, and protobuf is refused by name.
        assert_eq!(Both::default_content_type(), JSON);
        let err = both.encode("t", PROTOBUF).expect_err("unregistered");
        assert_eq!(err.code, 415);
        assert!(err.detail.contains("`Both`"), "{err}");

        register_protobuf::<Both>();
        register_protobuf::<Both>();
        assert_eq!(Both::default_content_type(), PROTOBUF);
        let body = both.encode("t", PROTOBUF).expect("protobuf");
        assert_eq!(body, prost::Message::encode_to_vec(&both));
        assert_eq!(Both::decode("t", PROTOBUF, &body).expect("decode"), both);
        let json = both.encode("t", JSON).expect("json");
        assert_eq!(json, br#"{"name":"davie","grade":80}"#);
        assert_eq!(
            protobuf_codec::<Both>().map(|c| c.type_name()),
            Some(std::any::type_name::<Both>())
        );
    }

    #[test]
    fn link_time_entries_are_in_the_table_from_the_start() {
        assert_eq!(Linked::default_content_type(), PROTOBUF);
        let err = Linked::decode("svc", "", &[0x0a, 0x05, b'd']).expect_err("truncated");
        assert_eq!((err.code, err.id.as_str()), (400, "svc"));
        assert!(err.detail.starts_with("malformed protobuf body"), "{err}");
    }

    #[test]
    fn proto_wraps_a_type_without_serde() {
        let bare = Proto(Bare { name: "x".into() });
        let body = bare.encode("t", "").expect("protobuf");
        assert_eq!(
            Proto::<Bare>::decode("t", PROTOBUF, &body).expect("decode"),
            bare
        );
        let err = Proto::<Bare>::decode("t", JSON, b"{}").expect_err("json");
        assert_eq!(err.code, 415);
        assert!(err.detail.contains("`Bare` is protobuf only"), "{err}");
        assert!(bare.encode("t", JSON).is_err());
    }
}
