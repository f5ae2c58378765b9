//! `rmicro mcp serve`: the registered endpoints as Model Context Protocol tools, on standard
//! input and output (what MCP clients start) or over streamable HTTP at an address, built on
//! `rmcp`, the protocol's Rust SDK.
//!
//! As go-micro v5's MCP gateway: one tool per endpoint, named `service.Endpoint`, described by
//! the endpoint's `description` metadata (a `#[handlers]` method's doc comment) or "Call
//! {Endpoint} on {service} service", its input schema an object with the request type's
//! fields. The registry is read at every `tools/list`, so services that come and go show.
//! A call goes through the normal client (selection, retries, timeout); a service's error
//! is the tool's error result, with go-micro's error JSON as its text.

use std::sync::Arc;

use bytes::Bytes;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt as _};
use rmicro::registry::{Endpoint, Value};
use rmicro::{Client, codec};
use serde_json::json;

use crate::Failure;
use crate::commands;

/// The MCP server: a client of the registry and the services.
#[derive(Clone)]
pub struct Gateway {
    client: Arc<Client>,
}

/// Serves MCP on standard input and output until the client goes away.
pub async fn serve_stdio(client: Client) -> Result<(), Failure> {
    let gateway = Gateway {
        client: Arc::new(client),
    };
    let running = gateway
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure::Failed(format!("mcp: the client did not initialize: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| Failure::Failed(format!("mcp: {e}")))?;
    Ok(())
}

/// Serves MCP over streamable HTTP at `address` (one endpoint, `/mcp`) until Ctrl-C. The
/// `Host` header must name this machine (`localhost`, a loopback address or the one bound),
/// which keeps a web page from reaching it through DNS rebinding.
pub async fn serve_http(client: Client, address: &str) -> Result<(), Failure> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let gateway = Gateway {
        client: Arc::new(client),
    };
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(at) = address.parse::<std::net::SocketAddr>() {
        hosts.push(at.ip().to_string());
    }
    let service = StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(hosts),
    );
    crate::api::listen(
        address,
        |at| format!("mcp on http://{at}/mcp (streamable HTTP; Ctrl-C to stop)"),
        move |req: http::Request<hyper::body::Incoming>| {
            let service = service.clone();
            async move {
                if req.uri().path() == "/mcp" {
                    service.handle(req).await
                } else {
                    crate::api::error(&rmicro::Error::not_found(
                        "go.micro.mcp",
                        format!("no such path `{}`: MCP is served on /mcp", req.uri().path()),
                    ))
                }
            }
        },
    )
    .await
}

/// A registry type name as a JSON Schema type (go-micro's mapping, plus arrays and the
/// fields of nested types).
fn schema_of(value: &Value) -> serde_json::Value {
    let ty = value.type_.as_str();
    if let Some(item) = ty.strip_prefix("[]") {
        let item = Value {
            type_: item.to_owned(),
            ..value.clone()
        };
        return json!({"type": "array", "items": schema_of(&item)});
    }
    let simple = match ty {
        "string" => Some("string"),
        "int" | "int8" | "int16" | "int32" | "int64" | "uint" | "uint8" | "uint16" | "uint32"
        | "uint64" => Some("integer"),
        "float32" | "float64" => Some("number"),
        "bool" => Some("boolean"),
        _ => None,
    };
    match simple {
        Some(t) => json!({"type": t}),
        None => object_schema(Some(value)),
    }
}

/// An object's schema: its fields as properties.
fn object_schema(value: Option<&Value>) -> serde_json::Value {
    let mut properties = serde_json::Map::new();
    for field in value.map(|v| v.values.as_slice()).unwrap_or_default() {
        let mut schema = schema_of(field);
        if let Some(o) = schema.as_object_mut() {
            o.insert(
                "description".to_owned(),
                json!(format!("{} field", field.name)),
            );
        }
        properties.insert(field.name.clone(), schema);
    }
    json!({"type": "object", "properties": properties})
}

fn text(value: impl Into<String>) -> Vec<ContentBlock> {
    vec![ContentBlock::text(value)]
}

/// The tool for `endpoint` of `service`, unless it is a subscriber (not callable).
fn tool_of(service: &str, endpoint: &Endpoint) -> Option<Tool> {
    if endpoint
        .metadata
        .get("subscriber")
        .is_some_and(|v| v == "true")
    {
        return None;
    }
    let description = endpoint
        .metadata
        .get("description")
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("Call {} on {service} service", endpoint.name));
    let schema: JsonObject = match object_schema(endpoint.request.as_ref()) {
        serde_json::Value::Object(o) => o,
        _ => JsonObject::new(),
    };
    Some(Tool::new(
        format!("{service}.{}", endpoint.name),
        description,
        schema,
    ))
}

fn registry_error(e: &rmicro::Error) -> ErrorData {
    ErrorData::internal_error(format!("registry: {}", e.detail), None)
}

impl Gateway {
    /// Every endpoint of every registered service as a tool (of each service's first record).
    async fn tools(&self) -> Result<Vec<Tool>, ErrorData> {
        let all = commands::all_records(&self.client)
            .await
            .map_err(|e| registry_error(&e))?;
        let mut seen = std::collections::HashSet::new();
        Ok(all
            .iter()
            .filter(|record| seen.insert(record.name.clone()))
            .flat_map(|record| {
                record
                    .endpoints
                    .iter()
                    .filter_map(|ep| tool_of(&record.name, ep))
            })
            .collect())
    }

    /// The service and endpoint the tool `name` (`service.Endpoint`) calls, looked up in the
    /// registry for that service alone. Service names may hold dots too, so each split is
    /// tried, `Handler.Method` (the last two parts) first.
    async fn target(&self, name: &str) -> Result<Option<(String, String)>, ErrorData> {
        let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
        let first = dots.len().checked_sub(2).map(|i| dots[i]);
        let splits = first
            .into_iter()
            .chain(dots.iter().copied().filter(|&d| Some(d) != first));
        let registry = commands::registry(&self.client);
        for at in splits {
            let (service, endpoint) = (&name[..at], &name[at + 1..]);
            let records = registry
                .get_service(service)
                .await
                .map_err(|e| registry_error(&e))?;
            let callable = records.first().is_some_and(|r| {
                r.endpoints
                    .iter()
                    .any(|ep| ep.name == endpoint && tool_of(service, ep).is_some())
            });
            if callable {
                return Ok(Some((service.to_owned(), endpoint.to_owned())));
            }
        }
        Ok(None)
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("rmicro", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool calls one endpoint of a registered rmicro or go-micro service, \
                 named service.Endpoint, with the request's fields as arguments.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools().await?))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some((service, endpoint)) = self.target(&request.name).await? else {
            return Err(ErrorData::invalid_params(
                format!(
                    "no tool `{}`: tools are service.Endpoint of a registered service",
                    request.name
                ),
                None,
            ));
        };
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let result = self
            .client
            .call_raw_with(
                &service,
                &endpoint,
                codec::JSON,
                Bytes::from(arguments.to_string()),
                rmicro::rpc::CallOptions::default(),
            )
            .await;
        Ok(match result {
            Ok(reply) => CallToolResult::success(text(String::from_utf8_lossy(&reply))),
            Err(e) => CallToolResult::error(text(e.to_json())),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_types_become_json_schemas() {
        let field = |name: &str, ty: &str| Value {
            name: name.to_owned(),
            type_: ty.to_owned(),
            values: Vec::new(),
        };
        let request = Value {
            name: "StudentRequest".to_owned(),
            type_: "StudentRequest".to_owned(),
            values: vec![
                field("name", "string"),
                field("grade", "int32"),
                field("tags", "[]string"),
                field("passed", "bool"),
            ],
        };
        assert_eq!(
            object_schema(Some(&request)),
            json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "name field"},
                "grade": {"type": "integer", "description": "grade field"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "tags field"},
                "passed": {"type": "boolean", "description": "passed field"},
            }})
        );
        assert_eq!(
            object_schema(None),
            json!({"type": "object", "properties": {}})
        );
    }
}
