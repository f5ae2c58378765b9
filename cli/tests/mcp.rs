//! `rmicro mcp serve` driven by a real MCP client (rmcp, the protocol's Rust SDK, starting it
//! as a child process the way MCP clients do): the service's endpoint is a tool named
//! `service.Endpoint`, described by the handler's doc comment, with its request's fields as
//! the input schema; calling it returns the reply, and a service's error is the tool's error
//! result with go-micro's error JSON. Over stdio and over streamable HTTP.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

mod support;

use support::{DAVIE, RMICRO, UP, student_service, unique};

/// What both transports must show: the tool, its description and schema, a call, a
/// service's error, an unknown tool.
async fn check(client: &rmcp::service::Peer<rmcp::RoleClient>, name: &str) {
    let tool_name = format!("{name}.StudentService.GetStudent");
    let deadline = Instant::now() + UP;
    let tool = loop {
        let tools = client.list_all_tools().await.expect("tools/list");
        if let Some(t) = tools.into_iter().find(|t| t.name == tool_name) {
            break t;
        }
        assert!(Instant::now() < deadline, "no tool {tool_name}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        tool.description.as_deref(),
        Some("Looks a student up by name.")
    );
    assert_eq!(
        Value::Object((*tool.input_schema).clone()),
        json!({"type": "object", "properties": {"name": {"type": "string", "description": "name field"}}})
    );

    let arguments = json!({"name": "davie"})
        .as_object()
        .cloned()
        .expect("object");
    let result = client
        .call_tool(CallToolRequestParams::new(tool_name.clone()).with_arguments(arguments))
        .await
        .expect("tools/call");
    assert_eq!(result.is_error, Some(false));
    let text = result.content[0].as_text().expect("text").text.clone();
    let reply: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(reply, serde_json::from_str::<Value>(DAVIE).expect("JSON"));

    let arguments = json!({"name": "nobody"})
        .as_object()
        .cloned()
        .expect("object");
    let result = client
        .call_tool(CallToolRequestParams::new(tool_name).with_arguments(arguments))
        .await
        .expect("tools/call");
    assert_eq!(result.is_error, Some(true));
    let text = result.content[0].as_text().expect("text").text.clone();
    let err: Value = serde_json::from_str(&text).expect("error JSON");
    assert_eq!(
        (err["code"].as_i64(), err["id"].as_str()),
        (Some(404), Some("student_service"))
    );

    let unknown = client
        .call_tool(CallToolRequestParams::new("nobody_service.X.Y"))
        .await;
    assert!(
        unknown.is_err_and(|e| e.to_string().contains("no tool `nobody_service.X.Y`")),
        "an unknown tool is a protocol error naming it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tools_an_mcp_client_lists_and_calls_over_stdio() {
    let name = unique("cli-mcp");
    let service = student_service(&name, Arc::new(Mutex::new(Vec::new()))).await;
    let mut command = tokio::process::Command::new(RMICRO);
    command.args(["mcp", "serve", "--stdio"]);
    let client =
        ().serve(TokioChildProcess::new(command).expect("spawn rmicro mcp serve"))
            .await
            .expect("initialized");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("rmicro")
    );
    check(&client, &name).await;
    client.cancel().await.expect("close");
    service.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tools_over_streamable_http_too() {
    use rmcp::transport::StreamableHttpClientTransport;
    let name = unique("cli-mcp-http");
    let service = student_service(&name, Arc::new(Mutex::new(Vec::new()))).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = rmicro_conformance::process::Proc::spawn(
        RMICRO,
        &["mcp", "serve", "--address", &format!("127.0.0.1:{port}")],
        &[],
    );
    tokio::task::block_in_place(|| server.wait_for("mcp on http://", UP));
    let transport = StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/mcp"));
    let client = ().serve(transport).await.expect("initialized over HTTP");
    check(&client, &name).await;
    client.cancel().await.expect("close");
    // A request whose Host names another machine (a page reaching it through DNS
    // rebinding) is refused; a path other than /mcp is not found.
    let status = |host: &str, path: &str| {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(0)
    };
    let refused = tokio::task::block_in_place(|| status(&format!("evil.example:{port}"), "/mcp"));
    assert!((400..500).contains(&refused), "a foreign Host: {refused}");
    let missing = tokio::task::block_in_place(|| status(&format!("127.0.0.1:{port}"), "/other"));
    assert_eq!(missing, 404);
    server.signal("INT");
    tokio::task::block_in_place(|| assert_eq!(server.wait_exit(UP), Some(0)));
    service.stop().await.expect("stop");
}
