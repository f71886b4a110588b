//! The control plane's runner-facing API (docs/control-plane-api.md), as a blocking client.
//! Wire types are declared here rather than borrowed from the control-plane crate, so the
//! runner depends only on the documented JSON, as a runner on another host would.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use airlock_egress::EgressGuard;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the control plane at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("control plane refused {what}: {message} (HTTP {status} {code})")]
    Refused {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the control plane to {what}: {detail}")]
    Unexpected { what: String, detail: String },
    #[error("{0}")]
    Config(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Deserialize, Serialize, Debug, Clone)]
pub struct Credential {
    pub runner_id: String,
    pub org_id: String,
    pub credential: String,
    pub heartbeat_interval_seconds: u64,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Starting,
    Running,
    Stopping,
    Stopped,
    Deleting,
    Deleted,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Creating => "creating",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Deleting => "deleting",
            Phase::Deleted => "deleted",
            Phase::Failed => "failed",
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    Running,
    Stopped,
    Deleted,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Task {
    pub name: String,
    pub command: String,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Resources {
    pub cpu_millis: u32,
    pub memory_mib: u32,
    pub pids: u32,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Spec {
    pub image: String,
    pub repository_url: String,
    #[serde(default)]
    pub tasks: Vec<Task>,
    pub class_name: String,
    pub resources: Resources,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Backup {
    pub digest: String,
    pub size: u64,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Environment {
    pub id: String,
    pub name: String,
    pub phase: Phase,
    pub desired_state: Desired,
    pub spec: Spec,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    #[serde(default)]
    pub backup: Option<Backup>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Delivery {
    File { path: String },
    Env { name: String },
}

#[derive(Deserialize, Debug, Clone)]
pub struct SecretValue {
    pub name: String,
    pub delivery: Delivery,
    pub value: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    pub host_key: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Activity {
    pub id: String,
    pub last_activity: String,
}

#[derive(Deserialize, Debug, Clone)]
pub struct HeartbeatAnswer {
    pub heartbeat_interval_seconds: u64,
    #[serde(default)]
    pub unknown_environments: Vec<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub message: String,
}

/// One SSH gateway record for the audit log.
#[derive(Serialize, Debug, Clone)]
pub struct SshSession {
    pub time: String,
    pub event: &'static str,
    pub peer: String,
    pub key_fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// For `ended` sessions and forwards: bytes from the client, bytes to it, and how long
    /// it lasted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

pub struct ControlPlane {
    base: String,
    http: Client,
    bearer: Option<String>,
}

impl ControlPlane {
    /// `base_url` like `https://cp.internal:8443`; `ca_cert` a PEM file with the site CA
    /// (default: the host's trust store). Every request, redirect hop and name lookup goes
    /// through the egress guard.
    pub fn new(base_url: &str, ca_cert: Option<&Path>, egress: &EgressGuard) -> Result<ControlPlane, ApiError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ApiError::Config(format!(
                "control plane URL `{base_url}` must start with https:// (or http:// on loopback)"
            )));
        }
        let ca_files: Vec<_> = ca_cert.map(Path::to_path_buf).into_iter().collect();
        let roots = airlock_egress::trust_roots(&ca_files).map_err(|e| ApiError::Config(e.to_string()))?;
        let mut builder = airlock_egress::client_builder(egress)
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("airlock-runner/", env!("CARGO_PKG_VERSION")));
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(ControlPlane {
            base,
            http,
            bearer: None,
        })
    }

    pub fn with_credential(mut self, credential: &str) -> ControlPlane {
        self.bearer = Some(credential.to_string());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.bearer {
            Some(b) => req.bearer_auth(b),
            None => req,
        }
    }

    fn send(&self, what: &str, req: RequestBuilder) -> Result<Response, ApiError> {
        let resp = req.send().map_err(|source| ApiError::Connect {
            url: self.base.clone(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        Err(ApiError::Refused {
            what: what.to_string(),
            status: status.as_u16(),
            code: body["error"]["code"].as_str().unwrap_or("").to_string(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or(status.canonical_reason().unwrap_or(""))
                .to_string(),
        })
    }

    fn json<T: DeserializeOwned>(&self, what: &str, req: RequestBuilder) -> Result<T, ApiError> {
        self.send(what, req)?.json().map_err(|e| ApiError::Unexpected {
            what: what.to_string(),
            detail: e.to_string(),
        })
    }

    pub fn exchange(&self, exchange_token: &str) -> Result<Credential, ApiError> {
        self.json(
            "the exchange token",
            self.request(reqwest::Method::POST, "/api/v1/runner/exchange")
                .json(&json!({ "exchange_token": exchange_token })),
        )
    }

    pub fn heartbeat(
        &self,
        status: &str,
        message: Option<String>,
        environments: &[Activity],
        ssh: Option<&SshEndpoint>,
    ) -> Result<HeartbeatAnswer, ApiError> {
        let mut body = json!({
            "status": status,
            "version": concat!("airlock ", env!("CARGO_PKG_VERSION")),
            "environments": environments,
        });
        if let Some(m) = message {
            body["message"] = json!(m);
        }
        if let Some(s) = ssh {
            body["ssh"] = json!(s);
        }
        self.json(
            "the heartbeat",
            self.request(reqwest::Method::POST, "/api/v1/runner/heartbeat")
                .json(&body),
        )
    }

    /// Every environment assigned to this runner (all pages).
    pub fn environments(&self) -> Result<Vec<Environment>, ApiError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self
                .request(reqwest::Method::GET, "/api/v1/runner/environments")
                .query(&[("limit", "500")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let page: Value = self.json("the environment list", req)?;
            let items: Vec<Environment> = serde_json::from_value(page["items"].clone())
                .map_err(|e| ApiError::Unexpected {
                    what: "the environment list".into(),
                    detail: e.to_string(),
                })?;
            all.extend(items);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(all),
            }
        }
    }

    pub fn environment(&self, id: &str) -> Result<Environment, ApiError> {
        self.json(
            &format!("environment {id}"),
            self.request(
                reqwest::Method::GET,
                &format!("/api/v1/runner/environments/{id}"),
            ),
        )
    }

    pub fn secrets(&self, id: &str) -> Result<Vec<SecretValue>, ApiError> {
        let v: Value = self.json(
            &format!("the secrets of {id}"),
            self.request(
                reqwest::Method::GET,
                &format!("/api/v1/runner/environments/{id}/secrets"),
            ),
        )?;
        serde_json::from_value(v["items"].clone()).map_err(|e| ApiError::Unexpected {
            what: format!("the secrets of {id}"),
            detail: e.to_string(),
        })
    }

    pub fn report(&self, id: &str, phase: Phase, reason: Option<&str>) -> Result<Environment, ApiError> {
        let mut body = json!({ "phase": phase.as_str() });
        if let Some(r) = reason {
            body["reason"] = json!(truncate(r, 4000));
        }
        self.json(
            &format!("phase {} for {id}", phase.as_str()),
            self.request(
                reqwest::Method::POST,
                &format!("/api/v1/runner/environments/{id}/status"),
            )
            .json(&body),
        )
    }

    pub fn events(&self, id: &str, events: &[Event]) -> Result<(), ApiError> {
        for chunk in events.chunks(100) {
            let chunk: Vec<Event> = chunk
                .iter()
                .map(|e| Event {
                    kind: e.kind.clone(),
                    message: truncate(&e.message, 4000),
                })
                .collect();
            self.send(
                &format!("events for {id}"),
                self.request(
                    reqwest::Method::POST,
                    &format!("/api/v1/runner/environments/{id}/events"),
                )
                .json(&json!({ "events": chunk })),
            )?;
        }
        Ok(())
    }

    pub fn ssh_sessions(&self, id: &str, sessions: &[SshSession]) -> Result<(), ApiError> {
        for chunk in sessions.chunks(100) {
            self.send(
                &format!("SSH records for {id}"),
                self.request(
                    reqwest::Method::POST,
                    &format!("/api/v1/runner/environments/{id}/ssh-sessions"),
                )
                .json(&json!({ "sessions": chunk })),
            )?;
        }
        Ok(())
    }

    pub fn upload_backup(&self, id: &str, archive: &Path, digest: &str) -> Result<(), ApiError> {
        let file = std::fs::File::open(archive).map_err(|e| {
            ApiError::Config(format!("cannot open snapshot {}: {e}", archive.display()))
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let body = reqwest::blocking::Body::sized(file, size);
        self.send(
            &format!("the workspace snapshot of {id}"),
            self.request(
                reqwest::Method::PUT,
                &format!("/api/v1/runner/environments/{id}/backup"),
            )
            .query(&[("digest", digest)])
            .header(reqwest::header::CONTENT_TYPE, "application/zstd")
            .body(body),
        )?;
        Ok(())
    }

    /// The environment's latest snapshot as a stream, or `None` if it has none.
    pub fn download_backup(&self, id: &str) -> Result<Option<impl Read>, ApiError> {
        match self.send(
            &format!("the workspace snapshot of {id}"),
            self.request(
                reqwest::Method::GET,
                &format!("/api/v1/runner/environments/{id}/backup"),
            ),
        ) {
            Ok(resp) => Ok(Some(resp)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND.as_u16()) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
