//! The OpenAPI 3.1 document, generated from the route table ([`crate::api::endpoints`]) and
//! the schemas below, so every route is documented and nothing undocumented is routed.

use serde_json::{json, Map, Value};

use crate::api::endpoints::{AuthKind, Endpoint, ENDPOINTS};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}
fn s() -> Value {
    json!({ "type": "string" })
}
fn t() -> Value {
    json!({ "type": "string", "format": "date-time" })
}
fn n() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}
fn b() -> Value {
    json!({ "type": "boolean" })
}
fn opt(v: Value) -> Value {
    json!({ "anyOf": [v, { "type": "null" }] })
}
fn arr(v: Value) -> Value {
    json!({ "type": "array", "items": v })
}
fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// An object schema; `required` fields first, then optional ones.
fn obj(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for (k, v) in required.iter().chain(optional) {
        props.insert(k.to_string(), v.clone());
    }
    let req: Vec<&str> = required.iter().map(|(k, _)| *k).collect();
    json!({ "type": "object", "properties": props, "required": req, "additionalProperties": false })
}

pub fn schemas() -> Map<String, Value> {
    let phases = [
        "creating", "starting", "running", "stopping", "stopped", "deleting", "deleted", "failed",
    ];
    let entries: Vec<(&str, Value)> = vec![
        (
            "Error",
            obj(
                &[(
                    "error",
                    obj(
                        &[("code", s()), ("message", s()), ("request_id", s())],
                        &[("field", s())],
                    ),
                )],
                &[],
            ),
        ),
        ("Role", one_of(&["owner", "admin", "member", "auditor"])),
        ("EnvPhase", one_of(&phases)),
        (
            "RunnerPhase",
            one_of(&["created", "active", "degraded", "inactive"]),
        ),
        (
            "Resources",
            obj(
                &[
                    ("cpu_millis", n()),
                    ("memory_mib", n()),
                    ("disk_gib", n()),
                    ("pids", n()),
                ],
                &[],
            ),
        ),
        ("Task", obj(&[("name", s()), ("command", s())], &[])),
        (
            "OrgPolicy",
            obj(
                &[
                    ("max_running_environments_per_user", n()),
                    ("idle_timeout_minutes", n()),
                ],
                &[],
            ),
        ),
        (
            "Delivery",
            json!({ "oneOf": [
            obj(&[("kind", one_of(&["file"])), ("path", s())], &[]),
            obj(&[("kind", one_of(&["env"])), ("name", s())], &[]) ] }),
        ),
        (
            "SecretScope",
            json!({ "oneOf": [
            obj(&[("kind", one_of(&["org"]))], &[]),
            obj(&[("kind", one_of(&["project"])), ("project_id", s())], &[]) ] }),
        ),
        (
            "LoginRequest",
            obj(&[("email", s()), ("password", s())], &[]),
        ),
        (
            "Session",
            obj(
                &[
                    ("token", s()),
                    ("token_id", s()),
                    ("expires_at", t()),
                    ("user", r("User")),
                ],
                &[],
            ),
        ),
        (
            "Whoami",
            obj(
                &[
                    ("user", r("User")),
                    ("org", r("Org")),
                    ("token", r("TokenInfo")),
                    ("site_admin", b()),
                ],
                &[],
            ),
        ),
        (
            "User",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("email", s()),
                    ("name", s()),
                    ("role", r("Role")),
                    ("disabled", b()),
                    ("has_password", b()),
                    ("created_at", t()),
                ],
                &[],
            ),
        ),
        (
            "CreateUser",
            obj(
                &[("email", s()), ("role", r("Role")), ("password", s())],
                &[("name", s())],
            ),
        ),
        (
            "UpdateUser",
            obj(
                &[],
                &[("name", s()), ("role", r("Role")), ("disabled", b())],
            ),
        ),
        (
            "SetPassword",
            obj(&[("new_password", s())], &[("current_password", s())]),
        ),
        (
            "TokenInfo",
            obj(
                &[
                    ("id", s()),
                    (
                        "kind",
                        one_of(&["session", "personal", "runner_exchange", "runner"]),
                    ),
                    ("org_id", s()),
                    ("subject_id", s()),
                    ("name", s()),
                    ("created_at", t()),
                    ("expires_at", opt(t())),
                    ("revoked_at", opt(t())),
                    ("used_at", opt(t())),
                ],
                &[],
            ),
        ),
        (
            "CreateToken",
            obj(&[("name", s())], &[("expires_in_days", n())]),
        ),
        (
            "NewToken",
            obj(&[("token", s()), ("info", r("TokenInfo"))], &[]),
        ),
        (
            "SshKey",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("user_id", s()),
                    ("name", s()),
                    ("public_key", s()),
                    ("fingerprint", s()),
                    ("created_at", t()),
                ],
                &[],
            ),
        ),
        ("AddSshKey", obj(&[("name", s()), ("public_key", s())], &[])),
        (
            "Org",
            obj(
                &[
                    ("id", s()),
                    ("name", s()),
                    ("site", b()),
                    ("policy", r("OrgPolicy")),
                    ("created_at", t()),
                ],
                &[],
            ),
        ),
        (
            "CreateOrg",
            obj(
                &[("name", s()), ("owner_email", s()), ("owner_password", s())],
                &[("policy", r("OrgPolicy"))],
            ),
        ),
        (
            "NewOrg",
            obj(&[("org", r("Org")), ("owner", r("User"))], &[]),
        ),
        (
            "UpdateOrg",
            obj(
                &[],
                &[
                    ("name", s()),
                    (
                        "policy",
                        obj(
                            &[],
                            &[
                                ("max_running_environments_per_user", n()),
                                ("idle_timeout_minutes", n()),
                            ],
                        ),
                    ),
                ],
            ),
        ),
        (
            "EnvironmentClass",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("name", s()),
                    ("resources", r("Resources")),
                    ("created_at", t()),
                    ("updated_at", t()),
                ],
                &[],
            ),
        ),
        (
            "CreateClass",
            obj(&[("name", s()), ("resources", r("Resources"))], &[]),
        ),
        (
            "UpdateClass",
            obj(&[], &[("name", s()), ("resources", r("Resources"))]),
        ),
        (
            "Project",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("name", s()),
                    ("repository_url", s()),
                    ("image", s()),
                    ("class_id", s()),
                    ("tasks", arr(r("Task"))),
                    ("created_at", t()),
                    ("updated_at", t()),
                ],
                &[],
            ),
        ),
        (
            "CreateProject",
            obj(
                &[
                    ("name", s()),
                    ("repository_url", s()),
                    ("image", s()),
                    ("class_id", s()),
                ],
                &[("tasks", arr(r("Task")))],
            ),
        ),
        (
            "UpdateProject",
            obj(
                &[],
                &[
                    ("name", s()),
                    ("repository_url", s()),
                    ("image", s()),
                    ("class_id", s()),
                    ("tasks", arr(r("Task"))),
                ],
            ),
        ),
        (
            "Runner",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("name", s()),
                    ("capacity", n()),
                    ("environments", n()),
                    ("phase", r("RunnerPhase")),
                    ("message", opt(s())),
                    ("version", opt(s())),
                    ("last_heartbeat", opt(t())),
                    ("created_at", t()),
                ],
                &[("ssh", r("SshEndpoint"))],
            ),
        ),
        (
            "CreateRunner",
            obj(&[("name", s()), ("capacity", n())], &[]),
        ),
        (
            "UpdateRunner",
            obj(&[], &[("name", s()), ("capacity", n())]),
        ),
        (
            "NewRunner",
            obj(
                &[
                    ("runner", r("Runner")),
                    ("exchange_token", s()),
                    ("exchange_expires_at", t()),
                ],
                &[],
            ),
        ),
        (
            "EnvSpec",
            obj(
                &[
                    ("image", s()),
                    ("repository_url", s()),
                    ("tasks", arr(r("Task"))),
                    ("class_id", s()),
                    ("class_name", s()),
                    ("resources", r("Resources")),
                ],
                &[],
            ),
        ),
        (
            "Environment",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("owner_id", s()),
                    ("project_id", s()),
                    ("name", s()),
                    ("runner_id", s()),
                    ("phase", r("EnvPhase")),
                    ("desired_state", one_of(&["running", "stopped", "deleted"])),
                    ("failure_reason", opt(s())),
                    ("spec", r("EnvSpec")),
                    ("created_at", t()),
                    ("updated_at", t()),
                    ("last_activity", t()),
                ],
                &[("backup", r("WorkspaceBackup"))],
            ),
        ),
        (
            "CreateEnvironment",
            obj(&[("project_id", s())], &[("name", s()), ("class_id", s())]),
        ),
        (
            "EnvironmentEvent",
            obj(&[("time", t()), ("kind", s()), ("message", s())], &[]),
        ),
        (
            "Secret",
            obj(
                &[
                    ("id", s()),
                    ("org_id", s()),
                    ("name", s()),
                    ("scope", r("SecretScope")),
                    ("delivery", r("Delivery")),
                    ("kek_id", s()),
                    ("created_at", t()),
                    ("updated_at", t()),
                ],
                &[],
            ),
        ),
        (
            "CreateSecret",
            obj(
                &[("name", s()), ("scope", r("SecretScope")), ("value", s())],
                &[("delivery", r("Delivery"))],
            ),
        ),
        ("SetSecretValue", obj(&[("value", s())], &[])),
        (
            "RotateKekResult",
            obj(
                &[
                    ("current_kek_id", s()),
                    ("rewrapped", n()),
                    ("already_current", n()),
                ],
                &[],
            ),
        ),
        (
            "Actor",
            obj(
                &[
                    ("kind", one_of(&["user", "runner", "system", "anonymous"])),
                    ("id", s()),
                    ("name", s()),
                    ("token_id", opt(s())),
                ],
                &[],
            ),
        ),
        (
            "AuditRecord",
            obj(
                &[
                    ("seq", n()),
                    ("time", t()),
                    ("org_id", opt(s())),
                    ("actor", r("Actor")),
                    ("action", s()),
                    ("subject", s()),
                    ("outcome", one_of(&["success", "failure", "denied"])),
                    ("source", s()),
                    ("request_id", s()),
                    ("detail", opt(s())),
                    ("prev_hash", s()),
                    ("hash", s()),
                ],
                &[],
            ),
        ),
        (
            "VerifyReport",
            obj(
                &[
                    ("ok", b()),
                    ("records", n()),
                    ("head", obj(&[("seq", n()), ("hash", s())], &[])),
                    ("problems", arr(obj(&[("seq", n()), ("message", s())], &[]))),
                    ("scope", s()),
                ],
                &[],
            ),
        ),
        ("ExchangeRequest", obj(&[("exchange_token", s())], &[])),
        (
            "RunnerCredential",
            obj(
                &[
                    ("runner_id", s()),
                    ("org_id", s()),
                    ("credential", s()),
                    ("heartbeat_interval_seconds", n()),
                ],
                &[],
            ),
        ),
        (
            "Heartbeat",
            obj(
                &[],
                &[
                    ("status", one_of(&["active", "degraded"])),
                    ("message", s()),
                    ("version", s()),
                    (
                        "environments",
                        arr(obj(&[("id", s()), ("last_activity", t())], &[])),
                    ),
                    ("ssh", r("SshEndpoint")),
                ],
            ),
        ),
        (
            "HeartbeatResponse",
            obj(
                &[
                    ("runner_id", s()),
                    ("phase", r("RunnerPhase")),
                    ("heartbeat_interval_seconds", n()),
                    ("inactive_after_seconds", n()),
                    ("unknown_environments", arr(s())),
                ],
                &[],
            ),
        ),
        (
            "RunnerEnvironment",
            obj(
                &[
                    ("id", s()),
                    ("name", s()),
                    ("org_id", s()),
                    ("project_id", s()),
                    ("owner", obj(&[("id", s()), ("email", s())], &[])),
                    ("phase", r("EnvPhase")),
                    ("desired_state", one_of(&["running", "stopped", "deleted"])),
                    ("failure_reason", opt(s())),
                    ("spec", r("EnvSpec")),
                    (
                        "secrets",
                        arr(obj(
                            &[("id", s()), ("name", s()), ("delivery", r("Delivery"))],
                            &[],
                        )),
                    ),
                    ("ssh_authorized_keys", arr(s())),
                    ("updated_at", t()),
                    ("last_activity", t()),
                    ("backup", opt(r("WorkspaceBackup"))),
                ],
                &[],
            ),
        ),
        (
            "SecretValues",
            obj(
                &[(
                    "items",
                    arr(obj(
                        &[
                            ("id", s()),
                            ("name", s()),
                            ("delivery", r("Delivery")),
                            ("value", s()),
                        ],
                        &[],
                    )),
                )],
                &[],
            ),
        ),
        (
            "StatusReport",
            obj(
                &[("phase", r("EnvPhase"))],
                &[("reason", s()), ("last_activity", t())],
            ),
        ),
        (
            "EventsReport",
            obj(
                &[(
                    "events",
                    arr(obj(&[("kind", s()), ("message", s())], &[("time", t())])),
                )],
                &[],
            ),
        ),
        ("EventsAccepted", obj(&[("accepted", n())], &[])),
        (
            "SshEndpoint",
            obj(&[("host", s()), ("port", n()), ("host_key", s())], &[]),
        ),
        (
            "WorkspaceBackup",
            obj(
                &[
                    ("digest", s()),
                    ("size", n()),
                    ("created_at", t()),
                    ("runner_id", s()),
                ],
                &[],
            ),
        ),
        (
            "SshAccess",
            obj(
                &[
                    ("environment_id", s()),
                    ("environment_name", s()),
                    ("host_alias", s()),
                    ("host", s()),
                    ("port", n()),
                    ("user", s()),
                    ("host_key", s()),
                ],
                &[],
            ),
        ),
        (
            "SshSessionsReport",
            obj(
                &[(
                    "sessions",
                    arr(obj(
                        &[
                            ("event", one_of(&["accepted", "refused", "ended", "withdrawn"])),
                            ("peer", s()),
                            ("key_fingerprint", s()),
                        ],
                        &[
                            ("time", t()),
                            ("command", opt(s())),
                            ("exit_status", opt(n())),
                            ("bytes_in", opt(n())),
                            ("bytes_out", opt(n())),
                            ("duration_ms", opt(n())),
                        ],
                    )),
                )],
                &[],
            ),
        ),
        ("SshSessionsAccepted", obj(&[("accepted", n())], &[])),
        (
            "WorkspaceArchive",
            json!({ "type": "string", "format": "binary", "contentMediaType": "application/zstd" }),
        ),
        ("OpenApiDocument", json!({ "type": "object" })),
        ("PrometheusText", s()),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn operation(e: &Endpoint) -> Value {
    let mut params: Vec<Value> = Vec::new();
    for segment in e.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.push(json!({ "name": name, "in": "path", "required": true, "schema": s() }));
        }
    }
    if e.paged {
        params.push(json!({ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } }));
        params.push(json!({ "name": "cursor", "in": "query", "required": false, "schema": s(), "description": "next_cursor of the previous page" }));
    }
    for (name, description) in e.query {
        params.push(json!({ "name": name, "in": "query", "required": false, "schema": s(), "description": description }));
    }
    let success = match (e.response, e.paged) {
        (None, _) => json!({ "description": "done" }),
        (Some("PrometheusText"), _) => {
            json!({ "description": "ok", "content": { "text/plain": { "schema": s() } } })
        }
        (Some("WorkspaceArchive"), _) => {
            json!({ "description": "ok", "content": { "application/zstd": { "schema": r("WorkspaceArchive") } } })
        }
        (Some(item), true) => {
            json!({ "description": "a page", "content": { "application/json": { "schema":
            obj(&[("items", arr(r(item))), ("next_cursor", opt(s()))], &[]) } } })
        }
        (Some(schema), false) => {
            json!({ "description": "ok", "content": { "application/json": { "schema": r(schema) } } })
        }
    };
    let mut responses = Map::new();
    responses.insert(e.status.to_string(), success);
    responses.insert("default".into(), json!({ "description": "error", "content": { "application/json": { "schema": r("Error") } } }));
    let mut op = json!({
        "operationId": e.operation_id,
        "summary": e.summary,
        "tags": [e.tag],
        "parameters": params,
        "responses": responses,
        "security": match e.auth {
            AuthKind::User => json!([{ "userToken": [] }]),
            AuthKind::Runner => json!([{ "runnerCredential": [] }]),
            AuthKind::InBody => json!([]),
        },
    });
    if let Some(body) = e.request {
        let media = if body == "WorkspaceArchive" { "application/zstd" } else { "application/json" };
        op["requestBody"] =
            json!({ "required": true, "content": { media: { "schema": r(body) } } });
    }
    op
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method.to_lowercase()] = operation(e);
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
                "userToken": { "type": "http", "scheme": "bearer", "description": "session token from /api/v1/auth/login, or a personal access token" },
                "runnerCredential": { "type": "http", "scheme": "bearer", "description": "runner credential from /api/v1/runner/exchange" },
            },
        },
    })
}
