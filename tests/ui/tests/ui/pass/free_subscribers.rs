// Free subscribers in every form: `Event<T>` or `T`, queue, service, an error type of the
// user's own; each is registered and, given a raw message, decodes it and runs.
#![deny(warnings)]

use std::sync::atomic::{AtomicUsize, Ordering};

use rmicro::broker::{self, Message};
use rmicro::prelude::*;

#[derive(Debug, Deserialize)]
struct Student {
    name: String,
}

static SEEN: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct StoreError;

impl From<StoreError> for rmicro::Error {
    fn from(_: StoreError) -> Self {
        rmicro::Error::internal_server_error("store", "the store is down")
    }
}

#[subscribe("students.created")]
async fn on_created(event: Event<Student>) -> rmicro::Result<()> {
    assert_eq!(event.topic(), "students.created");
    assert_eq!(event.name, "davie");
    SEEN.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[subscribe("students.updated", queue = "workers", attempts = 5, backoff = "50ms", dead_letter = "students.updated.dead")]
async fn on_updated(student: Student) -> Result<(), rmicro::Error> {
    assert_eq!(student.name, "davie");
    SEEN.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[subscribe("students.deleted", queue = "audit", service = "audit_service")]
async fn on_deleted(student: Student) -> Result<(), StoreError> {
    let _ = student;
    Err(StoreError)
}

mod nested {
    #[rmicro::subscribe("students.archived")]
    pub(crate) async fn on_archived(payload: String) -> rmicro::Result<()> {
        let _ = payload;
        Ok(())
    }
}

fn find(topic: &str) -> &'static rmicro::__private::FreeSubscriber {
    rmicro::__private::free_subscribers()
        .find(|s| s.topic == topic)
        .unwrap_or_else(|| panic!("a subscriber for {topic}"))
}

fn davie(topic: &str) -> broker::Event {
    broker::Event::new(topic, Message::new(&br#"{"name":"davie"}"#[..]))
}

#[rmicro::main]
async fn main() {
    let created = find("students.created");
    assert_eq!((created.queue, created.service), (None, None));
    assert!(created.name.ends_with("::on_created"), "{}", created.name);
    let updated = find("students.updated");
    assert_eq!(updated.queue, Some("workers"));
    let deleted = find("students.deleted");
    assert_eq!(
        (deleted.queue, deleted.service),
        (Some("audit"), Some("audit_service"))
    );
    assert!(
        find("students.archived")
            .name
            .ends_with("nested::on_archived")
    );

    (created.handler)(davie("students.created"))
        .await
        .expect("handled");
    (updated.handler)(davie("students.updated"))
        .await
        .expect("handled");
    assert_eq!(SEEN.load(Ordering::SeqCst), 2);

    let error = (deleted.handler)(davie("students.deleted"))
        .await
        .expect_err("store error");
    assert_eq!(error.detail, "the store is down");
    let error = (created.handler)(broker::Event::new(
        "students.created",
        Message::new(&b"{"[..]),
    ))
    .await
    .expect_err("malformed JSON");
    assert_eq!(error.code, 400);
}
