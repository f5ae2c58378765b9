use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

struct StudentService;

#[handlers]
impl StudentService {
    #[subscribe("go.micro.srv.message")]
    async fn on_message(&self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }

    #[subscribe("go.micro.srv.message")]
    async fn log_message(&self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }

    // A different queue is a different subscription...
    #[subscribe("go.micro.srv.message", queue = "audit")]
    async fn audit_message(&self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }

    // ...but the same queue again is not.
    #[subscribe("go.micro.srv.message", queue = "audit")]
    async fn audit_again(&self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }
}

fn main() {}
