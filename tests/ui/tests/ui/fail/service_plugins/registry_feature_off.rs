// `tests/ui` builds rmicro with its default features, so the consul registry is not built in.
use rmicro::prelude::*;

#[service(name = "student_service", registry = "consul")]
struct StudentService;

fn main() {}
