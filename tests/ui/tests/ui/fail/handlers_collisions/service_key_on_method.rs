use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    #[subscribe("go.micro.srv.message", service = "lecture_service")]
    async fn on_message(&self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }
}

fn main() {}
