use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe]
async fn on_message(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

#[subscribe(queue = "workers")]
async fn on_work(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

fn main() {}
