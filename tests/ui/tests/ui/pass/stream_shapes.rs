// The three streaming shapes beside a unary endpoint.
use rmicro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Student {
    name: String,
}

#[service(name = "student_service")]
struct StudentService;

#[handlers]
impl StudentService {
    pub async fn get_student(&self, req: Student) -> Result<Student> {
        Ok(req)
    }

    pub async fn list_students(&self, req: Student, replies: Replies<Student>) -> Result<()> {
        replies.send(req).await
    }

    pub async fn add_students(&self, mut requests: Requests<Student>) -> Result<Student> {
        let mut last = Student { name: String::new() };
        while let Some(student) = requests.next().await {
            last = student?;
        }
        Ok(last)
    }

    pub async fn echo_students(
        &self,
        mut requests: Requests<Student>,
        replies: Replies<Student>,
    ) -> Result<(), Error> {
        while let Some(student) = requests.next().await {
            replies.send(student?).await?;
        }
        Ok(())
    }
}

fn main() {}
