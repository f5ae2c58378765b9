//! `Client::call_local`: a call to a service running in this process runs its handler
//! directly when the types match (no network: the caller's registry does not even know the
//! service), and is an ordinary call otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmicro::__private::Handlers as _;
use rmicro::broker::memory::MemoryBroker;
use rmicro::prelude::*;
use rmicro::registry::memory::MemoryRegistry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tick {
    n: u32,
}

struct Counter {
    calls: Arc<AtomicUsize>,
}

#[handlers]
impl Counter {
    pub async fn double(&self, tick: Tick) -> Result<Tick> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if tick.n == 13 {
            return Err(Error::bad_request("local_counter", "13 is unlucky"));
        }
        Ok(Tick { n: tick.n * 2 })
    }
}

#[tokio::test]
async fn a_service_in_this_process_is_called_directly_when_the_types_match() {
    let calls = Arc::new(AtomicUsize::new(0));
    let name = format!("local_counter_{}", std::process::id());
    let service = rmicro::Service::builder(&name)
        .with_registry(Arc::new(MemoryRegistry::new()))
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .handler(
            Counter {
                calls: Arc::clone(&calls),
            },
            Counter::routes(),
        )
        .start()
        .await
        .expect("start");
    // A client whose registry has never heard of the service: only a local call can answer.
    let client = rmicro::Client::new(
        Arc::new(MemoryRegistry::new()),
        rmicro::rpc::ClientOptions {
            retries: 0,
            request_timeout: Duration::from_secs(2),
            ..rmicro::rpc::ClientOptions::default()
        },
    );
    let got: Tick = client
        .call_local(&name, "Counter.Double", Tick { n: 21 })
        .await
        .expect("in process");
    assert_eq!(got, Tick { n: 42 });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The handler's error as it returned it.
    let err = client
        .call_local::<_, Tick>(&name, "Counter.Double", Tick { n: 13 })
        .await
        .expect_err("the handler's error");
    assert_eq!((err.code, err.detail.as_str()), (400, "13 is unlucky"));

    // Other types: an ordinary call, which this client's registry cannot place.
    let err = client
        .call_local::<_, String>(&name, "Counter.Double", Tick { n: 1 })
        .await
        .expect_err("not local with these types");
    assert_eq!(
        err.detail,
        format!("error selecting {name} node: not found")
    );
    let err = client
        .call_local::<_, Tick>(&name, "Counter.Triple", Tick { n: 1 })
        .await
        .expect_err("no such endpoint here");
    assert!(err.detail.contains("not found"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Once the service stops, nothing answers in process.
    service.stop().await.expect("stop");
    let err = client
        .call_local::<_, Tick>(&name, "Counter.Double", Tick { n: 1 })
        .await
        .expect_err("stopped");
    assert_eq!(
        err.detail,
        format!("error selecting {name} node: not found")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
