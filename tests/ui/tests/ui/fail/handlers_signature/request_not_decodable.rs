use rmicro::prelude::*;

struct StudentRequest {
    name: String,
}

#[derive(Serialize)]
struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }
}

fn main() {}
