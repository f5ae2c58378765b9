//! `#[subscribe(.., attempts, backoff, dead_letter)]` through a whole service on the http
//! broker (its own listener on 127.0.0.1): a message its subscriber refuses is tried as many
//! times as the attribute says, then published to the dead-letter topic with its story; the
//! good messages around it are handled once each, in order, and the metrics count it all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmicro::__private::Handlers as _;
use rmicro::broker::http::{HttpBroker, HttpBrokerOptions};
use rmicro::broker::{
    Broker as _, HEADER_DEAD_LETTER_ATTEMPTS, HEADER_DEAD_LETTER_ERROR, HEADER_DEAD_LETTER_TOPIC,
    SharedBroker, SubscribeOptions,
};
use rmicro::prelude::*;
use rmicro::registry::memory::MemoryRegistry;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Grade {
    student: String,
    grade: i32,
}

struct Grader {
    tries: Arc<Mutex<Vec<String>>>,
    graded: mpsc::UnboundedSender<String>,
}

#[handlers]
impl Grader {
    #[subscribe(
        "dlq.students.graded",
        attempts = 4,
        backoff = "20ms",
        dead_letter = "dlq.students.graded.dead"
    )]
    async fn on_graded(&self, grade: Grade) -> Result<()> {
        self.tries.lock().expect("lock").push(grade.student.clone());
        if grade.grade < 0 {
            return Err(Error::bad_request(
                "grader",
                format!("a grade cannot be negative: {}", grade.grade),
            ));
        }
        let _ = self.graded.send(grade.student);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_is_tried_then_dead_lettered_and_the_rest_flow_in_order() {
    let registry = MemoryRegistry::new();
    let broker: SharedBroker = Arc::new(HttpBroker::new(
        Arc::new(registry.clone()),
        HttpBrokerOptions::default(),
    ));
    let tries = Arc::new(Mutex::new(Vec::new()));
    let (graded, mut graded_rx) = mpsc::unbounded_channel();
    let service = Service::builder("dlq.grader")
        .with_registry(Arc::new(registry.clone()))
        .with_broker(Arc::clone(&broker))
        .free_subscribers(false)
        .handler(
            Grader {
                tries: Arc::clone(&tries),
                graded,
            },
            Grader::routes(),
        )
        .start()
        .await
        .expect("start");
    tokio::time::timeout(WAIT, service.registered())
        .await
        .expect("registered in time")
        .expect("registered");

    let (dead_tx, mut dead_rx) = mpsc::unbounded_channel();
    let _dead = broker
        .subscribe(
            "dlq.students.graded.dead",
            rmicro::broker::handler(move |event| {
                let _ = dead_tx.send(event.message().clone());
                async { Ok(()) }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe to the dead letters");

    let publisher = service
        .client()
        .publisher("dlq.students.graded")
        .expect("publisher");
    for (student, grade) in [("alice", 90), ("bob", -5), ("carol", 70)] {
        publisher
            .publish(&Grade {
                student: student.to_owned(),
                grade,
            })
            .await
            .expect("publish");
    }
    let mut handled = Vec::new();
    for _ in 0..2 {
        handled.push(
            tokio::time::timeout(WAIT, graded_rx.recv())
                .await
                .expect("a good grade in time")
                .expect("open"),
        );
    }
    assert_eq!(handled, ["alice", "carol"]);
    let dead = tokio::time::timeout(WAIT, dead_rx.recv())
        .await
        .expect("the dead letter in time")
        .expect("open");
    assert_eq!(dead.header[HEADER_DEAD_LETTER_TOPIC], "dlq.students.graded");
    assert_eq!(dead.header[HEADER_DEAD_LETTER_ATTEMPTS], "4");
    assert!(
        dead.header[HEADER_DEAD_LETTER_ERROR].contains("a grade cannot be negative: -5"),
        "{:?}",
        dead.header
    );
    let body: Grade = serde_json::from_slice(&dead.body).expect("the original body");
    assert_eq!(body.student, "bob");
    let tried_bob = tries
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| *s == "bob")
        .count();
    assert_eq!(tried_bob, 4, "bob's grade was tried 4 times");

    let metrics = rmicro::metrics::encode();
    for series in [
        "micro_broker_retried_total{broker=\"http\",topic=\"dlq.students.graded\"} 3",
        "micro_broker_dead_lettered_total{broker=\"http\",topic=\"dlq.students.graded\"} 1",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    service.stop().await.expect("stop");
}
