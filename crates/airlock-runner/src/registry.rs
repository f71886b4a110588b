//! The OCI Distribution client the runner pulls images with.
//!
//! Egress is guarded by construction: no proxy from the environment, only configured
//! registries (when an allow list is set), redirects only to the same host or an allowed one,
//! and TLS trusting only the configured CA bundle (or the host's trust store), never a built-in
//! list of public roots. Anonymous bearer-token auth is supported (Harbor, distribution with
//! token auth); the mirror itself serves anonymously.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};

use airlock_egress::EgressGuard;

use crate::error::EngineError;
use airlock_oci::{host_of, Reference, MAX_MANIFEST_SIZE};
use airlock_oci::{MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};

/// Where the runner may pull from and how to trust it.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// PEM files of the CAs to trust for HTTPS registries. Empty: the host's trust store
    /// (`/etc/ssl/certs/ca-certificates.crt`), where a site installs its own CA.
    pub ca_certs: Vec<PathBuf>,
    /// Registries (`host` or `host:port`) reached over plain HTTP, e.g. a loopback test
    /// registry. Everything else is HTTPS.
    pub plain_http: Vec<String>,
    /// Registries (`host` or `host:port`) this runner may contact. Empty: any registry an
    /// image reference names (the control plane chooses references).
    pub allowed: Vec<String>,
    /// The site's egress guard (the agent sets it): every name the client looks up and every
    /// redirect hop is checked against `egress.allow` too.
    pub egress: Option<EgressGuard>,
}

/// Accepted manifest media types, most wanted first (a platform manifest saves a round trip).
pub const MANIFEST_TYPES: &[&str] =
    &[MEDIA_TYPE_IMAGE_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_DOCKER_LIST];

const HOST_TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub(crate) struct RegistryClient {
    http: Client,
    opts: RegistryOptions,
    /// Bearer tokens per `registry/repository`.
    tokens: Mutex<HashMap<String, String>>,
}

/// A manifest as served.
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    /// The registry's `Docker-Content-Digest` header, checked against the body.
    pub(crate) header_digest: Option<String>,
}

impl RegistryClient {
    pub(crate) fn new(opts: RegistryOptions) -> Result<RegistryClient, EngineError> {
        let builder = match &opts.egress {
            Some(guard) => airlock_egress::client_builder(guard),
            None => Client::builder().no_proxy().tls_built_in_root_certs(false),
        };
        let mut builder = builder
            .connect_timeout(Duration::from_secs(10))
            // Per read, not per request: a large blob may take long, a silent registry may not.
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("airlock-runner/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy(opts.allowed.clone(), opts.egress.clone()));
        let bundles: Vec<PathBuf> = if opts.ca_certs.is_empty() {
            Some(PathBuf::from(HOST_TRUST_STORE)).filter(|p| p.exists()).into_iter().collect()
        } else {
            opts.ca_certs.clone()
        };
        for path in &bundles {
            for cert in load_certs(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| EngineError::Registry {
            registry: "-".into(),
            url: "-".into(),
            message: format!("cannot set up the HTTP client: {}", chain(&e)),
        })?;
        Ok(RegistryClient { http, opts, tokens: Mutex::default() })
    }

    /// Refuses registries outside the allow list before any connection is made.
    pub(crate) fn check_allowed(&self, r: &Reference) -> Result<(), EngineError> {
        if self.opts.allowed.is_empty() || matches_host(&self.opts.allowed, &r.registry) {
            return Ok(());
        }
        Err(EngineError::RegistryNotAllowed { registry: r.registry.clone(), allowed: self.opts.allowed.join(", ") })
    }

    /// `GET /v2/<name>/manifests/<reference>`.
    pub(crate) fn manifest(&self, r: &Reference, reference: &str) -> Result<Fetched, EngineError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base(&r.registry), r.repository, reference);
        let response = self.get(r, &url, Some(&MANIFEST_TYPES.join(", ")))?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let header_digest = header("docker-content-digest");
        if response.content_length().is_some_and(|n| n > MAX_MANIFEST_SIZE) {
            return Err(self.error(r, &url, format!("the manifest is larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        let mut body = Vec::new();
        response
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.error(r, &url, format!("reading the manifest failed: {e}")))?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(self.error(r, &url, format!("the manifest is larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        Ok(Fetched { body, header_digest })
    }

    /// `GET /v2/<name>/blobs/<digest>`: the response body, to be verified by the caller.
    pub(crate) fn blob(&self, r: &Reference, digest: &str) -> Result<(Response, String), EngineError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base(&r.registry), r.repository, digest);
        Ok((self.get(r, &url, None)?, url))
    }

    pub(crate) fn error(&self, r: &Reference, url: &str, message: String) -> EngineError {
        EngineError::Registry { registry: r.registry.clone(), url: url.to_string(), message }
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if matches_host(&self.opts.plain_http, registry) { "http" } else { "https" };
        format!("{scheme}://{registry}")
    }

    fn get(&self, r: &Reference, url: &str, accept: Option<&str>) -> Result<Response, EngineError> {
        self.check_allowed(r)?;
        let key = format!("{}/{}", r.registry, r.repository);
        let send = |token: Option<&str>| {
            let mut request = self.http.get(url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(token) = token {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            request.send().map_err(|e| self.error(r, url, format!("cannot fetch: {}", chain(&e))))
        };
        let cached = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let mut response = send(cached.as_deref())?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let token = self.token(r, url, &challenge)?;
            self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(key, token.clone());
            response = send(Some(&token))?;
        }
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let mut excerpt = String::new();
        let _ = response.take(512).read_to_string(&mut excerpt);
        let hint = match status {
            StatusCode::NOT_FOUND => "not found: the image is not in this registry (import it into the mirror first, or check the reference)",
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "access denied: airlock pulls anonymously, allow anonymous pulls for this repository",
            _ => "the registry refused the request",
        };
        Err(self.error(r, url, format!("HTTP {status}: {hint}: {}", excerpt.trim())))
    }

    /// Anonymous token from the realm a `Bearer` challenge names.
    fn token(&self, r: &Reference, url: &str, challenge: &str) -> Result<String, EngineError> {
        let params = parse_challenge(challenge)
            .ok_or_else(|| self.error(r, url, format!("HTTP 401 with an unsupported challenge `{challenge}`: airlock pulls anonymously")))?;
        let realm = params.get("realm").ok_or_else(|| self.error(r, url, "HTTP 401: the bearer challenge has no realm".into()))?;
        let mut token_url = Url::parse(realm).map_err(|e| self.error(r, url, format!("bad token realm `{realm}`: {e}")))?;
        let realm_host = token_url.host_str().unwrap_or("").to_string();
        if !(realm_host == r.host() || self.opts.allowed.is_empty() || matches_host(&self.opts.allowed, &realm_host)) {
            return Err(EngineError::RegistryNotAllowed { registry: realm_host, allowed: self.opts.allowed.join(", ") });
        }
        {
            let mut query = token_url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let scope = params.get("scope").cloned().unwrap_or_else(|| format!("repository:{}:pull", r.repository));
            query.append_pair("scope", &scope);
        }
        let response = self
            .http
            .get(token_url.clone())
            .send()
            .map_err(|e| self.error(r, token_url.as_str(), format!("cannot get a token: {}", chain(&e))))?;
        if !response.status().is_success() {
            return Err(self.error(r, token_url.as_str(), format!("the token service answered HTTP {}", response.status())));
        }
        let mut bytes = Vec::new();
        response
            .take(MAX_MANIFEST_SIZE)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(r, token_url.as_str(), format!("reading the token failed: {e}")))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| self.error(r, token_url.as_str(), format!("the token answer is not JSON: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| self.error(r, token_url.as_str(), "the token answer has no token".into()))
    }
}

/// Same host, or another allowed registry; and, with a guard, inside `egress.allow`.
fn redirect_policy(allowed: Vec<String>, egress: Option<EgressGuard>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        let first_host = attempt.previous().first().and_then(|u| u.host_str()).unwrap_or("").to_string();
        let host = attempt.url().host_str().unwrap_or("").to_string();
        if host != first_host && !matches_host(&allowed, &host) {
            let message = format!("redirect to {host}, which is not an allowed registry");
            return attempt.error(message);
        }
        match egress.as_ref().map(|guard| guard.precheck_url(attempt.url())) {
            Some(Err(refused)) => attempt.error(refused),
            _ => attempt.follow(),
        }
    })
}

/// Whether `registry` (`host` or `host:port`) is in `list` (entries `host` or `host:port`).
pub(crate) fn matches_host(list: &[String], registry: &str) -> bool {
    list.iter().any(|entry| entry == registry || (!entry.contains(':') && entry == host_of(registry)))
}

fn load_certs(path: &Path) -> Result<Vec<reqwest::Certificate>, EngineError> {
    let pem = std::fs::read(path).map_err(EngineError::io("read CA certificates", path))?;
    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| EngineError::Io {
        action: "parse CA certificates (PEM)".into(),
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, chain(&e)),
    })
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
fn parse_challenge(challenge: &str) -> Option<HashMap<String, String>> {
    let rest = challenge.trim().strip_prefix("Bearer ").or_else(|| challenge.trim().strip_prefix("bearer "))?;
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

/// An error with its causes, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let p = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
    }

    #[test]
    fn hosts_match_with_or_without_port() {
        let list = vec!["mirror.example".to_string(), "127.0.0.1:5000".to_string()];
        assert!(matches_host(&list, "mirror.example:443"));
        assert!(matches_host(&list, "127.0.0.1:5000"));
        assert!(!matches_host(&list, "127.0.0.1:5001"));
        assert!(!matches_host(&list, "evil.example"));
    }
}
