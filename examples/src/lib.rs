//! The seed's message types, shared by the example programs.

use serde::{Deserialize, Serialize};

/// The topic the seed publishes students on.
pub const TOPIC: &str = "go.micro.srv.message";

/// `message.StudentRequest` of the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentRequest {
    /// Whom to look up.
    pub name: String,
}

/// `message.Student` of the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Student {
    /// Name.
    pub name: String,
    /// Major.
    pub classes: String,
    /// Grade.
    pub grade: i32,
    /// Phone number.
    pub phone: String,
}

impl Student {
    /// The seed's student.
    pub fn davie() -> Self {
        Self {
            name: "davie".to_owned(),
            classes: "软件工程专业".to_owned(),
            grade: 80,
            phone: "12345678901".to_owned(),
        }
    }
}
