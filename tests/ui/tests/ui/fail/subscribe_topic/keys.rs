use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("go.micro.srv.message", quene = "workers", servise = "student_service")]
async fn on_message(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

#[subscribe("go.micro.srv.created", queue = "", service = "student service")]
async fn on_created(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

#[subscribe("go.micro.srv.deleted", queue = "a", queue = "b")]
async fn on_deleted(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

fn main() {}
