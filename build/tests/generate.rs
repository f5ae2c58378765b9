//! What rmicro-build writes for a proto with nested messages, a camelCase field, an enum, a
//! oneof and streaming rpcs of each shape.

use std::path::PathBuf;

fn generate(proto: &str) -> String {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "rmicro-build-test-{}-{}",
        std::process::id(),
        proto.len()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("school.proto"), proto).expect("write proto");
    rmicro_build::Builder::new()
        .out_dir(&dir)
        .rerun_if_changed(false)
        .compile(&[dir.join("school.proto")], &[&dir])
        .expect("compile");
    let code = std::fs::read_to_string(dir.join("school.rs")).expect("generated file");
    let _ = std::fs::remove_dir_all(&dir);
    code
}

#[test]
fn messages_services_and_registration() {
    let code = generate(
        r#"
        syntax = "proto3";
        package school;
        message Student {
          string name = 1;
          string phoneNumber = 2;
          Grade grade = 3;
          message Address { string street = 1; }
          Address home = 4;
          oneof contact { string email = 5; string fax = 6; }
          map<string, int32> scores = 7;
        }
        enum Grade { GRADE_UNSPECIFIED = 0; A = 1; }
        service Registrar {
          rpc Enrol(Student) returns (Student);
          rpc Watch(Student) returns (stream Student);
          rpc EnrolAll(stream Student) returns (Student);
          rpc Talk(stream Student) returns (stream Student);
        }
        "#,
    );
    // go-micro's JSON names: the proto name where prost renames the field.
    assert!(
        code.contains(r#"#[serde(rename = "phoneNumber")]"#),
        "{code}"
    );
    assert!(code.contains("pub phone_number:"), "{code}");
    assert!(code.contains("#[serde(default)]"), "{code}");
    // Every message struct, nested ones included, is registered at link time.
    assert!(
        code.contains("::rmicro::protobuf!(Student, student::Address);"),
        "{code}"
    );
    // The service: a handler trait with go-micro's endpoint names, and a typed client; each
    // streaming rpc in its shape.
    assert!(code.contains("pub trait RegistrarHandler"), "{code}");
    assert!(code.contains("\"Registrar.Enrol\""), "{code}");
    assert!(code.contains("pub struct RegistrarClient"), "{code}");
    assert!(code.contains("fn enrol_with("), "{code}");
    let (requests, replies) = (
        "::rmicro::rpc::stream::Requests<Student>",
        "::rmicro::rpc::stream::Replies<Student>",
    );
    for shape in [
        format!("fn watch(&self, request: Student, replies: {replies}) -> impl ::core::future::Future<Output = ::rmicro::Result<()>>"),
        format!("fn enrol_all(&self, requests: {requests}) -> impl ::core::future::Future<Output = ::rmicro::Result<Student>>"),
        format!("fn talk(&self, requests: {requests}, replies: {replies}) -> impl ::core::future::Future<Output = ::rmicro::Result<()>>"),
        ".server_stream::<Student, Student, _, _>(".to_owned(),
        ".client_stream::<Student, Student, _, _>(".to_owned(),
        ".bidi_stream::<Student, Student, _, _>(".to_owned(),
        "pub async fn watch(&self, request: &Student) -> ::rmicro::Result<::rmicro::rpc::stream::CallStream<Student, Student>>".to_owned(),
        "pub async fn talk(&self) -> ::rmicro::Result<::rmicro::rpc::stream::CallStream<Student, Student>>".to_owned(),
        "\"Registrar.EnrolAll\"".to_owned(),
    ] {
        // The file is formatted: compare without whitespace and trailing commas.
        let flat = |s: &str| {
            s.split_whitespace()
                .collect::<String>()
                .replace(",)", ")")
                .replace(",>", ">")
        };
        assert!(flat(&code).contains(&flat(&shape)), "{shape}\n{code}");
    }
    // Only rmicro is named: no serde or prost dependency needed.
    let rest = code
        .replace("::rmicro::__private::prost::", "")
        .replace("::rmicro::__private::serde::", "");
    assert!(!rest.contains("::prost::"), "{code}");
    assert!(!rest.contains("::serde::"), "{code}");
}

#[test]
fn errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("rmicro-build-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("bad.proto"), "syntax = \"proto3\"; message {").expect("write");
    let err = rmicro_build::Builder::new()
        .out_dir(&dir)
        .rerun_if_changed(false)
        .compile(&[dir.join("bad.proto")], &[&dir])
        .expect_err("syntax error");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.to_string().contains("cannot compile the proto files"),
        "{err}"
    );
}
