// Middleware from the attribute: `layer = <expr>` (and `call_layer`, `subscriber_layer`,
// `publisher_layer`), each as often as needed, the first the outermost; any tower layer over
// the matching `rmicro::layer` service.
#![deny(warnings)]

use rmicro::layer::tower::layer::util::Identity;
use rmicro::layer::{HandlerService, tower};
use rmicro::prelude::*;

/// A layer of the program's own: here it changes nothing.
fn audit() -> impl tower::Layer<HandlerService, Service = HandlerService> + Clone {
    tower::layer::layer_fn(|inner: HandlerService| inner)
}

#[service(
    name = "student_service",
    layer = audit(),
    layer = Identity::new(),
    call_layer = Identity::new(),
    subscriber_layer = Identity::new(),
    publisher_layer = Identity::new()
)]
struct StudentService;

fn main() {
    let _ = StudentService::service_builder();
}
