//! The seed's call and publish as one trace (feature `otel`): calls
//! `StudentService.GetStudent` for "davie", then publishes the student to
//! `go.micro.srv.message`, both inside one span, `enrol davie`. With `student_service` and
//! `message_subscriber` running and `OTEL_EXPORTER_OTLP_ENDPOINT` set for all three, the
//! receiver shows one tree across the three processes:
//!
//! ```text
//! enrol davie                                   traced_client
//! ├─ student_service.StudentService.GetStudent  traced_client (client)
//! │  └─ student_service.StudentService.GetStudent  student_service (server)
//! └─ Pub to go.micro.srv.message                traced_client (producer)
//!    └─ Sub from go.micro.srv.message           go.micro.srv (consumer)
//! ```
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --features otel --bin traced_client
//! ```

use std::process::ExitCode;

use rmicro::Client;
use rmicro_examples::{Student, StudentRequest, TOPIC};

#[rmicro::main]
async fn main() -> ExitCode {
    let client = Client::from_args();
    let work = async {
        let req = StudentRequest {
            name: "davie".to_owned(),
        };
        let student: Student = client
            .call("student_service", "StudentService.GetStudent", &req)
            .await?;
        client.publisher(TOPIC)?.publish(&student).await?;
        Ok::<_, rmicro::Error>(student)
    };
    match rmicro::otel::in_span("enrol davie", work).await {
        Ok(student) => {
            println!("called and published {}", student.name);
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("{err}");
            ExitCode::FAILURE
        }
    }
}
