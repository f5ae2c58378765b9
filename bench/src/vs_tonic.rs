//! rmicro against tonic, what a Rust team would use instead: a unary gRPC GetStudent with the
//! same prost messages, a tonic server (`tonic::transport::Server`) and a tonic client (one
//! `Channel`, cloned by every caller, as tonic's documentation has it), written as
//! tonic-build's generated code would be (no protoc here).
//!
//! rmicro's side is its default stack: `Client::call` to a service over mucp, protobuf.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use rmicro::registry::SharedRegistry;
use rmicro::registry::memory::MemoryRegistry;
use tokio::net::TcpListener;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_prost::ProstCodec;

use crate::rpc::{CALLERS, SERVICE, client_for, rmicro_load, start_rmicro};
use crate::student::{Student, StudentRequest, get_student};
use crate::{Config, load, progress, progress_ratio, stats::Row};

/// The method's gRPC path, as tonic-build names it for `student.StudentService`.
const PATH: &str = "/student.StudentService/GetStudent";

/// The server: routes GetStudent as generated code does.
#[derive(Clone, Copy)]
struct Students;

impl tonic::server::NamedService for Students {
    const NAME: &'static str = "student.StudentService";
}

impl<B> tower_service::Service<http::Request<B>> for Students
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != PATH {
                return Ok(tonic::Status::unimplemented(req.uri().path().to_owned()).into_http());
            }
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<Student, StudentRequest>::default());
            Ok(grpc.unary(GetStudent, req).await)
        })
    }
}

/// The handler: the same work as every other side.
#[derive(Clone, Copy)]
struct GetStudent;

impl tonic::server::UnaryService<StudentRequest> for GetStudent {
    type Response = Student;
    type Future = std::future::Ready<Result<tonic::Response<Student>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<StudentRequest>) -> Self::Future {
        std::future::ready(
            get_student(req.get_ref())
                .map(tonic::Response::new)
                .ok_or_else(|| tonic::Status::not_found("no such student")),
        )
    }
}

async fn start_server() -> std::io::Result<(Channel, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // `Server::tcp_nodelay` covers only the listener it binds itself; an incoming stream
    // takes it from here (without it, Nagle's algorithm stalls replies by 40 ms).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .tcp_nodelay(true)
            .add_service(Students)
            .serve_with_incoming(incoming)
            .await;
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(std::io::Error::other)?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(std::io::Error::other)?;
    Ok((channel, task))
}

async fn tonic_call(channel: Channel) -> Result<(), String> {
    let mut grpc = Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let request = tonic::Request::new(StudentRequest {
        name: "davie".into(),
    });
    let codec = ProstCodec::<StudentRequest, Student>::default();
    let reply = grpc
        .unary(request, PathAndQuery::from_static(PATH), codec)
        .await
        .map_err(|s| s.to_string())?;
    if reply.get_ref().grade == 80 {
        Ok(())
    } else {
        Err("wrong student".into())
    }
}

/// Runs the tonic rows: protobuf at each concurrency.
pub async fn run(cfg: &Config) -> Vec<Row> {
    let registry: SharedRegistry = Arc::new(MemoryRegistry::new());
    let service = match start_rmicro(Arc::clone(&registry)).await {
        Ok(s) => s,
        Err(e) => return vec![Row::skipped("tonic", "all", format!("rmicro service: {e}"))],
    };
    let (channel, task) = match start_server().await {
        Ok(x) => x,
        Err(e) => return vec![Row::skipped("tonic", "all", format!("tonic server: {e}"))],
    };
    let client = client_for(&registry, "application/protobuf");
    let mut rows = Vec::new();
    for callers in CALLERS {
        progress(format!("tonic proto c={callers}: rmicro vs tonic"));
        let (a, b) = load::alternate(
            cfg.rounds,
            cfg.warmup,
            cfg.round,
            async |len| {
                rmicro_load(&client, SERVICE, "davie", &Default::default(), callers, len).await
            },
            async |len| {
                let ch = channel.clone();
                load::closed_loop(callers, len, move || tonic_call(ch.clone())).await
            },
        )
        .await;
        let row = Row::compare(
            "tonic",
            &format!("proto c={callers}"),
            "req/s",
            a,
            "tonic 0.14",
            b,
        );
        progress_ratio(&row);
        rows.push(row);
    }
    task.abort();
    let _ = service.stop().await;
    rows
}
