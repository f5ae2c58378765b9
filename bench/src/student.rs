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

/// What GetStudent does on every side: davie for `davie`, `None` (not found) otherwise.
pub fn get_student(req: &StudentRequest) -> Option<Student> {
    (req.name == "davie").then(Student::davie)
}

/// Registers the protobuf codecs with rmicro.
pub fn register() {
    register_protobuf::<Student>();
    register_protobuf::<StudentRequest>();
}
