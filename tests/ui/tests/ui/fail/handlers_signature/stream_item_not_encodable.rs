// A stream's item types are checked as a unary endpoint's are, with the error on the type.
use rmicro::prelude::*;

#[derive(Deserialize)]
struct StudentRequest {
    name: String,
}

struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn list_students(&self, req: StudentRequest, replies: Replies<Student>) -> rmicro::Result<()> {
        let _ = (req.name, replies);
        Ok(())
    }
}

fn main() {}
