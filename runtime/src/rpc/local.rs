//! Calls to a service running in the same process, as go-micro v6's `client.Local()`:
//! [`crate::rpc::Client::call_local`] runs the endpoint's handler directly when a service of
//! this process serves it with the very request and reply types of the call, skipping the
//! network, the codec, the server's layers and its metrics. Anything else (a service that is
//! not in this process, other types) is an ordinary call.
//!
//! Every running [`crate::Service`] puts its typed endpoints in a process-wide table when it
//! starts and takes them out when it stops (or is dropped); a name served twice in one process
//! answers from the latest to start.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use futures::future::BoxFuture;

use crate::Result;

/// A typed endpoint, its types erased: a [`Call`] of its request and reply types.
pub(crate) type Typed = Arc<dyn Any + Send + Sync>;

/// A typed endpoint as a local call finds it.
pub(crate) type Call<Req, Resp> =
    Arc<dyn Fn(Req) -> BoxFuture<'static, Result<Resp>> + Send + Sync>;

/// Erases the types of `call`.
pub(crate) fn typed<Req: 'static, Resp: 'static>(call: Call<Req, Resp>) -> Typed {
    Arc::new(call)
}

type Endpoints = Arc<HashMap<String, Typed>>;

/// Service name → the running instances (their registration's id and endpoints), oldest
/// first.
type Table = HashMap<String, Vec<(u64, Endpoints)>>;

static TABLE: LazyLock<RwLock<Table>> = LazyLock::new(RwLock::default);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A running service's place in the table, left when this is dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    service: String,
    id: u64,
}

/// Puts `endpoints` of `service` in the table.
pub(crate) fn register(service: &str, endpoints: HashMap<String, Typed>) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    TABLE
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(service.to_owned())
        .or_default()
        .push((id, Arc::new(endpoints)));
    Registration {
        service: service.to_owned(),
        id,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = TABLE.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(instances) = table.get_mut(&self.service) {
            instances.retain(|(id, _)| *id != self.id);
            if instances.is_empty() {
                table.remove(&self.service);
            }
        }
    }
}

/// The handler of `endpoint` of `service` in this process, if it takes `Req` and returns
/// `Resp`.
pub(crate) fn find<Req: 'static, Resp: 'static>(
    service: &str,
    endpoint: &str,
) -> Option<Call<Req, Resp>> {
    let table = TABLE.read().unwrap_or_else(PoisonError::into_inner);
    let (_, endpoints) = table.get(service)?.last()?;
    endpoints
        .get(endpoint)?
        .downcast_ref::<Call<Req, Resp>>()
        .cloned()
}
