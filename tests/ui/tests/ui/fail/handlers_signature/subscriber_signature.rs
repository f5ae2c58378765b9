use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    #[subscribe("go.micro.srv.message")]
    fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> {
        println!("{}", event.name);
        Ok(())
    }

    #[subscribe("go.micro.srv.created")]
    async fn on_created(&mut self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }

    #[subscribe("go.micro.srv.deleted")]
    async fn on_deleted(student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }
}

fn main() {}
