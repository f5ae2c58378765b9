//! Free `#[subscribe]` functions: what the macro submits to the link-time inventory and how
//! a service finds them. (The macro reaches these through `__private`; they live here so that
//! `service` does not depend on `__private`.)

use futures::future::BoxFuture;

use crate::{Result, broker};

/// A `#[subscribe]` on a free function, collected at link time and wired into the service of
/// the same binary (or the one named by `service = ".."`).
#[derive(Debug)]
pub struct FreeSubscriber {
    /// The topic.
    pub topic: &'static str,
    /// The queue group, if any.
    pub queue: Option<&'static str>,
    /// The service it belongs to; `None` = the binary's only service.
    pub service: Option<&'static str>,
    /// The function's name, for logs and collision errors.
    pub name: &'static str,
    /// Its redelivery policy (`attempts`, `backoff`, `dead_letter`), if any.
    pub redelivery: Option<fn() -> broker::Redelivery>,
    /// Decodes the raw event and calls the user's function.
    pub handler: fn(broker::Event) -> BoxFuture<'static, Result<()>>,
}

inventory::collect!(FreeSubscriber);

/// Every free subscriber linked into this binary.
pub fn free_subscribers() -> impl Iterator<Item = &'static FreeSubscriber> {
    inventory::iter::<FreeSubscriber>.into_iter()
}
