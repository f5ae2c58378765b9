// A `#[handlers]` block with endpoints, subscribing methods and plain methods side by side;
// the routes it builds serve a JSON call and deliver messages.
#![deny(warnings)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmicro::__private::Handlers;
use rmicro::broker::{self, Message};
use rmicro::prelude::*;
use rmicro::rpc::Request;

#[derive(Debug, Serialize, Deserialize)]
struct StudentRequest {
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Student {
    name: String,
    grade: i32,
}

#[derive(Debug)]
struct NotFound(String);

impl From<NotFound> for rmicro::Error {
    fn from(NotFound(name): NotFound) -> Self {
        rmicro::Error::not_found("student_service", format!("no student `{name}`"))
    }
}

#[service(name = "student_service")]
#[derive(Default)]
struct StudentService {
    messages: AtomicUsize,
}

#[handlers]
impl StudentService {
    pub const PASSING_GRADE: i32 = 60;

    pub async fn get_student(&self, req: StudentRequest) -> Result<Student, NotFound> {
        if req.name == "davie" {
            Ok(Student {
                name: req.name,
                grade: self.grade().await,
            })
        } else {
            Err(NotFound(req.name))
        }
    }

    pub async fn passed(&self, student: Student) -> rmicro::Result<bool> {
        Ok(student.grade >= Self::PASSING_GRADE)
    }

    #[subscribe("go.micro.srv.message")]
    async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> {
        assert_eq!(event.topic(), "go.micro.srv.message");
        self.messages.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    #[rmicro::subscribe("students.graded", queue = "graders")]
    #[subscribe("students.regraded", queue = "graders", dead_letter = "students.regraded.dead")]
    pub async fn on_graded(&self, student: Student) -> Result<(), rmicro::Error> {
        assert!(student.grade > 0);
        self.messages.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    // Not endpoints: not `pub`, not `async`, or not visible outside the crate.
    async fn grade(&self) -> i32 {
        80
    }

    pub fn messages(&self) -> usize {
        self.messages.load(Ordering::SeqCst)
    }

    pub(crate) async fn reset(&self) {
        self.messages.store(0, Ordering::SeqCst);
    }
}

fn request(endpoint: &str, body: &'static str) -> Request {
    Request {
        service: "student_service".to_owned(),
        endpoint: endpoint.to_owned(),
        content_type: "application/json".to_owned(),
        accept: "application/json".to_owned(),
        header: Default::default(),
        body: body.as_bytes().to_vec().into(),
    }
}

#[rmicro::main]
async fn main() {
    let routes = StudentService::routes();
    let endpoints: Vec<&str> = routes.endpoints().map(|e| e.name.as_str()).collect();
    assert_eq!(
        endpoints,
        ["StudentService.GetStudent", "StudentService.Passed"]
    );
    let subscriptions: Vec<(&str, Option<&str>)> = routes
        .subscriptions()
        .map(|s| (s.topic.as_str(), s.queue.as_deref()))
        .collect();
    assert_eq!(
        subscriptions,
        [
            ("go.micro.srv.message", None),
            ("students.graded", Some("graders")),
            ("students.regraded", Some("graders")),
        ]
    );

    let service = Arc::new(StudentService::default());
    service.reset().await;
    let bound = routes.bind(Arc::clone(&service));
    let get_student = &bound.endpoints[0].1;
    let reply = get_student(request("StudentService.GetStudent", r#"{"name":"davie"}"#))
        .await
        .expect("davie exists");
    assert_eq!(&reply.body[..], br#"{"name":"davie","grade":80}"#);
    let error = get_student(request("StudentService.GetStudent", r#"{"name":"bob"}"#))
        .await
        .expect_err("bob does not");
    assert_eq!(
        (error.code, error.detail.as_str()),
        (404, "no student `bob`")
    );

    let message = || Message::new(&br#"{"name":"davie","grade":80}"#[..]);
    for (spec, handler) in &bound.subscriptions {
        handler(broker::Event::new(spec.topic.as_str(), message()))
            .await
            .expect("handled");
    }
    assert_eq!(service.messages(), 3);
}
