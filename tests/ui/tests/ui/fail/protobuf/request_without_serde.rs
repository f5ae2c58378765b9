// A prost message without serde derives as a request: the error names the missing derive on
// the user's type, and the `Proto<T>` way out.
use rmicro::prelude::*;

#[derive(Clone, PartialEq, prost::Message)]
pub struct StudentRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct Student {
    #[prost(string, tag = "1")]
    pub name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn get_student(&self, req: StudentRequest) -> Result<Student> {
        Ok(Student { name: req.name })
    }
}

fn main() {}
