//! The seed's messages (`examples/proto/student.proto`), as prost + serde types so that they
//! travel as JSON and protobuf.

use rmicro::codec::register_protobuf;

/// The seed's `Student`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Student {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub classes: String,
    #[prost(int32, tag = "3")]
    pub grade: i32,
    #[prost(string, tag = "4")]
    pub phone: String,
}

/// The seed's `StudentRequest`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StudentRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

impl Student {
    /// The seed's student.
    pub fn davie() -> Student {
        Student {
            name: "davie".into(),
            classes: "软件工程专业".into(),
            grade: 80,
            phone: "12345678901".into(),
        }
    }
}

/// What GetStudent does on every side: davie for `davie`; for `davie:<n>` (the payload
/// rows), davie with `classes` made `n` bytes long; `None` (not found) otherwise.
pub fn get_student(req: &StudentRequest) -> Option<Student> {
    let (name, size) = match req.name.split_once(':') {
        Some((name, size)) => (name, Some(size.parse::<usize>().ok()?)),
        None => (req.name.as_str(), None),
    };
    if name != "davie" {
        return None;
    }
    let mut student = Student::davie();
    if let Some(size) = size {
        student.classes = "x".repeat(size);
    }
    Some(student)
}

/// Registers the protobuf codecs with rmicro.
pub fn register() {
    register_protobuf::<Student>();
    register_protobuf::<StudentRequest>();
}
