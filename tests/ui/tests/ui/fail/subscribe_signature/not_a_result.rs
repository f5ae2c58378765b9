use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("go.micro.srv.message")]
async fn on_message(student: Student) {
    println!("{}", student.name);
}

#[subscribe("go.micro.srv.created")]
async fn on_created(student: Student) -> Option<()> {
    println!("{}", student.name);
    Some(())
}

#[subscribe("go.micro.srv.deleted")]
async fn on_deleted(student: Student) -> rmicro::Result<String> {
    Ok(student.name)
}

fn main() {}
