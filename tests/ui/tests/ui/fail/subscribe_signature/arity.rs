use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("go.micro.srv.message")]
async fn on_nothing() -> rmicro::Result<()> {
    Ok(())
}

#[subscribe("go.micro.srv.message")]
async fn on_two(student: Student, topic: String) -> rmicro::Result<()> {
    println!("{} on {topic}", student.name);
    Ok(())
}

fn main() {}
