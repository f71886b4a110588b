//! The OpenAPI 3.1 document, generated from the route table and the schemas the body types
//! derive, so every route is documented and every documented body is the type that is sent.

use serde_json::{json, Map, Value};

use crate::{AuthKind, Endpoint, ErrorBody, Payload, ENDPOINTS};

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

/// The media type and schema of a body; a page wraps `items` of the body's type.
fn content(payload: &Payload, paged: bool) -> Value {
    match payload {
        Payload::Archive => json!({ "application/zstd": { "schema":
            { "type": "string", "format": "binary", "contentMediaType": "application/zstd" } } }),
        Payload::Text => json!({ "text/plain": { "schema": string() } }),
        Payload::Json(ty) if paged => json!({ "application/json": { "schema": {
            "type": "object",
            "properties": {
                "items": { "type": "array", "items": reference(&(ty.name)()) },
                "next_cursor": { "type": ["string", "null"] },
            },
            "required": ["items", "next_cursor"],
            "additionalProperties": false,
        } } }),
        Payload::Json(ty) => json!({ "application/json": { "schema": reference(&(ty.name)()) } }),
    }
}

fn parameters(e: &Endpoint) -> Vec<Value> {
    let mut params: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": string() }))
        .collect();
    if e.paged {
        params.push(json!({ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } }));
        params.push(json!({ "name": "cursor", "in": "query", "required": false, "schema": string(), "description": "next_cursor of the previous page" }));
    }
    for (name, description) in e.query {
        params.push(json!({ "name": name, "in": "query", "required": false, "schema": string(), "description": description }));
    }
    params
}

fn operation(e: &Endpoint) -> Value {
    let success = match &e.response {
        None if e.status == 302 => json!({
            "description": "redirect",
            "headers": { "Location": { "schema": string() } },
        }),
        None => json!({ "description": "done" }),
        Some(payload) => json!({
            "description": if e.paged { "a page" } else { "ok" },
            "content": content(payload, e.paged),
        }),
    };
    let mut responses = Map::new();
    responses.insert(e.status.to_string(), success);
    responses.insert("default".into(), json!({ "description": "error", "content": { "application/json": { "schema": reference("Error") } } }));
    let mut op = json!({
        "operationId": e.operation_id(),
        "summary": e.summary,
        "tags": [e.tag],
        "parameters": parameters(e),
        "responses": responses,
        "security": match e.auth {
            AuthKind::User => json!([{ "userToken": [] }]),
            AuthKind::Runner => json!([{ "runnerCredential": [] }]),
            AuthKind::InBody | AuthKind::Public => json!([]),
        },
    });
    if let Some(body) = &e.request {
        op["requestBody"] = json!({ "required": true, "content": content(body, false) });
    }
    op
}

/// Every schema a route's body refers to, and the error body, by name.
pub fn schemas() -> Map<String, Value> {
    let mut found = Vec::new();
    crate::json::<ErrorBody>().collect_schemas(&mut found);
    for e in ENDPOINTS {
        for payload in e.request.iter().chain(&e.response) {
            payload.collect_schemas(&mut found);
        }
    }
    found
        .into_iter()
        .map(|(name, schema)| {
            let schema = serde_json::to_value(schema).expect("schemas serialize");
            (name, schema)
        })
        .collect()
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method.as_str().to_lowercase()] = operation(e);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "airlock control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Identity, RBAC, projects, runners, environments, secrets and audit for air-gapped development environments. Every route needs a bearer token except login and runner exchange. Errors share the Error schema.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "userToken": { "type": "http", "scheme": "bearer", "description": "session token from /api/v1/auth/login, or a personal access token; a browser signed in through SSO sends its session cookie instead, plus x-csrf-token on state-changing requests" },
                "runnerCredential": { "type": "http", "scheme": "bearer", "description": "runner credential from /api/v1/runner/exchange" },
            },
        },
    })
}
