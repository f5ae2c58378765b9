//! Attribute macros of rmicro. Use them through the `rmicro` crate, which re-exports them.
//!
//! Each macro is a module that works on `proc_macro2` tokens in three phases: `args` parses
//! the attribute and the item into values that keep their spans, `validate` checks the rules
//! across them and yields a span-free configuration, `expand` turns that into tokens. Every
//! error of one attribute is reported, and the user's item is always emitted next to them.

mod diag;
mod entry;
mod handlers;
mod naming;
mod service;
mod signature;
mod subscribe;
#[cfg(test)]
mod test_util;
mod value;

use proc_macro::TokenStream;

/// Declares a struct as a go-micro service: its name, version, plugins and heartbeat.
///
/// ```no_run
/// use rmicro::prelude::*;
///
/// #[service(name = "student_service", version = "v1.0.0", ttl = 10, interval = 5)]
/// struct StudentService;
///
/// #[rmicro::main]
/// async fn main() -> rmicro::Result<()> {
///     StudentService.run().await
/// }
/// ```
///
/// # Keys
///
/// Every key is go-micro's option of the same name; flags (`--register_ttl=20`) and
/// environment variables (`MICRO_REGISTER_TTL=20`) override what the attribute says.
///
/// | key | value | default |
/// |---|---|---|
/// | `name` (required) | letters, digits, `.`, `_`, `-` | |
/// | `version` | any string | `latest` |
/// | `registry` | `mdns`, `memory`, `consul`¹, `etcd`¹, `nats`¹, `zookeeper`¹, `dns`¹ | `mdns` |
/// | `registry_address` | plugin-specific, e.g. `"127.0.0.1:8500"` | the plugin's |
/// | `broker` | `http`, `memory`, `mqtt`¹, `nats`¹, `rabbitmq`¹, `redis`¹, `nsq`¹, `kafka`¹, `googlepubsub`¹ | `http` |
/// | `broker_address` | plugin-specific, e.g. `"nats://127.0.0.1:4222"` | the plugin's |
/// | `address` | the `ip:port` the server binds, e.g. `":8080"`, `"[::1]:8080"` | `127.0.0.1:0` |
/// | `advertise` | the `host:port` other services call | the bound address |
/// | `ttl` | seconds (`10`) or Go duration (`"1m30s"`) | 90 s |
/// | `interval` | the same, shorter than `ttl` | 30 s |
/// | `metadata(key = "value", ..)` | node metadata | |
/// | `layer = <expr>` | a tower layer around every endpoint call (go-micro's `WrapHandler`); repeatable, the first outermost | |
/// | `call_layer`, `subscriber_layer`, `publisher_layer` `= <expr>` | the same around the client's calls, deliveries to subscribers, publishes (`WrapCall`, `WrapSubscriber`, a client wrapper) | |
///
/// ¹ Behind the cargo feature of the same name of `rmicro`; naming a plugin whose feature is
/// off is a compile error that says which feature to turn on.
///
/// # Generated code
///
/// The struct is left as it is; next to it come two methods. Without the macro, the same
/// service is written with the builder:
///
/// ```no_run
/// use std::time::Duration;
///
/// use rmicro::{Routes, Service, ServiceBuilder};
///
/// struct StudentService;
///
/// impl StudentService {
///     pub fn service_builder() -> ServiceBuilder {
///         Service::builder("student_service")
///             .version("v1.0.0")
///             .ttl(Duration::from_secs(10))
///             .interval(Duration::from_secs(5))
///     }
///
///     pub async fn run(self) -> rmicro::Result<()> {
///         // The routes of its `#[handlers]` block, if it has one.
///         let routes = Routes::new();
///         Self::service_builder().handler(self, routes).run().await
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    service::expand(attr.into(), item.into()).into()
}

/// Turns the methods of a service's impl block into RPC endpoints and subscriptions.
///
/// Every `pub async fn name(&self, request: Request) -> Result<Response, E>` becomes the
/// endpoint `Type.Name` (go-micro's naming: `get_student` of `StudentService` is
/// `StudentService.GetStudent`), where `Request: Deserialize`, `Response: Serialize` and
/// `E: Into<rmicro::Error>` (`rmicro::Result<Response>` works too). A method marked
/// `#[subscribe("topic")]` (or `#[subscribe("topic", queue = "name")]`) handles the messages
/// of that topic, taking `&self` and either `Event<T>` or `T`. Other methods are left alone,
/// except one with an endpoint's shape (`&self`, one argument, a `Result`) that is not a
/// `pub async fn`: that is a compile error saying how to serve it or where a helper goes, so
/// that no endpoint goes missing without a word (its callers would get a 404).
///
/// ```no_run
/// use rmicro::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct StudentRequest { name: String }
///
/// #[derive(Serialize, Deserialize)]
/// struct Student { name: String, grade: i32 }
///
/// #[service(name = "student_service")]
/// struct StudentService;
///
/// #[handlers]
/// impl StudentService {
///     pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> {
///         Ok(Student { name: req.name, grade: 80 })
///     }
///
///     #[subscribe("go.micro.srv.message", queue = "students")]
///     async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> {
///         println!("{} got {}", event.name, event.grade);
///         Ok(())
///     }
/// }
/// ```
///
/// # Generated code
///
/// The impl block is left as it is (less its `#[subscribe]` marks); next to it comes the
/// table of routes `#[service]`'s `run` serves. Without the macro:
///
/// ```no_run
/// # use rmicro::prelude::*;
/// # #[derive(Serialize, Deserialize)] struct StudentRequest { name: String }
/// # #[derive(Serialize, Deserialize)] struct Student { name: String, grade: i32 }
/// # struct StudentService;
/// # impl StudentService {
/// #     async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> { todo!() }
/// #     async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> { todo!() }
/// # }
/// use std::sync::Arc;
///
/// use rmicro::Routes;
/// use rmicro::rpc::describe::describe;
///
/// fn routes() -> Routes<StudentService> {
///     Routes::new()
///         .endpoint(
///             "StudentService.GetStudent",
///             describe::<StudentRequest>(),
///             describe::<Student>(),
///             |this: Arc<StudentService>, req: StudentRequest| async move {
///                 this.get_student(req).await
///             },
///         )
///         .subscription(
///             "go.micro.srv.message",
///             Some("students"),
///             |this: Arc<StudentService>, event: Event<Student>| async move {
///                 this.on_message(event).await
///             },
///         )
/// }
/// ```
#[proc_macro_attribute]
pub fn handlers(attr: TokenStream, item: TokenStream) -> TokenStream {
    handlers::expand(attr.into(), item.into()).into()
}

/// Makes a free `async fn` handle every message published on a topic.
///
/// The function takes the message as `Event<T>` (payload plus topic and headers) or as `T`,
/// where `T: Deserialize`, and returns `Result<(), E>` with `E: Into<rmicro::Error>`. The
/// payload is decoded by the message's `Content-Type`. The service of the same program
/// subscribes it when it starts; with several services in one program, name the one it
/// belongs to with `service = ".."`. `queue = ".."` puts it in a queue group, where each
/// message goes to one subscriber of the group only.
///
/// ```no_run
/// use rmicro::prelude::*;
///
/// #[derive(Deserialize)]
/// struct Student { name: String }
///
/// #[subscribe("go.micro.srv.message")]
/// async fn on_message(event: Event<Student>) -> rmicro::Result<()> {
///     println!("received {} on {}", event.name, event.topic());
///     Ok(())
/// }
///
/// #[subscribe("go.micro.srv.created", queue = "mailers", service = "student_service")]
/// async fn send_welcome(student: Student) -> rmicro::Result<()> {
///     println!("welcome, {}", student.name);
///     Ok(())
/// }
/// ```
///
/// Inside a `#[handlers]` impl block, `#[subscribe]` marks methods instead (see
/// [`macro@handlers`]).
///
/// # Generated code
///
/// The function is left as it is. Without the macro, subscribe it on the builder:
///
/// ```no_run
/// # use rmicro::prelude::*;
/// # #[derive(Deserialize)] struct Student { name: String }
/// # async fn on_message(event: Event<Student>) -> rmicro::Result<()> { Ok(()) }
/// # fn builder() -> rmicro::ServiceBuilder { rmicro::Service::builder("student_service") }
/// use rmicro::broker;
///
/// let builder = builder().subscribe(
///     "go.micro.srv.message",
///     None,
///     broker::handler(|raw| async move { on_message(Event::<Student>::decode(raw)?).await }),
/// );
/// ```
#[proc_macro_attribute]
pub fn subscribe(attr: TokenStream, item: TokenStream) -> TokenStream {
    subscribe::expand(attr.into(), item.into()).into()
}

/// Runs an `async fn main()` on tokio's multi-threaded runtime, after rmicro's set-up
/// (logging from `RUST_LOG`, unless the program installed a `tracing` subscriber).
///
/// ```no_run
/// # use rmicro::prelude::*;
/// # #[service(name = "student_service")] struct StudentService;
/// #[rmicro::main]
/// async fn main() -> rmicro::Result<()> {
///     StudentService.run().await
/// }
/// ```
///
/// # Generated code
///
/// ```no_run
/// # use rmicro::prelude::*;
/// # #[service(name = "student_service")] struct StudentService;
/// fn main() -> rmicro::Result<()> {
///     async fn main() -> rmicro::Result<()> {
///         StudentService.run().await
///     }
///
///     // rmicro's set-up (logging, the TLS provider), then what `#[tokio::main]` does, and
///     // at the end the spans still buffered are exported (feature `otel`):
///     rmicro::__private::init();
///     tokio::runtime::Builder::new_multi_thread()
///         .enable_all()
///         .build()
///         .expect("cannot start the tokio runtime")
///         .block_on(async {
///             let output = main().await;
///             rmicro::__private::finish().await;
///             output
///         })
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(attr.into(), item.into()).into()
}
