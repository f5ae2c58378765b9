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
    pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }

    // go-micro names both `StudentService.GetStudent`.
    #[allow(non_snake_case)]
    pub async fn getStudent(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }
}

fn main() {}
