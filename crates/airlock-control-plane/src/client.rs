//! A small blocking HTTP client for the API, used by `airlock admin`. It connects only to
//! the URL it is given (proxy variables are ignored: there is nowhere else to go).

use std::path::Path;
use std::time::Duration;

use reqwest::blocking::Client as Http;
pub use reqwest::Method;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the control plane at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("nothing is listening at {url}: is the control plane running, and is the address (--url / AIRLOCK_URL) right?")]
    Refused { url: String },
    #[error("{url} does not answer in TLS (it looks like a plain-HTTP server): use http:// (allowed on loopback only), or the control plane's HTTPS address")]
    NotTls { url: String },
    #[error(
        "the certificate of {url} is not signed by a CA this client trusts ({detail}); pass the site's CA certificate with \
         --ca-cert FILE or AIRLOCK_CA_CERT (the ca.crt `airlock mirror tls issue` wrote, or your site's CA)"
    )]
    UntrustedCertificate { url: String, detail: String },
    #[error(
        "{url} answered HTTP {status}, but not as an airlock control plane; is --url (AIRLOCK_URL) the control plane's \
         address? (the mirror and the runner's SSH gateway listen elsewhere)"
    )]
    NotAirlock { url: String, status: u16 },
    #[error("{message} ({status} {code}{}; request id {request_id})", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
        request_id: String,
    },
    #[error("unexpected answer from {url} (HTTP {status}): {body}")]
    Unexpected {
        url: String,
        status: u16,
        body: String,
    },
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: Http,
}

impl Client {
    /// `base_url` like `https://cp.internal:8443`; `ca_cert` is a PEM file with the CA that
    /// signed the server's certificate, when it is not a public one (usually the case).
    pub fn new(
        base_url: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::Config(format!(
                "AIRLOCK_URL `{base_url}` must start with https:// (or http:// for loopback)"
            )));
        }
        let mut builder = Http::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let certs = airlock_egress::read_ca_file(path).map_err(|e| {
                ClientError::Config(format!("--ca-cert (AIRLOCK_CA_CERT): {e}"))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Client { base, token, http })
    }

    /// Sends one request; returns the JSON body (`null` for 204) or the API's error.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let text = self.call_text(method, path, query, body)?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| ClientError::Unexpected {
            url: self.url(path),
            status: 200,
            body: text.chars().take(300).collect(),
        })
    }

    /// Like [`Client::call`] but returns the body as text (for `/metrics`).
    pub fn call_text(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<String, ClientError> {
        let url = self.url(path);
        let mut req = self.http.request(method, &url).query(query);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().map_err(|source| connect_error(&self.base, source))?;
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|source| ClientError::Connect {
            url: url.clone(),
            source,
        })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        // An airlock error always has a code and a message; anything else is another server.
        let airlock_error = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e["code"].as_str().is_some_and(|c| !c.is_empty()) && e["message"].is_string());
        match airlock_error {
            Some(e) => Err(ClientError::Api {
                status,
                code: e["code"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
                field: e["field"].as_str().map(str::to_string),
                request_id: e["request_id"].as_str().unwrap_or_default().to_string(),
            }),
            None if status == 404 || status == 405 => Err(ClientError::NotAirlock { url, status }),
            None => Err(ClientError::Unexpected {
                url,
                status,
                body: text.chars().take(300).collect(),
            }),
        }
    }

    /// Every item of a paged list, following `next_cursor`.
    pub fn list_all(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("limit", "500".into()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self.call(Method::GET, path, &q, None)?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// Names the usual causes of a failed connection in the user's terms. reqwest reports TLS and
/// socket failures only as a chain of sources, so the chain's text is what can be matched.
fn connect_error(url: &str, source: reqwest::Error) -> ClientError {
    let mut chain = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(&source);
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    let chain = chain.join(": ");
    let url = url.to_string();
    if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
        ClientError::NotTls { url }
    } else if chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate") {
        let detail = chain.rsplit(": ").next().unwrap_or_default().to_string();
        ClientError::UntrustedCertificate { url, detail }
    } else if chain.contains("Connection refused") {
        ClientError::Refused { url }
    } else {
        ClientError::Connect { url, source }
    }
}
