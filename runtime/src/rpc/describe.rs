//! Descriptions of request and response types for the registry's endpoints.
//!
//! go-micro advertises each endpoint's request and response as a [`Value`] built by
//! reflection (`server/extractor.go`): for `type StudentRequest struct { Name string
//! `json:"name"` }` it writes `{"name":"StudentRequest","type":"StudentRequest","values":
//! [{"name":"name","type":"string","values":null}]}`. Rust has no reflection, so
//! [`describe`] drives the type's `Deserialize` impl with a deserializer that records which
//! field names it is asked for and which `deserialize_*` method each field calls, feeding
//! dummy values so that deserialization proceeds. Types use Go's names: `string`, `bool`,
//! `int32`, `uint64`, `float64`, `[]T` for sequences, `map[K]V` for maps, the struct's name
//! (with its fields as nested values) for structs. As in go-micro, nesting is described to
//! three levels; deeper fields are left out, which also bounds recursive types.
//!
//! ```
//! use rmicro::rpc::describe::describe;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct StudentRequest { name: String }
//!
//! let value = describe::<StudentRequest>();
//! assert_eq!(value.name, "StudentRequest");
//! assert_eq!(value.type_, "StudentRequest");
//! assert_eq!((value.values[0].name.as_str(), value.values[0].type_.as_str()), ("name", "string"));
//! ```
//!
//! Generated code picks the richest description available through autoref dispatch:
//! `(&&Describer::<T>::new()).value()` uses [`DescribeFields`] when `T: DeserializeOwned` and
//! falls back to [`DescribeName`] (the type's name, no fields) otherwise.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};

use crate::registry::Value;

/// Nesting depth (top level = 0) from which fields are no longer described, as go-micro's
/// extractor.
const MAX_DEPTH: usize = 3;
/// Nesting depth at which tracing gives up altogether (types nested this deep without an
/// `Option`, a sequence or a map in between).
const ABORT_DEPTH: usize = 64;

/// Describes `T` from its `Deserialize` impl: name and type from the type's (serde) name,
/// values from its fields.
pub fn describe<T: DeserializeOwned>() -> Value {
    let mut slot = Slot::default();
    // Whatever happens, what was recorded before an error is kept.
    let _ = T::deserialize(Tracer {
        depth: 0,
        slot: &mut slot,
    });
    let name = if slot.type_.is_empty() || slot.type_ == ANY {
        short_type_name(std::any::type_name::<T>())
    } else {
        slot.type_
    };
    Value {
        name: name.clone(),
        type_: name,
        values: slot.values,
    }
}

/// `std::any::type_name` without module paths: `alloc::vec::Vec<my::Student>` becomes
/// `Vec<Student>`.
pub fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment_start);
        } else {
            out.push(c);
            if !(c.is_alphanumeric() || c == '_') {
                segment_start = out.len();
            }
        }
    }
    out
}

/// The autoref dispatcher generated code builds: `(&&Describer::<T>::new()).value()`.
#[derive(Debug)]
pub struct Describer<T>(PhantomData<fn() -> T>);

impl<T> Describer<T> {
    /// The dispatcher for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// The full description, for types that implement `Deserialize` (picked first by autoref).
pub trait DescribeFields {
    /// The type's description with its fields.
    fn value(&self) -> Value;
}

/// The name-only description, for any other type.
pub trait DescribeName {
    /// The type's description without fields.
    fn value(&self) -> Value;
}

impl<T: DeserializeOwned> DescribeFields for &Describer<T> {
    fn value(&self) -> Value {
        describe::<T>()
    }
}

impl<T> DescribeName for Describer<T> {
    fn value(&self) -> Value {
        let name = short_type_name(std::any::type_name::<T>());
        Value {
            name: name.clone(),
            type_: name,
            values: Vec::new(),
        }
    }
}

/// The type recorded for values that deserialize themselves from anything.
const ANY: &str = "any";

/// What tracing one value recorded.
#[derive(Debug, Default)]
struct Slot {
    type_: String,
    values: Vec<Value>,
}

impl Slot {
    fn set(&mut self, type_: impl Into<String>) {
        if self.type_.is_empty() {
            self.type_ = type_.into();
        }
    }
}

#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

type TraceResult<T> = std::result::Result<T, TraceError>;

/// The recording deserializer for one value at nesting `depth`.
struct Tracer<'a> {
    depth: usize,
    slot: &'a mut Slot,
}

impl Tracer<'_> {
    /// Whether containers at this depth get content (one element, one entry, `Some`).
    fn feeds(&self) -> bool {
        self.depth < MAX_DEPTH
    }

    fn guard(&self) -> TraceResult<()> {
        if self.depth >= ABORT_DEPTH {
            Err(de::Error::custom("type nested too deeply to describe"))
        } else {
            Ok(())
        }
    }
}

macro_rules! scalar {
    ($($method:ident => $type:literal, $visit:ident($value:expr);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
                self.slot.set($type);
                visitor.$visit($value)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    scalar! {
        deserialize_bool => "bool", visit_bool(false);
        deserialize_i8 => "int8", visit_i8(0);
        deserialize_i16 => "int16", visit_i16(0);
        deserialize_i32 => "int32", visit_i32(0);
        deserialize_i64 => "int64", visit_i64(0);
        deserialize_i128 => "int128", visit_i128(0);
        deserialize_u8 => "uint8", visit_u8(0);
        deserialize_u16 => "uint16", visit_u16(0);
        deserialize_u32 => "uint32", visit_u32(0);
        deserialize_u64 => "uint64", visit_u64(0);
        deserialize_u128 => "uint128", visit_u128(0);
        deserialize_f32 => "float32", visit_f32(0.0);
        deserialize_f64 => "float64", visit_f64(0.0);
        deserialize_char => "string", visit_char(' ');
        deserialize_str => "string", visit_str("");
        deserialize_string => "string", visit_str("");
        deserialize_bytes => "[]uint8", visit_bytes(&[]);
        deserialize_byte_buf => "[]uint8", visit_bytes(&[]);
        deserialize_identifier => "string", visit_str("");
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
        self.slot.set(ANY);
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> TraceResult<V::Value> {
        self.slot.set(name);
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
        self.guard()?;
        if self.feeds() {
            // Transparent: the inner type describes the field.
            visitor.visit_some(self)
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> TraceResult<V::Value> {
        self.guard()?;
        self.slot.set(name);
        let mut inner = Slot::default();
        visitor.visit_newtype_struct(Tracer {
            depth: self.depth,
            slot: &mut inner,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
        self.guard()?;
        let mut elems = [Slot::default()];
        let count = usize::from(self.feeds());
        let result = visitor.visit_seq(Elements {
            depth: self.depth,
            slots: &mut elems[..count],
            next: 0,
        });
        let [elem] = elems;
        let elem = if elem.type_.is_empty() {
            ANY.to_owned()
        } else {
            elem.type_
        };
        self.slot.set(format!("[]{elem}"));
        result
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> TraceResult<V::Value> {
        self.guard()?;
        let mut elems: Vec<Slot> = (0..len).map(|_| Slot::default()).collect();
        let result = visitor.visit_seq(Elements {
            depth: self.depth,
            slots: &mut elems,
            next: 0,
        });
        let types: Vec<&str> = elems.iter().map(|s| s.type_.as_str()).collect();
        self.slot.set(format!("({})", types.join(", ")));
        result
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> TraceResult<V::Value> {
        self.slot.set(name);
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> TraceResult<V::Value> {
        self.guard()?;
        let (mut key, mut value) = (Slot::default(), Slot::default());
        let result = visitor.visit_map(Entry {
            depth: self.depth,
            remaining: usize::from(self.feeds()),
            key: &mut key,
            value: &mut value,
        });
        let or_any = |s: Slot| {
            if s.type_.is_empty() {
                ANY.to_owned()
            } else {
                s.type_
            }
        };
        self.slot
            .set(format!("map[{}]{}", or_any(key), or_any(value)));
        result
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> TraceResult<V::Value> {
        self.guard()?;
        self.slot.set(name);
        let record = self.depth + 1 < MAX_DEPTH;
        visitor.visit_map(Fields {
            depth: self.depth + 1,
            fields,
            next: 0,
            values: record.then_some(&mut self.slot.values),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> TraceResult<V::Value> {
        self.guard()?;
        self.slot.set(name);
        let Some(first) = variants.first() else {
            return Err(de::Error::custom(format!("enum `{name}` has no variant")));
        };
        visitor.visit_enum(Variant {
            depth: self.depth,
            name: first,
        })
    }
}

/// Feeds one traced element per slot.
struct Elements<'a> {
    depth: usize,
    slots: &'a mut [Slot],
    next: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> TraceResult<Option<T::Value>> {
        let Some(slot) = self.slots.get_mut(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(Tracer {
            depth: self.depth,
            slot,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.slots.len() - self.next)
    }
}

/// Feeds at most one traced key and value.
struct Entry<'a> {
    depth: usize,
    remaining: usize,
    key: &'a mut Slot,
    value: &'a mut Slot,
}

impl<'de> MapAccess<'de> for Entry<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> TraceResult<Option<K::Value>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        seed.deserialize(Tracer {
            depth: self.depth,
            slot: self.key,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> TraceResult<V::Value> {
        seed.deserialize(Tracer {
            depth: self.depth,
            slot: self.value,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

/// Feeds a struct's fields by name, recording each field's description when `values` is
/// given.
struct Fields<'a> {
    depth: usize,
    fields: &'static [&'static str],
    next: usize,
    values: Option<&'a mut Vec<Value>>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> TraceResult<Option<K::Value>> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let key: StrDeserializer<'_, TraceError> = field.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> TraceResult<V::Value> {
        let mut slot = Slot::default();
        let result = seed.deserialize(Tracer {
            depth: self.depth,
            slot: &mut slot,
        });
        if let (Some(values), Some(field)) = (self.values.as_deref_mut(), self.next.checked_sub(1))
        {
            values.push(Value {
                name: self
                    .fields
                    .get(field)
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
                type_: slot.type_,
                values: slot.values,
            });
        }
        result
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

/// Feeds an enum's first variant.
struct Variant {
    depth: usize,
    name: &'static str,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> TraceResult<(V::Value, Self)> {
        let name: StrDeserializer<'_, TraceError> = self.name.into_deserializer();
        Ok((seed.deserialize(name)?, self))
    }
}

impl<'de> VariantAccess<'de> for Variant {
    type Error = TraceError;

    fn unit_variant(self) -> TraceResult<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> TraceResult<T::Value> {
        seed.deserialize(Tracer {
            depth: self.depth + 1,
            slot: &mut Slot::default(),
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> TraceResult<V::Value> {
        Tracer {
            depth: self.depth + 1,
            slot: &mut Slot::default(),
        }
        .deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> TraceResult<V::Value> {
        Tracer {
            depth: self.depth + 1,
            slot: &mut Slot::default(),
        }
        .deserialize_struct(self.name, fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    fn v(name: &str, type_: &str, values: Vec<Value>) -> Value {
        Value {
            name: name.to_owned(),
            type_: type_.to_owned(),
            values,
        }
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Address {
        street: String,
        number: u32,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Student {
        name: String,
        grade: i32,
        #[serde(rename = "studentId")]
        id: i64,
        score: f64,
        active: bool,
        address: Address,
        tags: Vec<String>,
        nickname: Option<String>,
        friends: Vec<Address>,
        marks: HashMap<String, f32>,
        #[serde(skip)]
        cache: u8,
    }

    #[test]
    fn struct_fields_get_json_names_and_go_types() {
        let value = describe::<Student>();
        let expected = v(
            "Student",
            "Student",
            vec![
                v("name", "string", vec![]),
                v("grade", "int32", vec![]),
                v("studentId", "int64", vec![]),
                v("score", "float64", vec![]),
                v("active", "bool", vec![]),
                v(
                    "address",
                    "Address",
                    vec![v("street", "string", vec![]), v("number", "uint32", vec![])],
                ),
                v("tags", "[]string", vec![]),
                v("nickname", "string", vec![]),
                v("friends", "[]Address", vec![]),
                v("marks", "map[string]float32", vec![]),
            ],
        );
        assert_eq!(value, expected);
    }

    #[test]
    fn go_micros_example_serialises_as_go_micro_does() {
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct StudentRequest {
            name: String,
        }
        let json = serde_json::to_string(&describe::<StudentRequest>()).expect("json");
        assert_eq!(
            json,
            r#"{"name":"StudentRequest","type":"StudentRequest","values":[{"name":"name","type":"string","values":[]}]}"#
        );
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
        parent: Option<Box<Tree>>,
        index: BTreeMap<String, Tree>,
    }

    #[test]
    fn recursive_types_stop_at_go_micros_depth() {
        let value = describe::<Tree>();
        assert_eq!(value.type_, "Tree");
        let parent = &value.values[2];
        assert_eq!(
            (parent.name.as_str(), parent.type_.as_str()),
            ("parent", "Tree")
        );
        // Fields of the nested `Tree` are described; theirs are not.
        let grand = &parent.values[2];
        assert_eq!(
            (grand.name.as_str(), grand.type_.as_str()),
            ("parent", "Tree")
        );
        assert!(grand.values.is_empty());
        assert_eq!(value.values[1].type_, "[]Tree");
        assert_eq!(value.values[3].type_, "map[string]Tree");
    }

    #[test]
    fn enums_units_and_scalars_do_not_panic() {
        #[allow(dead_code)]
        #[derive(Deserialize)]
        enum Shape {
            Point,
            Circle { radius: f64 },
            Pair(i32, i32),
        }
        #[derive(Deserialize)]
        struct Unit;
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Id(u64);
        #[derive(Deserialize)]
        enum Never {}
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Loose {
            A(String),
            B(i32),
        }

        assert_eq!(describe::<Shape>(), v("Shape", "Shape", vec![]));
        assert_eq!(describe::<Unit>(), v("Unit", "Unit", vec![]));
        assert_eq!(describe::<Id>(), v("Id", "Id", vec![]));
        assert_eq!(describe::<Never>(), v("Never", "Never", vec![]));
        assert_eq!(describe::<Loose>(), v("Loose", "Loose", vec![]));
        assert_eq!(describe::<String>(), v("string", "string", vec![]));
        assert_eq!(describe::<()>(), v("()", "()", vec![]));
        assert_eq!(describe::<Vec<i32>>(), v("[]int32", "[]int32", vec![]));
        assert_eq!(describe::<(i32, String)>().type_, "(int32, string)");
        assert_eq!(describe::<serde_json::Value>().type_, "Value");
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows are the dispatch under test
    fn autoref_dispatch_picks_fields_when_it_can() {
        #[allow(unused_imports)]
        use super::{DescribeFields as _, DescribeName as _};
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Req {
            name: String,
        }
        struct Opaque;

        let rich = (&&Describer::<Req>::new()).value();
        assert_eq!(rich.values, vec![v("name", "string", vec![])]);
        let plain = (&&Describer::<Opaque>::new()).value();
        assert_eq!(plain, v("Opaque", "Opaque", vec![]));
        let generic = (&&Describer::<Vec<Opaque>>::new()).value();
        assert_eq!(generic.type_, "Vec<Opaque>");
    }

    #[test]
    fn short_names_drop_module_paths() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<my::mod_a::Student>"),
            "Vec<Student>"
        );
        assert_eq!(short_type_name("(a::B, &c::D)"), "(B, &D)");
        assert_eq!(short_type_name("u32"), "u32");
    }
}
