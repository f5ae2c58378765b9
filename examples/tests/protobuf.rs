//! The examples' protobuf path: the types generated from `proto/student.proto` by
//! rmicro-build, go-micro's JSON names, the generated handler trait and typed client, and
//! `message_publisher --client_content_type=application/protobuf` received by
//! `message_subscriber` (mDNS on loopback and the http broker, the defaults).

mod support;

use std::sync::Arc;
use std::time::Duration;

use rmicro::codec::{Decode, Encode, JSON, PROTOBUF};
use rmicro::registry::memory::MemoryRegistry;
use rmicro::rpc::CallOptions;
use rmicro_examples::{Student, StudentRequest, StudentServiceClient, StudentServiceHandler};
use support::{DAVIE, PUBLISHER, Proc, SUBSCRIBER, UP, run, seed_lock, stderr, stdout};

#[test]
fn generated_types_speak_go_micro_s_json_and_protobuf() {
    let davie = Student::davie();
    // JSON: the proto field names, in proto order, as protoc-gen-go's json tags.
    assert_eq!(davie.encode("t", JSON).expect("json"), DAVIE.as_bytes());
    // A go-micro peer omits zero values (`omitempty`): missing fields are their defaults.
    let sparse = Student::decode("t", JSON, br#"{"name":"gopher"}"#).expect("sparse json");
    assert_eq!((sparse.name.as_str(), sparse.grade), ("gopher", 0));
    // Protobuf: registered at link time, so it is every client's default for these types.
    assert_eq!(Student::default_content_type(), PROTOBUF);
    assert_eq!(StudentRequest::default_content_type(), PROTOBUF);
    let req = StudentRequest {
        name: "davie".to_owned(),
    };
    let wire = req.encode("t", PROTOBUF).expect("protobuf");
    assert_eq!(wire, b"\x0a\x05davie", "field 1, length 5");
    let body = davie.encode("t", PROTOBUF).expect("protobuf");
    assert_eq!(
        Student::decode("t", PROTOBUF, &body).expect("decode"),
        davie
    );
    assert!(body.len() < DAVIE.len(), "{} bytes", body.len());
}

#[test]
fn generated_json_names_are_the_proto_field_names() {
    use rmicro_examples::school::{Enrolment, Term, enrolment};
    let enrolment = Enrolment {
        student: Some(Student::davie()),
        course_code: "CS101".to_owned(),
        term: Term::Spring as i32,
        room: Some(enrolment::Room {
            building: "B".to_owned(),
            number: 7,
        }),
        contact: None,
        scores: [("go".to_owned(), 99)].into_iter().collect(),
        note: None,
    };
    let json: serde_json::Value =
        serde_json::from_slice(&enrolment.encode("t", JSON).expect("json")).expect("parse");
    assert_eq!(json["courseCode"], "CS101", "{json}");
    assert_eq!(json["student"]["classes"], "软件工程专业", "{json}");
    assert_eq!(json["term"], 2, "{json}");
    assert_eq!(json["room"]["number"], 7, "{json}");
    assert_eq!(json["scores"]["go"], 99, "{json}");
    // Nested messages are registered too, and every message round-trips in both codecs.
    assert_eq!(enrolment::Room::default_content_type(), PROTOBUF);
    for ct in [JSON, PROTOBUF] {
        let body = enrolment.encode("t", ct).expect("encode");
        assert_eq!(Enrolment::decode("t", ct, &body).expect(ct), enrolment);
    }
}

/// A proto-first service: the generated trait, implemented in a `#[handlers]` block, so the
/// service's `into_builder()`/`run()` serve its endpoints.
#[rmicro::service(name = "student_service")]
struct Students;

#[rmicro::handlers]
impl StudentServiceHandler for Students {
    async fn get_student(&self, request: StudentRequest) -> rmicro::Result<Student> {
        if request.name == "davie" {
            Ok(Student::davie())
        } else {
            Err(rmicro::Error::not_found(
                "student_service",
                format!("no student named `{}`", request.name),
            ))
        }
    }

    async fn list_students(
        &self,
        request: StudentRequest,
        replies: rmicro::rpc::stream::Replies<Student>,
    ) -> rmicro::Result<()> {
        for student in Student::roster() {
            if student.name.starts_with(&request.name) {
                replies.send(student).await?;
            }
        }
        Ok(())
    }

    async fn get_students(
        &self,
        mut requests: rmicro::rpc::stream::Requests<StudentRequest>,
        replies: rmicro::rpc::stream::Replies<Student>,
    ) -> rmicro::Result<()> {
        while let Some(request) = requests.next().await {
            let request = request?;
            if let Some(student) = Student::roster()
                .into_iter()
                .find(|s| s.name == request.name)
            {
                replies.send(student).await?;
            }
        }
        Ok(())
    }

    async fn top_student(
        &self,
        mut requests: rmicro::rpc::stream::Requests<StudentRequest>,
    ) -> rmicro::Result<Student> {
        let mut top: Option<Student> = None;
        while let Some(request) = requests.next().await {
            let request = request?;
            for student in Student::roster() {
                if student.name == request.name
                    && top.as_ref().is_none_or(|t| student.grade > t.grade)
                {
                    top = Some(student);
                }
            }
        }
        top.ok_or_else(|| rmicro::Error::bad_request("student_service", "nobody named"))
    }
}

#[tokio::test]
async fn the_generated_trait_serves_and_the_typed_client_calls_in_both_codecs() {
    // Its own in-process registry: the name cannot meet the other tests' services.
    let name = "student_service";
    let service = Students
        .into_builder()
        .with_registry(Arc::new(MemoryRegistry::new()))
        .with_broker(Arc::new(rmicro::broker::memory::MemoryBroker::new()))
        .free_subscribers(false)
        .start()
        .await
        .expect("start");
    tokio::time::timeout(Duration::from_secs(5), service.registered())
        .await
        .expect("registered in time")
        .expect("registered");
    // go-micro's endpoint name, from the proto service and rpc names.
    let endpoints: Vec<_> = service
        .record()
        .endpoints
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        endpoints,
        [
            "StudentService.GetStudent",
            "StudentService.ListStudents",
            "StudentService.GetStudents",
            "StudentService.TopStudent"
        ]
    );

    let client = StudentServiceClient::new(name, service.client().clone());
    let req = StudentRequest {
        name: "davie".to_owned(),
    };
    assert_eq!(
        client.get_student(&req).await.expect("call"),
        Student::davie()
    );
    for content_type in [JSON, PROTOBUF] {
        let opts = CallOptions {
            content_type: Some(content_type.to_owned()),
            ..CallOptions::default()
        };
        let got = client.get_student_with(&req, opts).await;
        assert_eq!(got.expect(content_type), Student::davie());
    }
    let err = client
        .get_student(&StudentRequest {
            name: "nobody".to_owned(),
        })
        .await
        .expect_err("not found");
    assert_eq!(err.code, 404);

    // The generated stream methods, in both codecs.
    for content_type in [JSON, PROTOBUF] {
        let opts = || CallOptions {
            content_type: Some(content_type.to_owned()),
            ..CallOptions::default()
        };
        let prefix = StudentRequest {
            name: "do".to_owned(),
        };
        let mut list = client
            .list_students_with(&prefix, opts())
            .await
            .expect("open");
        let mut names = Vec::new();
        while let Some(student) = list.recv().await.expect(content_type) {
            names.push(student.name);
        }
        assert_eq!(names, ["dora", "doug"], "{content_type}");

        let mut get = client.get_students_with(opts()).await.expect("open");
        for name in ["doug", "davie"] {
            let request = StudentRequest {
                name: name.to_owned(),
            };
            get.send(&request).await.expect("send");
            let student = get.recv().await.expect(content_type).expect("a student");
            assert_eq!(student.name, name, "{content_type}");
        }
        get.close_send().await.expect("close");
        assert_eq!(get.recv().await.expect("the end"), None, "{content_type}");

        let mut top = client.top_student_with(opts()).await.expect("open");
        for name in ["doug", "dora", "davie"] {
            let request = StudentRequest {
                name: name.to_owned(),
            };
            top.send(&request).await.expect("send");
        }
        top.close_send().await.expect("close");
        let best = top.recv().await.expect(content_type).expect("the top");
        assert_eq!(best.name, "dora", "{content_type}");
        assert_eq!(top.recv().await.expect("the end"), None, "{content_type}");
    }
    service.stop().await.expect("stop");
}

#[test]
fn message_subscriber_decodes_what_message_publisher_sends_as_protobuf_and_json() {
    let _lock = seed_lock();
    let mut subscriber = Proc::spawn(SUBSCRIBER, &[], &[]);
    subscriber.wait_for("registered", UP);

    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 3] = [
        (
            &["--client_content_type=application/protobuf"],
            &[],
            PROTOBUF,
        ),
        (
            &[],
            &[("MICRO_CLIENT_CONTENT_TYPE", "application/protobuf")],
            PROTOBUF,
        ),
        // The program's own default, set in code: JSON, as the seed's scenario publishes.
        (&[], &[], JSON),
    ];
    for (args, env, content_type) in cases {
        let out = run(PUBLISHER, args, env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        subscriber.wait_for(
            &format!("received: {DAVIE} (name header: davie) as {content_type}"),
            UP,
        );
    }
    assert_eq!(subscriber.count(&format!("as {PROTOBUF}")), 2);

    let out = run(PUBLISHER, &["--client_content_type=text/xml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("invalid `--client_content_type`"),
        "{}",
        stderr(&out)
    );
}
