use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("")]
async fn on_nothing(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

#[subscribe("go.micro.srv message")]
async fn on_message(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

fn main() {}
