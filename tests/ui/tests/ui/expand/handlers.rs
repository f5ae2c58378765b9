use rmicro::{Event, handlers};

pub struct StudentService;

#[handlers]
impl StudentService {
    /// A student's grade, by name.
    pub async fn get_grade(&self, name: String) -> rmicro::Result<u32> {
        Ok(u32::try_from(name.len()).unwrap_or(0) * 10)
    }

    #[subscribe("students.graded", queue = "graders")]
    async fn on_graded(&self, event: Event<u32>) -> rmicro::Result<()> {
        let _grade = *event.payload();
        Ok(())
    }

    fn helper(&self) {}
}

fn main() {}
