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
    pub async fn get_student(&self, req: StudentRequest) -> Result<Student, rmicro::Error> {
        Ok(Student { name: req.name })
    }
}

fn main() {}
