//! `/metrics` scraped by a real Prometheus (Debian's 2.42): a service's calls, its failures,
//! its subscriber's deliveries and its registration show up in Prometheus's own queries
//! under the names docs/metrics.md lists.

use std::sync::Arc;
use std::time::Duration;

use rmicro::broker::memory::MemoryBroker;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::{Error, Routes, Service};
use rmicro_conformance::servers::prometheus::Prometheus;

struct Echo;

/// How long Prometheus may take to see a value (scrapes every 500 ms).
const SEEN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_requests_deliveries_and_registration() {
    let name = format!(
        "metrics-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let topic = format!("{name}.events");
    let routes = Routes::<Echo>::new().endpoint(
        "Echo.Ping",
        Default::default(),
        Default::default(),
        |_: Arc<Echo>, n: u32| async move {
            if n == 0 {
                Err(Error::bad_request("echo", "zero"))
            } else {
                Ok(n)
            }
        },
    );
    let service = Service::builder(&name)
        .with_registry(Arc::new(MemoryRegistry::new()))
        .with_broker(Arc::new(MemoryBroker::new()))
        .free_subscribers(false)
        .handler(Echo, routes)
        .subscribe(
            &topic,
            None,
            rmicro::broker::handler(|ev| async move {
                if ev.message().body.as_ref() == b"\"fail\"" {
                    Err(Error::internal_server_error("sub", "refused"))
                } else {
                    Ok(())
                }
            }),
        )
        .start()
        .await
        .expect("start");
    service.registered().await.expect("registered");
    let client = service.client();
    for n in 1..=5u32 {
        let _: u32 = client.call(&name, "Echo.Ping", &n).await.expect("call");
    }
    let e = client
        .call::<_, u32>(&name, "Echo.Ping", &0u32)
        .await
        .expect_err("zero");
    assert_eq!(e.code, 400);
    for i in 0..3 {
        let _ = client
            .call::<_, u32>(&name, &format!("Nope.E{i}"), &1u32)
            .await
            .expect_err("unknown endpoint");
    }
    let publisher = client.publisher(&topic).expect("publisher");
    for body in ["a", "b", "fail"] {
        publisher.publish(&body).await.expect("publish");
    }

    let address = service.address();
    let prometheus = tokio::task::block_in_place(|| Prometheus::scraping(&[address]));
    let expect = |query: String, want: f64| {
        let got = tokio::task::block_in_place(|| prometheus.wait_for(&query, want, SEEN));
        assert!(
            got.is_ok(),
            "`{query}`: want {want}, Prometheus has {:?}\n{}",
            got.err().flatten(),
            prometheus.log()
        );
    };
    expect(format!("up{{job=\"rmicro\",instance=\"{address}\"}}"), 1.0);
    let server = format!("service=\"{name}\",endpoint=\"Echo.Ping\"");
    expect(
        format!("micro_request_total{{{server},status=\"success\",code=\"200\"}}"),
        5.0,
    );
    expect(
        format!("micro_request_total{{{server},status=\"fail\",code=\"400\"}}"),
        1.0,
    );
    expect(
        format!("micro_request_duration_seconds_count{{{server},status=\"success\"}}"),
        5.0,
    );
    expect(
        format!(
            "micro_request_total{{service=\"{name}\",endpoint=\"unknown\",status=\"fail\",code=\"404\"}}"
        ),
        3.0,
    );
    expect(
        format!("micro_requests_in_flight{{service=\"{name}\"}}"),
        0.0,
    );
    expect(
        format!("micro_client_request_total{{{server},status=\"success\",code=\"200\"}}"),
        5.0,
    );
    let on_topic = format!("broker=\"memory\",topic=\"{topic}\"");
    expect(format!("micro_broker_delivered_total{{{on_topic}}}"), 3.0);
    expect(
        format!("micro_broker_acknowledged_total{{{on_topic}}}"),
        2.0,
    );
    expect(format!("micro_broker_failed_total{{{on_topic}}}"), 1.0);
    expect(
        format!("micro_broker_published_total{{{on_topic},status=\"success\"}}"),
        3.0,
    );
    // go-micro's wrapper's view of the same: subscriber and publisher as services.
    expect(
        format!(
            "micro_request_total{{service=\"subscriber\",endpoint=\"{topic}\",status=\"fail\"}}"
        ),
        1.0,
    );
    expect(
        format!(
            "micro_request_total{{service=\"publisher\",endpoint=\"{topic}\",status=\"success\"}}"
        ),
        3.0,
    );
    expect(
        format!("micro_registry_registered{{service=\"{name}\",registry=\"memory\"}}"),
        1.0,
    );
    service.stop().await.expect("stop");
}
