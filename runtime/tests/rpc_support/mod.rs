//! A student service served on 127.0.0.1 for the rpc tests, and a registry wrapper that counts
//! lookups.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rmicro::registry::memory::MemoryRegistry;
use rmicro::registry::{
    Metadata, Node, RegisterOptions, Registry, Service, SharedRegistry, WatchOptions, Watcher,
};
use rmicro::rpc::describe::describe;
use rmicro::rpc::server::{Server, ServerHandle, ServerOptions};
use rmicro::rpc::{CallOptions, Client, ClientOptions, Routes, Strategy};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub const SERVICE: &str = "student_service";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRequest {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Student {
    pub name: String,
    pub grade: i32,
    /// Which server answered.
    pub server: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowRequest {
    pub millis: u64,
}

/// The handler value: a tag naming the server, a gate `Hold` waits on, and call counters.
pub struct StudentService {
    pub tag: String,
    pub gate: Arc<Semaphore>,
    pub calls: Arc<AtomicU32>,
}

async fn get_student(this: Arc<StudentService>, req: StudentRequest) -> rmicro::Result<Student> {
    this.calls.fetch_add(1, Ordering::SeqCst);
    Ok(Student {
        name: req.name,
        grade: 80,
        server: this.tag.clone(),
    })
}

async fn explode(_: Arc<StudentService>, req: StudentRequest) -> rmicro::Result<Student> {
    panic!("boom for {}", req.name)
}

async fn slow(this: Arc<StudentService>, req: SlowRequest) -> rmicro::Result<Student> {
    tokio::time::sleep(Duration::from_millis(req.millis)).await;
    Ok(Student {
        name: "slow".into(),
        grade: 0,
        server: this.tag.clone(),
    })
}

/// Waits until the test adds a permit to the gate.
async fn hold(this: Arc<StudentService>, req: StudentRequest) -> rmicro::Result<Student> {
    let permit = this.gate.acquire().await;
    drop(permit);
    get_student(this, req).await
}

/// Fails with an application error (never retried).
async fn refuse(this: Arc<StudentService>, req: StudentRequest) -> rmicro::Result<Student> {
    this.calls.fetch_add(1, Ordering::SeqCst);
    Err(rmicro::Error::internal_server_error(
        SERVICE,
        format!("no student named {}", req.name),
    ))
}

/// Times out (408) on its first call, then answers.
async fn flaky(this: Arc<StudentService>, req: StudentRequest) -> rmicro::Result<Student> {
    if this.calls.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(rmicro::Error::timeout(SERVICE, "busy, try again"));
    }
    Ok(Student {
        name: req.name,
        grade: 80,
        server: this.tag.clone(),
    })
}

pub fn routes() -> Routes<StudentService> {
    let req = describe::<StudentRequest>;
    let rsp = describe::<Student>;
    Routes::new()
        .endpoint("StudentService.GetStudent", req(), rsp(), get_student)
        .endpoint("StudentService.Explode", req(), rsp(), explode)
        .endpoint(
            "StudentService.Slow",
            describe::<SlowRequest>(),
            rsp(),
            slow,
        )
        .endpoint("StudentService.Hold", req(), rsp(), hold)
        .endpoint("StudentService.Refuse", req(), rsp(), refuse)
        .endpoint("StudentService.Flaky", req(), rsp(), flaky)
}

/// A running student server.
pub struct Running {
    pub handle: ServerHandle,
    pub service: Service,
    pub gate: Arc<Semaphore>,
    pub calls: Arc<AtomicU32>,
}

impl Running {
    pub fn address(&self) -> String {
        self.handle.local_addr().to_string()
    }

    /// Call options that send straight to this server, bypassing the registry.
    pub fn direct(&self) -> CallOptions {
        CallOptions {
            address: Some(self.address()),
            ..CallOptions::default()
        }
    }
}

pub async fn start(tag: &str) -> Running {
    start_with(
        tag,
        ServerOptions {
            name: SERVICE.into(),
            ..ServerOptions::default()
        },
    )
    .await
}

pub async fn start_with(tag: &str, opts: ServerOptions) -> Running {
    let gate = Arc::new(Semaphore::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let routes = routes();
    let endpoints = routes.endpoints().cloned().collect();
    let bound = routes.bind(Arc::new(StudentService {
        tag: tag.into(),
        gate: Arc::clone(&gate),
        calls: Arc::clone(&calls),
    }));
    let server = Server::bind("127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("bind 127.0.0.1:0");
    let handle = server.serve(bound.endpoints, opts);
    let service = Service {
        name: SERVICE.into(),
        version: "v1.0.0".into(),
        metadata: Metadata::new(),
        endpoints,
        nodes: vec![Node {
            id: format!("{SERVICE}-{tag}"),
            address: handle.local_addr().to_string(),
            metadata: Metadata::from([("protocol".into(), "mucp".into())]),
        }],
    };
    Running {
        handle,
        service,
        gate,
        calls,
    }
}

/// Starts a server and registers it.
pub async fn start_registered(registry: &MemoryRegistry, tag: &str) -> Running {
    let running = start(tag).await;
    registry
        .register(&running.service, RegisterOptions::default())
        .await
        .expect("register");
    running
}

pub fn client(registry: SharedRegistry, strategy: Strategy) -> Client {
    Client::new(
        registry,
        ClientOptions {
            strategy,
            request_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
}

/// A registry that counts `get_service` calls.
#[derive(Debug, Clone)]
pub struct Counting {
    pub inner: MemoryRegistry,
    pub lookups: Arc<AtomicU32>,
}

impl Counting {
    pub fn new(inner: MemoryRegistry) -> Self {
        Self {
            inner,
            lookups: Arc::new(AtomicU32::new(0)),
        }
    }

    pub fn lookups(&self) -> u32 {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Registry for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    async fn register(&self, service: &Service, opts: RegisterOptions) -> rmicro::Result<()> {
        self.inner.register(service, opts).await
    }
    async fn deregister(&self, service: &Service) -> rmicro::Result<()> {
        self.inner.deregister(service).await
    }
    async fn get_service(&self, name: &str) -> rmicro::Result<Vec<Service>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.get_service(name).await
    }
    async fn list_services(&self) -> rmicro::Result<Vec<Service>> {
        self.inner.list_services().await
    }
    async fn watch(&self, opts: WatchOptions) -> rmicro::Result<Watcher> {
        self.inner.watch(opts).await
    }
}

/// Polls `cond` every 10 ms for at most 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
