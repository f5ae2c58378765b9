// prost types in every position: deriving serde too, or wrapped in `Proto<T>`.
use rmicro::codec::Proto;
use rmicro::prelude::*;

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct StudentRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct Student {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Ping {
    #[prost(uint64, tag = "1")]
    pub n: u64,
}

rmicro::protobuf!(StudentRequest);

struct StudentService;

#[handlers]
impl StudentService {
    pub async fn get_student(&self, req: StudentRequest) -> Result<Student> {
        Ok(Student { name: req.name })
    }

    pub async fn ping(&self, ping: Proto<Ping>) -> Result<Proto<Ping>> {
        Ok(Proto(Ping { n: ping.n + 1 }))
    }

    #[subscribe("go.micro.srv.message")]
    pub async fn on_student(&self, event: Event<Student>) -> Result<()> {
        println!("{}", event.name);
        Ok(())
    }
}

#[subscribe("go.micro.srv.ping")]
async fn on_ping(ping: Proto<Ping>) -> Result<()> {
    println!("{}", ping.n);
    Ok(())
}

fn main() {}
