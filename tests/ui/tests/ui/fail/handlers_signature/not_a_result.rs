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
    pub async fn get_student(&self, req: StudentRequest) -> Student {
        Student { name: req.name }
    }

    pub async fn forget_student(&self, req: StudentRequest) {
        let _ = req;
    }
}

fn main() {}
