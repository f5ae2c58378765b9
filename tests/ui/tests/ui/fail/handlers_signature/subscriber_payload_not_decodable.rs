use rmicro::prelude::*;

struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    #[subscribe("go.micro.srv.message")]
    async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> {
        println!("{}", event.name);
        Ok(())
    }
}

fn main() {}
