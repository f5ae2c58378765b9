// `tests/ui` builds rmicro with its default features: no etcd, no rabbitmq.
use rmicro::prelude::*;

#[service(name = "student_service", registry = "etcd", broker = "rabbitmq")]
struct StudentService;

fn main() {}
