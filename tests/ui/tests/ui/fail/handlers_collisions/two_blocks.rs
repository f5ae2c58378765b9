use rmicro::prelude::*;

#[derive(Deserialize)]
struct StudentRequest {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<String> {
        Ok(req.name)
    }
}

// One `#[handlers]` block per service: it is the service's whole table of routes.
#[handlers]
impl StudentService {
    pub async fn delete_student(&self, req: StudentRequest) -> rmicro::Result<String> {
        Ok(req.name)
    }
}

fn main() {}
