//! rmicro-build: compiles `.proto` files for [rmicro](https://docs.rs/rmicro) in a build
//! script, with prost-build and protox (a protobuf compiler written in Rust: no `protoc`).
//!
//! For every message it generates a prost type that also derives serde, so it speaks both
//! `application/protobuf` and `application/json`, with go-micro's JSON names (the proto field
//! names, as protoc-gen-go's `json` tags) and missing fields read as their defaults (Go omits
//! zero values); each message registers its protobuf codec with rmicro at link time, so it
//! is called and published as protobuf by default. For every proto `service` it generates
//! what protoc-gen-micro generates for Go:
//!
//! - a handler trait, `<Service>Handler`, with one `async` method per rpc and a provided
//!   `routes()` serving them under go-micro's endpoint names (`StudentService.GetStudent`);
//! - a typed client, `<Service>Client`, with one method per rpc.
//!
//! # Wiring it in
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! rmicro = "0.1"
//!
//! [build-dependencies]
//! rmicro-build = "0.1"
//! ```
//!
//! `build.rs`:
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     rmicro_build::compile_protos(&["proto/student.proto"], &["proto"])
//! }
//! ```
//!
//! `src/lib.rs` (the module holds proto package `message`):
//!
//! ```ignore
//! pub mod message {
//!     rmicro::include_proto!("message");
//! }
//! ```
//!
//! Serving a proto service: implement the handler trait in a `#[handlers]` block, and the
//! `#[service]` struct's `run()` serves the proto service's endpoints:
//!
//! ```ignore
//! use message::{Student, StudentRequest, StudentServiceHandler};
//!
//! #[rmicro::service(name = "student_service")]
//! struct Students;
//!
//! #[rmicro::handlers]
//! impl StudentServiceHandler for Students {
//!     async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> { .. }
//! }
//!
//! Students.run().await
//! ```
//!
//! Without the macros: `Service::builder("student_service").handler(Students,
//! Students::routes())`. Or write `#[handlers] impl StudentService { pub async fn
//! get_student(..) }` on a struct named like the proto service (the same endpoint names).
//! Calling it:
//! `message::StudentServiceClient::new("student_service", client).get_student(&req).await`.
//!
//! The generated code names only `::rmicro` (serde and prost through rmicro's re-exports), so
//! the crate needs no other dependency.
//!
//! # Limits
//!
//! Streaming rpcs are generated in the shapes `#[handlers]` takes (`Requests<In>` and/or
//! `Replies<Out>`, see `rmicro::rpc::stream`), with client methods returning a `CallStream`.
//! JSON of `bytes` fields is an array of
//! numbers (Go writes base64), JSON of `oneof` fields does not follow Go's shape, and the
//! well-known types (`google.protobuf.*`) have no serde derives: keep them out of messages that
//! must speak JSON.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use prost_build::{Method, Service, ServiceGenerator};
use prost_types::{DescriptorProto, FileDescriptorSet};

/// Compiles `protos`, found under the `includes` directories, into `$OUT_DIR/<package>.rs`
/// with the default [`Builder`].
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> io::Result<()> {
    Builder::new().compile(protos, includes)
}

/// Options of the code generation.
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    rmicro_path: String,
    services: bool,
    serde: bool,
    rerun_if_changed: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// The defaults: output in `$OUT_DIR`, handler traits and clients for services, serde
    /// derives on messages, `cargo:rerun-if-changed` lines for the inputs.
    pub fn new() -> Self {
        Builder {
            out_dir: None,
            rmicro_path: "::rmicro".to_owned(),
            services: true,
            serde: true,
            rerun_if_changed: true,
        }
    }

    /// Writes the generated files to `dir` instead of `$OUT_DIR`.
    #[must_use]
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The path generated code names rmicro by (default `::rmicro`), for crates that rename
    /// or re-export it.
    #[must_use]
    pub fn rmicro_path(mut self, path: impl Into<String>) -> Self {
        self.rmicro_path = path.into();
        self
    }

    /// Whether to generate handler traits and typed clients for proto services (default on).
    #[must_use]
    pub fn services(mut self, on: bool) -> Self {
        self.services = on;
        self
    }

    /// Whether messages derive serde, and so speak JSON too (default on). Off, messages are
    /// protobuf only: use them as `rmicro::codec::Proto<T>`.
    #[must_use]
    pub fn serde(mut self, on: bool) -> Self {
        self.serde = on;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the inputs (default on).
    #[must_use]
    pub fn rerun_if_changed(mut self, on: bool) -> Self {
        self.rerun_if_changed = on;
        self
    }

    /// Compiles `protos`, found under the `includes` directories (paths of `protos` may be
    /// given relative to an include directory or as they are), one Rust file per proto
    /// package.
    pub fn compile(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        if self.rerun_if_changed {
            for path in protos.iter().map(AsRef::as_ref) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            for path in includes.iter().map(AsRef::as_ref) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let fds = protox::compile(protos, includes).map_err(|e| {
            let file = e.file().map(|f| format!(" (in `{f}`)")).unwrap_or_default();
            io::Error::other(format!("cannot compile the proto files{file}: {e}"))
        })?;
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                io::Error::other("`OUT_DIR` is not set: call rmicro-build from a build script, or set `Builder::out_dir`")
            })?,
        };
        let mut config = self.config(&fds);
        config.out_dir(&out_dir);
        config.compile_fds(fds.clone())?;
        for package in packages(&fds) {
            let file = out_dir.join(format!(
                "{}.rs",
                if package.is_empty() { "_" } else { &package }
            ));
            register_messages(&file, &self.rmicro_path)?;
        }
        Ok(())
    }

    fn config(&self, fds: &FileDescriptorSet) -> prost_build::Config {
        let rmicro = &self.rmicro_path;
        let mut config = prost_build::Config::new();
        config.prost_path(format!("{rmicro}::__private::prost"));
        if self.serde {
            let serde = format!("{rmicro}::__private::serde");
            let derive = format!(
                "#[derive({serde}::Serialize, {serde}::Deserialize)]\n#[serde(crate = \"{serde}\")]"
            );
            config.message_attribute(".", format!("{derive}\n#[serde(default)]"));
            config.enum_attribute(".", derive);
            for (path, name) in json_names(fds) {
                config.field_attribute(path, format!("#[serde(rename = \"{name}\")]"));
            }
        }
        if self.services {
            config.service_generator(Box::new(Services {
                rmicro: rmicro.clone(),
            }));
        }
        config
    }
}

/// The proto packages of the compiled files.
fn packages(fds: &FileDescriptorSet) -> BTreeSet<String> {
    fds.file
        .iter()
        .map(|file| file.package().to_owned())
        .collect()
}

/// Every message field that prost turns into a struct field, with its proto name: the JSON
/// name go-micro peers use (protoc-gen-go's `json:"<proto name>,omitempty"`). Fields of a
/// `oneof` are left as prost names them.
fn json_names(fds: &FileDescriptorSet) -> Vec<(String, String)> {
    fn walk(prefix: &str, message: &DescriptorProto, out: &mut Vec<(String, String)>) {
        let path = format!("{prefix}.{}", message.name());
        for field in &message.field {
            if field.oneof_index.is_some() && !field.proto3_optional() {
                continue;
            }
            // prost keeps an all-lowercase name as it is: nothing to rename.
            if !field.name().chars().all(|c| c.is_ascii_lowercase()) {
                out.push((format!("{path}.{}", field.name()), field.name().to_owned()));
            }
        }
        for nested in &message.nested_type {
            if !nested.options.as_ref().is_some_and(|o| o.map_entry()) {
                walk(&path, nested, out);
            }
        }
    }
    let mut out = Vec::new();
    for file in &fds.file {
        let prefix = if file.package().is_empty() {
            String::new()
        } else {
            format!(".{}", file.package())
        };
        for message in &file.message_type {
            walk(&prefix, message, &mut out);
        }
    }
    out
}

/// Appends `rmicro::protobuf!(..)` naming every message struct of a generated file, so their
/// codecs are in rmicro's table from the program's start.
fn register_messages(file: &Path, rmicro: &str) -> io::Result<()> {
    fn collect(items: &[syn::Item], module: &str, out: &mut Vec<String>) {
        for item in items {
            match item {
                syn::Item::Struct(s)
                    if derives_message(&s.attrs) && s.generics.params.is_empty() =>
                {
                    out.push(format!("{module}{}", s.ident));
                }
                syn::Item::Mod(m) => {
                    if let Some((_, items)) = &m.content {
                        collect(items, &format!("{module}{}::", m.ident), out);
                    }
                }
                _ => {}
            }
        }
    }
    let code = match std::fs::read_to_string(file) {
        Ok(code) => code,
        // A package with no message and no service produces no file.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let parsed = syn::parse_file(&code).map_err(|e| {
        io::Error::other(format!(
            "cannot read the generated `{}`: {e}",
            file.display()
        ))
    })?;
    let mut messages = Vec::new();
    collect(&parsed.items, "", &mut messages);
    if messages.is_empty() {
        return Ok(());
    }
    let mut out = code;
    out.push_str(
        "// Generated by rmicro-build: the messages' protobuf codecs, registered at link time.\n",
    );
    let _ = writeln!(out, "{rmicro}::protobuf!({});", messages.join(", "));
    std::fs::write(file, out)
}

fn derives_message(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("derive")
            && attr
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
                )
                .is_ok_and(|paths| {
                    paths
                        .iter()
                        .any(|p| p.segments.last().is_some_and(|s| s.ident == "Message"))
                })
    })
}

/// Writes the handler trait and the typed client of each proto service.
struct Services {
    rmicro: String,
}

impl ServiceGenerator for Services {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let rmicro = &self.rmicro;
        let name = &service.name;
        let full_name = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let endpoint = |m: &Method| format!("{}.{}", service.proto_name, m.proto_name);
        let requests = |m: &Method| format!("{rmicro}::rpc::stream::Requests<{}>", m.input_type);
        let replies = |m: &Method| format!("{rmicro}::rpc::stream::Replies<{}>", m.output_type);

        // The handler trait: a method per rpc, in the shape `#[handlers]` takes for it.
        let _ = writeln!(
            buf,
            "/// The handlers of proto service `{full_name}`: implement it (`async fn` methods), then serve\n\
             /// it with `ServiceBuilder::handler(value, Value::routes())`."
        );
        let _ = writeln!(
            buf,
            "pub trait {name}Handler: ::core::marker::Send + ::core::marker::Sync + 'static {{"
        );
        for m in &service.methods {
            doc(m, buf);
            let (arguments, output) = match (m.client_streaming, m.server_streaming) {
                (false, false) => (format!("request: {}", m.input_type), m.output_type.clone()),
                (false, true) => (
                    format!("request: {}, replies: {}", m.input_type, replies(m)),
                    "()".to_owned(),
                ),
                (true, false) => (format!("requests: {}", requests(m)), m.output_type.clone()),
                (true, true) => (
                    format!("requests: {}, replies: {}", requests(m), replies(m)),
                    "()".to_owned(),
                ),
            };
            let _ = writeln!(
                buf,
                "    fn {}(&self, {arguments}) -> impl ::core::future::Future<Output = {rmicro}::Result<{output}>> + ::core::marker::Send;",
                m.name
            );
        }
        let _ = writeln!(
            buf,
            "    /// The routes serving this service's endpoints with `Self`'s methods, under go-micro's\n\
             \x20   /// names (`{}`).\n\
             \x20   fn routes() -> {rmicro}::Routes<Self> where Self: ::core::marker::Sized {{\n\
             \x20       {rmicro}::Routes::new()",
            service.methods.first().map(&endpoint).unwrap_or_default()
        );
        for m in &service.methods {
            let (route, arguments, call) = match (m.client_streaming, m.server_streaming) {
                (false, false) => ("endpoint", format!("request: {}", m.input_type), "request"),
                (false, true) => (
                    "server_stream",
                    format!("request: {}, replies: {}", m.input_type, replies(m)),
                    "request, replies",
                ),
                (true, false) => (
                    "client_stream",
                    format!("requests: {}", requests(m)),
                    "requests",
                ),
                (true, true) => (
                    "bidi_stream",
                    format!("requests: {}, replies: {}", requests(m), replies(m)),
                    "requests, replies",
                ),
            };
            let _ = writeln!(
                buf,
                "            .{route}::<{input}, {output}, _, _>(\n\
                 \x20               \"{endpoint}\",\n\
                 \x20               {rmicro}::rpc::describe::describe::<{input}>(),\n\
                 \x20               {rmicro}::rpc::describe::describe::<{output}>(),\n\
                 \x20               |this: ::std::sync::Arc<Self>, {arguments}| async move {{ this.{method}({call}).await }},\n\
                 \x20           )",
                input = m.input_type,
                output = m.output_type,
                endpoint = endpoint(m),
                method = m.name,
            );
        }
        buf.push_str("    }\n}\n");

        // The typed client.
        let _ = writeln!(
            buf,
            "/// A typed client of proto service `{full_name}` (protoc-gen-micro's `New{name}Service`).\n\
             #[derive(Debug, Clone)]\n\
             pub struct {name}Client {{\n\
             \x20   client: {rmicro}::Client,\n\
             \x20   service: ::std::string::String,\n\
             }}\n\
             impl {name}Client {{\n\
             \x20   /// A client of the service registered as `service` (e.g. `student_service`), calling\n\
             \x20   /// through `client`.\n\
             \x20   pub fn new(service: impl ::core::convert::Into<::std::string::String>, client: {rmicro}::Client) -> Self {{\n\
             \x20       Self {{ client, service: service.into() }}\n\
             \x20   }}\n\
             \x20   /// The registered service name calls go to.\n\
             \x20   pub fn service(&self) -> &str {{\n\
             \x20       &self.service\n\
             \x20   }}"
        );
        for m in &service.methods {
            doc(m, buf);
            if !m.client_streaming && !m.server_streaming {
                let _ = writeln!(
                    buf,
                    "    pub async fn {method}(&self, request: &{input}) -> {rmicro}::Result<{output}> {{\n\
                     \x20       self.client.call(&self.service, \"{endpoint}\", request).await\n\
                     \x20   }}\n\
                     \x20   /// [`Self::{method}`] with per-call options (content type, timeout, retries, address).\n\
                     \x20   pub async fn {method}_with(&self, request: &{input}, options: {rmicro}::rpc::CallOptions) -> {rmicro}::Result<{output}> {{\n\
                     \x20       self.client.call_with(&self.service, \"{endpoint}\", request, options).await\n\
                     \x20   }}",
                    method = m.name,
                    input = m.input_type,
                    output = m.output_type,
                    endpoint = endpoint(m),
                );
                continue;
            }
            // A stream: opened as go-micro's generated client opens it; a server-streaming
            // rpc sends its one request at once.
            let (request_argument, send) = if m.client_streaming {
                (String::new(), "")
            } else {
                (
                    format!(", request: &{}", m.input_type),
                    "\n        stream.send(request).await?;",
                )
            };
            let _ = writeln!(
                buf,
                "    pub async fn {method}(&self{request_argument}) -> {rmicro}::Result<{rmicro}::rpc::stream::CallStream<{input}, {output}>> {{\n\
                 \x20       self.{method}_with({call}{rmicro}::rpc::CallOptions::default()).await\n\
                 \x20   }}\n\
                 \x20   /// [`Self::{method}`] with per-call options (content type, address, metadata).\n\
                 \x20   pub async fn {method}_with(&self{request_argument}, options: {rmicro}::rpc::CallOptions) -> {rmicro}::Result<{rmicro}::rpc::stream::CallStream<{input}, {output}>> {{\n\
                 \x20       #[allow(unused_mut)]\n\
                 \x20       let mut stream = self.client.stream_with(&self.service, \"{endpoint}\", options).await?;{send}\n\
                 \x20       Ok(stream)\n\
                 \x20   }}",
                method = m.name,
                input = m.input_type,
                output = m.output_type,
                endpoint = endpoint(m),
                call = if m.client_streaming { "" } else { "request, " },
            );
        }
        buf.push_str("}\n");
    }
}

/// The rpc's comments from the .proto, or a line naming it.
fn doc(m: &Method, buf: &mut String) {
    if m.comments.leading.is_empty() && m.comments.trailing.is_empty() {
        let _ = writeln!(
            buf,
            "    /// rpc `{}({}) returns ({})`.",
            m.proto_name, m.input_proto_type, m.output_proto_type
        );
    } else {
        m.comments.append_with_indent(1, buf);
    }
}
