use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

const TOPIC: &str = "go.micro.srv.message";

#[subscribe(TOPIC)]
async fn on_message(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

#[subscribe(topic = "go.micro.srv.created")]
async fn on_created(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

fn main() {}
