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
    pub async fn list_students(&self) -> rmicro::Result<Vec<Student>> {
        Ok(Vec::new())
    }

    pub async fn get_student(&self, name: String, grade: i32) -> rmicro::Result<Student> {
        let _ = grade;
        Ok(Student { name })
    }
}

fn main() {}
