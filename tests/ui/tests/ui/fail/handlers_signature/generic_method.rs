use rmicro::prelude::*;

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn echo<T: Send>(&self, req: T) -> rmicro::Result<T> {
        Ok(req)
    }
}

fn main() {}
