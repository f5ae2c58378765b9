use rmicro::prelude::*;

#[derive(Deserialize)]
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
    pub async fn connect(url: String) -> rmicro::Result<Self> {
        let _ = url;
        Ok(StudentService)
    }

    pub async fn rename_student(&mut self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }

    pub async fn take_student(self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }
}

fn main() {}
