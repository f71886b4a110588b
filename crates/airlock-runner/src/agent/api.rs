//! The control plane's runner-facing API (docs/control-plane-api.md), as a blocking client.
//! The wire types come from `airlock-api`, the contract the control plane serves and
//! documents; the runner does not depend on the control plane itself.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use airlock_api::{
    Activity, EnvPhase, EventsReport, ExchangeRequest, Heartbeat, HeartbeatResponse, NewEvent,
    Page, RunnerCredential, RunnerPhase, RunnerEnvironment, SecretValue, SecretValues, SshEndpoint,
    SshSessionRecord, SshSessionsReport, StatusReport,
};
use airlock_egress::EgressGuard;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

#[derive(Clone)]
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

    pub fn exchange(&self, exchange_token: &str) -> Result<RunnerCredential, ApiError> {
        self.json(
            "the exchange token",
            self.request(reqwest::Method::POST, "/api/v1/runner/exchange")
                .json(&ExchangeRequest { exchange_token: exchange_token.to_string() }),
        )
    }

    pub fn heartbeat(
        &self,
        status: RunnerPhase,
        message: Option<String>,
        environments: Vec<Activity>,
        ssh: Option<SshEndpoint>,
    ) -> Result<HeartbeatResponse, ApiError> {
        let body = Heartbeat {
            status: Some(status),
            message,
            version: Some(concat!("airlock ", env!("CARGO_PKG_VERSION")).to_string()),
            environments,
            ssh,
        };
        self.json(
            "the heartbeat",
            self.request(reqwest::Method::POST, "/api/v1/runner/heartbeat")
                .json(&body),
        )
    }

    /// Every environment assigned to this runner (all pages).
    pub fn environments(&self) -> Result<Vec<RunnerEnvironment>, ApiError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self
                .request(reqwest::Method::GET, "/api/v1/runner/environments")
                .query(&[("limit", "500")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let page: Page<RunnerEnvironment> = self.json("the environment list", req)?;
            all.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    pub fn environment(&self, id: &str) -> Result<RunnerEnvironment, ApiError> {
        self.json(
            &format!("environment {id}"),
            self.request(
                reqwest::Method::GET,
                &format!("/api/v1/runner/environments/{id}"),
            ),
        )
    }

    pub fn secrets(&self, id: &str) -> Result<Vec<SecretValue>, ApiError> {
        let values: SecretValues = self.json(
            &format!("the secrets of {id}"),
            self.request(
                reqwest::Method::GET,
                &format!("/api/v1/runner/environments/{id}/secrets"),
            ),
        )?;
        Ok(values.items)
    }

    pub fn report(&self, id: &str, phase: EnvPhase, reason: Option<&str>) -> Result<RunnerEnvironment, ApiError> {
        let body = StatusReport {
            phase,
            reason: reason.map(|r| truncate(r, 4000)),
            last_activity: None,
        };
        self.json(
            &format!("phase {} for {id}", phase.as_str()),
            self.request(
                reqwest::Method::POST,
                &format!("/api/v1/runner/environments/{id}/status"),
            )
            .json(&body),
        )
    }

    pub fn events(&self, id: &str, events: &[NewEvent]) -> Result<(), ApiError> {
        for chunk in events.chunks(100) {
            let chunk: Vec<NewEvent> = chunk
                .iter()
                .map(|e| NewEvent {
                    message: truncate(&e.message, 4000),
                    ..e.clone()
                })
                .collect();
            self.send(
                &format!("events for {id}"),
                self.request(
                    reqwest::Method::POST,
                    &format!("/api/v1/runner/environments/{id}/events"),
                )
                .json(&EventsReport { events: chunk }),
            )?;
        }
        Ok(())
    }

    pub fn ssh_sessions(&self, id: &str, sessions: &[SshSessionRecord]) -> Result<(), ApiError> {
        for chunk in sessions.chunks(100) {
            self.send(
                &format!("SSH records for {id}"),
                self.request(
                    reqwest::Method::POST,
                    &format!("/api/v1/runner/environments/{id}/ssh-sessions"),
                )
                .json(&SshSessionsReport { sessions: chunk.to_vec() }),
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
