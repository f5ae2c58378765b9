use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("go.micro.srv.message")]
async fn on_message(student: Student) -> Result<(), std::fmt::Error> {
    println!("{}", student.name);
    Ok(())
}

fn main() {}
