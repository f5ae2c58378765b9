//! `rmicro api`: an HTTP gateway in go-micro's shape. `POST /{service}/{Endpoint}` with a JSON
//! body calls the endpoint through the registry and answers its JSON reply (200), or
//! go-micro's error JSON with the error's code as the HTTP status.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmicro::{Client, Error, codec};

use crate::Failure;

/// The largest request body the gateway reads (as a service does).
pub const MAX_BODY: usize = 4 << 20;

/// The id of the gateway's own errors.
const ID: &str = "go.micro.api";

/// A response body: whole, or streamed (the dashboard's server-sent events).
pub type Body = BoxBody<Bytes, Infallible>;

/// Serves the gateway until Ctrl-C.
pub async fn serve(client: Client, address: &str) -> Result<(), Failure> {
    let client = Arc::new(client);
    listen(
        address,
        |at| format!("api gateway listening on http://{at} (POST /{{service}}/{{Endpoint}}; Ctrl-C to stop)"),
        move |req| {
            let client = Arc::clone(&client);
            async move { handle(&client, req).await }
        },
    )
    .await
}

/// Listens on `address` and answers each request with `handler` until Ctrl-C, printing
/// `banner` (given the bound address) on stderr once listening. HTTP/1 with a header-read
/// timeout, so an idle or slow client cannot hold a connection forever.
pub async fn listen<F, Fut>(
    address: &str,
    banner: impl Fn(SocketAddr) -> String,
    handler: F,
) -> Result<(), Failure>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let addr: SocketAddr = address.parse().map_err(|_| {
        Failure::Usage(format!(
            "--address `{address}` is not an IP address and port such as 127.0.0.1:8080"
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Failed(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    eprintln!("{}", banner(bound));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    continue;
                }
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// go-micro's error JSON, with its code as the status (500 when it is no HTTP status).
pub fn error(err: &Error) -> Response<Body> {
    let status = u16::try_from(err.code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, Bytes::from(err.to_json()))
}

pub fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut rsp = Response::new(Full::new(body).boxed());
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(codec::JSON),
    );
    rsp
}

/// `/{service}/{Endpoint}`, both non-empty.
fn target(path: &str) -> Option<(&str, &str)> {
    let (service, endpoint) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !endpoint.is_empty() && !endpoint.contains('/'))
        .then_some((service, endpoint))
}

async fn handle(client: &Client, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some((service, endpoint)) = target(&path) else {
        return error(&Error::not_found(
            ID,
            format!("no such path `{path}`: calls are POST /{{service}}/{{Endpoint}}"),
        ));
    };
    let (service, endpoint) = (service.to_owned(), endpoint.to_owned());
    call(client, &service, &endpoint, req).await
}

/// Calls `endpoint` of `service` with the request's JSON body.
pub async fn call(
    client: &Client,
    service: &str,
    endpoint: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() != Method::POST {
        let mut rsp = error(&Error::new(
            ID,
            405,
            format!("`{}` is not allowed: calls are POST", req.method()),
        ));
        rsp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return rsp;
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return if e.is::<http_body_util::LengthLimitError>() {
                error(&Error::new(
                    ID,
                    413,
                    format!("the request body is over {MAX_BODY} bytes"),
                ))
            } else {
                error(&Error::bad_request(
                    ID,
                    format!("cannot read the body: {e}"),
                ))
            };
        }
    };
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
        return error(&Error::bad_request(
            ID,
            format!("the request body is not JSON: {e}"),
        ));
    }
    match client
        .call_raw_with(
            service,
            endpoint,
            codec::JSON,
            body,
            rmicro::rpc::CallOptions::default(),
        )
        .await
    {
        Ok(reply) => json(StatusCode::OK, reply),
        Err(e) => error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_service_and_an_endpoint() {
        assert_eq!(
            target("/student_service/StudentService.GetStudent"),
            Some(("student_service", "StudentService.GetStudent"))
        );
        for bad in [
            "/",
            "/student_service",
            "/student_service/",
            "//X.Y",
            "/a/b/c",
            "",
        ] {
            assert_eq!(target(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_carry_their_code_as_the_status() {
        assert_eq!(error(&Error::not_found("x", "gone")).status(), 404);
        assert_eq!(error(&Error::new("x", 0, "odd")).status(), 500);
        assert_eq!(
            error(&Error::new("x", 200, "not an error code")).status(),
            500
        );
    }
}
