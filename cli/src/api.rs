//! `rmicro api`: an HTTP gateway in go-micro's shape. `POST /{service}/{Endpoint}` with a JSON
//! body calls the endpoint through the registry and answers its JSON reply (200), or
//! go-micro's error JSON with the error's code as the HTTP status.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmicro::{Client, Error, codec};

use crate::Failure;

/// The largest request body the gateway reads (as a service does).
pub const MAX_BODY: usize = 4 << 20;

/// The id of the gateway's own errors.
const ID: &str = "go.micro.api";

/// Serves until Ctrl-C.
pub async fn serve(client: Client, address: &str) -> Result<(), Failure> {
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
    eprintln!(
        "api gateway listening on http://{bound} (POST /{{service}}/{{Endpoint}}; Ctrl-C to stop)"
    );
    let client = Arc::new(client);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("api: accept failed: {e}");
                    continue;
                }
            },
        };
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let client = Arc::clone(&client);
                async move { Ok::<_, Infallible>(handle(&client, req).await) }
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
fn error(err: &Error) -> Response<Full<Bytes>> {
    let status = u16::try_from(err.code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, Bytes::from(err.to_json()))
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(body));
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

async fn handle(client: &Client, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let Some((service, endpoint)) = target(&path) else {
        return error(&Error::not_found(
            ID,
            format!("no such path `{path}`: calls are POST /{{service}}/{{Endpoint}}"),
        ));
    };
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
    let (service, endpoint) = (service.to_owned(), endpoint.to_owned());
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
            &service,
            &endpoint,
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
