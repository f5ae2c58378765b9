//! `rmicro mcp serve` driven by a real MCP client (rmcp, the protocol's Rust SDK, starting it
//! as a child process the way MCP clients do): the service's endpoint is a tool named
//! `service.Endpoint`, described by the handler's doc comment, with its request's fields as
//! the input schema; calling it returns the reply, and a service's error is the tool's error
//! result with go-micro's error JSON.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

mod support;

use support::{DAVIE, RMICRO, UP, student_service, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tools_an_mcp_client_lists_and_calls() {
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
    client.cancel().await.expect("close");
    service.stop().await.expect("stop");
}
