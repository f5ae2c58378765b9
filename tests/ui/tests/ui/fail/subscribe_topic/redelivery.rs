use rmicro::prelude::*;

#[derive(Deserialize)]
struct Student {
    name: String,
}

#[subscribe("students.graded", attempts = 0, backoff = "10secs")]
async fn on_graded(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

#[subscribe("students.created", dead_letter = "students.created", attempts = "3")]
async fn on_created(student: Student) -> rmicro::Result<()> {
    println!("{}", student.name);
    Ok(())
}

struct Grader;

#[handlers]
impl Grader {
    #[subscribe("students.deleted", attempts = 1000, backoff = "1h")]
    async fn on_deleted(&self, student: Student) -> rmicro::Result<()> {
        println!("{}", student.name);
        Ok(())
    }
}

fn main() {}
