// Streaming shapes that cannot be served: a value returned beside `Replies`, `Replies` first.
use rmicro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn list_students(&self, req: Student, replies: Replies<Student>) -> rmicro::Result<Student> {
        replies.send(Student { name: req.name.clone() }).await?;
        Ok(req)
    }

    pub async fn get_students(&self, replies: Replies<Student>, more: Replies<Student>) -> rmicro::Result<()> {
        let _ = (replies, more);
        Ok(())
    }
}

fn main() {}
