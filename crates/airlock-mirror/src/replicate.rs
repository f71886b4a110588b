//! `mirror push`: copy the mirror's content into a site's existing registry (Harbor, CNCF
//! distribution, Artifactory) so it can serve at scale. Images stay images; every other
//! artifact goes as the OCI artifact it already is. Blobs the target has are skipped (HEAD),
//! blobs already sent to another repository in the same run are mounted, and manifests go
//! bottom-up so the registry never sees a manifest whose content is missing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::time::Duration;

use airlock_bundle::ArtifactKind;
use airlock_oci::Digest;
use airlock_egress::EgressGuard;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`{0}` is not a registry URL such as https://registry.example:5000")]
    BadUrl(String),
    #[error("{method} {url} failed: {message}")]
    Http { method: &'static str, url: String, message: String },
    #[error("the registry refused {what} with {status}: {body}")]
    Refused { what: String, status: StatusCode, body: String },
    #[error("the registry at {url} asks for credentials: pass --creds USER:PASSWORD")]
    NeedsCredentials { url: String },
    #[error("cannot read {what} from the content store: {source}")]
    Read { what: String, source: std::io::Error },
    #[error(transparent)]
    Egress(#[from] airlock_egress::EgressError),
}

pub struct Target {
    pub url: String,
    pub credentials: Option<(String, String)>,
    /// PEM of the CA to trust for the target; without it, the host's trust store.
    pub extra_ca: Option<Vec<u8>>,
    /// Checks the target, every redirect hop and every name looked up.
    pub egress: EgressGuard,
}

/// Which artifacts to copy: a kind, or a repository name.
pub enum Only {
    Kind(ArtifactKind),
    Repository(String),
}

#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicateReport {
    pub artifacts: usize,
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    pub blobs_present: usize,
    pub blobs_mounted: usize,
    pub manifests: usize,
}

struct Session {
    client: Client,
    base: String,
    credentials: Option<(String, String)>,
    /// Bearer tokens by scope, for registries with a token service.
    tokens: HashMap<String, String>,
}

pub fn replicate(store: &Store, target: &Target, only: Option<&Only>) -> Result<ReplicateReport, ReplicateError> {
    let base = target.url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ReplicateError::BadUrl(target.url.clone()));
    }
    let url = airlock_egress::Url::parse(&base).map_err(|_| ReplicateError::BadUrl(target.url.clone()))?;
    target.egress.check_url(&url)?;
    let mut builder =
        airlock_egress::client_builder(&target.egress).timeout(Duration::from_secs(600)).connect_timeout(Duration::from_secs(10));
    let roots = match &target.extra_ca {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ReplicateError::Http { method: "load", url: "CA bundle".into(), message: e.to_string() })?,
        None => airlock_egress::trust_roots(&[])?,
    };
    for root in roots {
        builder = builder.add_root_certificate(root);
    }
    let client = builder
        .build()
        .map_err(|e| ReplicateError::Http { method: "build", url: base.clone(), message: e.to_string() })?;
    let mut session = Session { client, base, credentials: target.credentials.clone(), tokens: HashMap::new() };

    let mut report = ReplicateReport::default();
    // Where each blob already is on the target, for cross-repository mounts.
    let mut placed: HashMap<Digest, String> = HashMap::new();
    for record in store.artifacts(None)? {
        let artifact = &record.artifact;
        let selected = match only {
            None => true,
            Some(Only::Kind(kind)) => artifact.kind == *kind,
            Some(Only::Repository(repo)) => &artifact.repository == repo,
        };
        if !selected {
            continue;
        }
        report.artifacts += 1;
        let repo = artifact.repository.clone();
        let (manifests, blobs) = graph(store, &artifact.digest)?;
        for digest in blobs {
            push_blob(store, &mut session, &repo, &digest, &mut placed, &mut report)?;
        }
        // Children before parents; the root goes last, by tag.
        for (i, digest) in manifests.iter().enumerate().rev() {
            let reference = if i == 0 { artifact.tag.clone() } else { digest.to_string() };
            push_manifest(store, &mut session, &repo, digest, &reference)?;
            report.manifests += 1;
        }
    }
    Ok(report)
}

/// The manifests (root first) and the non-manifest blobs an artifact consists of.
fn graph(store: &Store, root: &Digest) -> Result<(Vec<Digest>, Vec<Digest>), StoreError> {
    let (mut manifests, mut blobs, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
    let mut queue = vec![*root];
    while let Some(digest) = queue.pop() {
        if !seen.insert(digest) {
            continue;
        }
        match store.manifest(&digest)? {
            Some(record) => {
                manifests.push(digest);
                queue.extend(record.children.iter().rev());
            }
            None => blobs.push(digest),
        }
    }
    Ok((manifests, blobs))
}

fn push_blob(
    store: &Store,
    session: &mut Session,
    repo: &str,
    digest: &Digest,
    placed: &mut HashMap<Digest, String>,
    report: &mut ReplicateReport,
) -> Result<(), ReplicateError> {
    let scope = format!("repository:{repo}:pull,push");
    let url = format!("{}/v2/{repo}/blobs/{digest}", session.base);
    if session.send("HEAD", &url, &scope, |c| c.head(&url))?.status().is_success() {
        report.blobs_present += 1;
        placed.entry(*digest).or_insert_with(|| repo.to_string());
        return Ok(());
    }
    let uploads = format!("{}/v2/{repo}/blobs/uploads/", session.base);
    let mut start = uploads.clone();
    if let Some(from) = placed.get(digest) {
        start = format!("{uploads}?mount={digest}&from={from}");
    }
    let response = session.send("POST", &start, &scope, |c| c.post(&start))?;
    if response.status() == StatusCode::CREATED {
        report.blobs_mounted += 1;
        placed.insert(*digest, repo.to_string());
        return Ok(());
    }
    if response.status() != StatusCode::ACCEPTED {
        return Err(refused(format!("starting the upload of {digest} to {repo}"), response));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| ReplicateError::Http { method: "POST", url: uploads.clone(), message: "no Location header".into() })?;
    let location = if location.starts_with("http") { location.to_string() } else { format!("{}{location}", session.base) };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{separator}digest={digest}");
    let path = store.blobs.path(digest);
    let size = std::fs::metadata(&path).map_err(|source| ReplicateError::Read { what: digest.to_string(), source })?.len();
    let response = session.send("PUT", &put, &scope, |c| {
        let file = File::open(&path).expect("checked above");
        c.put(&put)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::blocking::Body::sized(file, size))
    })?;
    if response.status() != StatusCode::CREATED {
        return Err(refused(format!("blob {digest} for {repo}"), response));
    }
    report.blobs_uploaded += 1;
    report.bytes_uploaded += size;
    placed.insert(*digest, repo.to_string());
    Ok(())
}

fn push_manifest(store: &Store, session: &mut Session, repo: &str, digest: &Digest, reference: &str) -> Result<(), ReplicateError> {
    let record = store.manifest(digest)?.expect("graph() found it");
    let bytes = std::fs::read(store.blobs.path(digest)).map_err(|source| ReplicateError::Read { what: digest.to_string(), source })?;
    let url = format!("{}/v2/{repo}/manifests/{reference}", session.base);
    let scope = format!("repository:{repo}:pull,push");
    let response = session.send("PUT", &url, &scope, |c| c.put(&url).header(CONTENT_TYPE, record.media_type.as_str()).body(bytes.clone()))?;
    if !response.status().is_success() {
        return Err(refused(format!("manifest {repo}:{reference}"), response));
    }
    Ok(())
}

fn refused(what: String, response: Response) -> ReplicateError {
    let status = response.status();
    let body = response.text().unwrap_or_default();
    ReplicateError::Refused { what, status, body: body.chars().take(500).collect() }
}

impl Session {
    /// Sends a request, answering one authentication challenge (Basic, or a Bearer token
    /// from the registry's token service) and retrying once.
    fn send(&mut self, method: &'static str, url: &str, scope: &str, build: impl Fn(&Client) -> RequestBuilder) -> Result<Response, ReplicateError> {
        let http_err = |e: reqwest::Error| ReplicateError::Http { method, url: url.to_string(), message: with_causes(&e) };
        let response = self.authorize(build(&self.client), scope).send().map_err(http_err)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if challenge.to_ascii_lowercase().starts_with("bearer") {
            let token = self.fetch_token(&challenge, scope)?;
            self.tokens.insert(scope.to_string(), token);
        } else if self.credentials.is_none() {
            return Err(ReplicateError::NeedsCredentials { url: self.base.clone() });
        }
        let retry = self.authorize(build(&self.client), scope).send().map_err(http_err)?;
        if retry.status() == StatusCode::UNAUTHORIZED {
            return Err(ReplicateError::NeedsCredentials { url: self.base.clone() });
        }
        Ok(retry)
    }

    fn authorize(&self, request: RequestBuilder, scope: &str) -> RequestBuilder {
        if let Some(token) = self.tokens.get(scope) {
            return request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    fn fetch_token(&self, challenge: &str, scope: &str) -> Result<String, ReplicateError> {
        let params: HashMap<String, String> = challenge[6..]
            .split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim_matches('"').to_string()))
            .collect();
        let realm = params.get("realm").ok_or_else(|| ReplicateError::Http {
            method: "GET",
            url: self.base.clone(),
            message: format!("bearer challenge without a realm: {challenge}"),
        })?;
        let mut request = self.client.get(realm).query(&[("scope", scope)]);
        if let Some(service) = params.get("service") {
            request = request.query(&[("service", service)]);
        }
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().map_err(|e| ReplicateError::Http { method: "GET", url: realm.clone(), message: with_causes(&e) })?;
        if !response.status().is_success() {
            return Err(ReplicateError::NeedsCredentials { url: self.base.clone() });
        }
        let body: serde_json::Value = response.json().map_err(|e| ReplicateError::Http { method: "GET", url: realm.clone(), message: e.to_string() })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| ReplicateError::Http { method: "GET", url: realm.clone(), message: "the token service returned no token".into() })
    }
}

/// An error with its causes: reqwest's own message leaves out why (a refused redirect, a
/// certificate problem), which is what the operator needs.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
