// A method with an endpoint's shape that would not be served is an error, not a 404 at run
// time: one per way it can miss (not `async`, not `pub`, `pub(crate)`, neither). A method
// without the shape (a helper) is fine.
use rmicro::prelude::*;

#[derive(Deserialize)]
pub struct StudentRequest {
    pub name: String,
}

#[derive(Serialize)]
pub struct Student {
    pub name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    pub fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }

    async fn find_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }

    pub(crate) async fn list_students(&self, req: StudentRequest) -> rmicro::Result<Student> {
        Ok(Student { name: req.name })
    }

    fn grade(&self, req: StudentRequest) -> Result<Student, rmicro::Error> {
        Ok(Student { name: req.name })
    }

    fn helper(&self) -> usize {
        1
    }

    fn check(name: &str) -> rmicro::Result<()> {
        let _ = name;
        Ok(())
    }
}

fn main() {}
