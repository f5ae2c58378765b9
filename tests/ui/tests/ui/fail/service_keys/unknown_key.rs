use rmicro::prelude::*;

#[service(name = "student_service", regsitry = "mdns", colour = "blue")]
struct StudentService;

fn main() {
    // No further errors: `run` still exists next to the attribute's errors.
    let _ = StudentService.run();
}
