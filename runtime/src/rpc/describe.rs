//! Endpoint descriptions. (Being written.)
use std::marker::PhantomData;
use crate::registry::Value;
/// Describer.
#[derive(Debug)]
pub struct Describer<T>(PhantomData<T>);
impl<T> Describer<T> {
    /// New.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self { Self(PhantomData) }
}
/// Fields.
pub trait DescribeFields { /// v
 fn value(&self) -> Value; }
/// Name.
pub trait DescribeName { /// v
 fn value(&self) -> Value; }
impl<T> DescribeName for Describer<T> { fn value(&self) -> Value { Value { name: std::any::type_name::<T>().rsplit("::").next().unwrap_or("").to_owned(), type_: String::new(), values: vec![] } } }
