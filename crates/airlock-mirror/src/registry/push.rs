//! Push (off unless `mirror serve --allow-push`): blob uploads (monolithic, chunked,
//! cross-repository mount), manifest puts, and deletes. Clients authenticate with HTTP
//! Basic: any user name, and a push token from `airlock mirror token create` as password.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_oci::{is_manifest_media_type, Digest, Hasher, ManifestLinks, MAX_MANIFEST_SIZE, MEDIA_TYPE_IMAGE_MANIFEST};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;

use super::pull::{header_value, resolve};
use super::{check_name, query_param, RegistryError, Route};
use crate::import::manifest_record;
use crate::serve::AppState;
use crate::store::Changes;

type Result<T> = std::result::Result<T, RegistryError>;

/// While an upload streams, free space is checked again after every this many bytes.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// What pushes may write, and how much: airlock.toml `mirror.push_*` (docs/configuration.md).
#[derive(Clone, Debug)]
pub struct PushLimits {
    /// Repository name prefixes pushes may write to (`scratch/`); empty: any name no signed
    /// bundle uses.
    pub namespaces: Vec<String>,
    /// Largest blob one upload may write.
    pub max_blob_bytes: u64,
    /// An upload session, or a request body, that brings no bytes this long ends.
    pub session_expiry: Duration,
    /// Uploads stop when the store's free space would fall below this.
    pub free_space_reserve: u64,
    /// Upload sessions one push token may hold open at once: each holds a partial file and
    /// memory until it ends or expires.
    pub max_sessions_per_token: usize,
}

impl PushLimits {
    fn allows(&self, name: &str) -> bool {
        self.namespaces.is_empty()
            || self.namespaces.iter().any(|ns| name.starts_with(&format!("{}/", ns.trim_end_matches('/'))))
    }
}

/// Upload sessions in progress, by id. They live in memory: an upload interrupted by a
/// restart starts again, as clients do on `BLOB_UPLOAD_UNKNOWN`. The map is locked only to
/// find, add or remove a session; bytes are written under the session's own lock, so a
/// client that stalls mid-request holds up no other upload.
#[derive(Default)]
pub struct Uploads {
    sessions: std::sync::Mutex<HashMap<String, Arc<Upload>>>,
    /// Manifest puts and blob deletes one at a time: a delete checks that no manifest
    /// references the blob, a put that every blob it references is there.
    writes: tokio::sync::Mutex<()>,
}

struct Upload {
    repo: String,
    /// sha256 of the push token that started it: a session belongs to its token.
    token: String,
    /// Bytes received and when the last arrived, readable while a request writes.
    offset: AtomicU64,
    last_active: std::sync::Mutex<Instant>,
    /// `None` once a PUT took it to publish.
    data: tokio::sync::Mutex<Option<Partial>>,
}

struct Partial {
    file: tempfile::NamedTempFile,
    hasher: Hasher,
}

impl Upload {
    fn new(state: &AppState, repo: &str, token: &str) -> Result<Upload> {
        Ok(Upload {
            repo: repo.to_string(),
            token: token.to_string(),
            offset: AtomicU64::new(0),
            last_active: std::sync::Mutex::new(Instant::now()),
            data: tokio::sync::Mutex::new(Some(Partial { file: state.store.blobs.staging_file()?, hasher: Hasher::new() })),
        })
    }

    fn touch(&self, offset: u64) {
        self.offset.store(offset, Ordering::Release);
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.last_active.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

impl Uploads {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Upload>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session `id` of repository `repo` started with `token`; any other is unknown.
    fn find(&self, id: &str, repo: &str, token: &str) -> Result<Arc<Upload>> {
        self.map()
            .get(id)
            .filter(|u| u.repo == repo && u.token == token)
            .cloned()
            .ok_or_else(RegistryError::upload_unknown)
    }

    /// Adds a session, unless its token already holds `max` open ones.
    fn insert(&self, id: String, upload: Upload, max: usize) -> Result<()> {
        let mut map = self.map();
        let held = map.values().filter(|u| u.token == upload.token).count();
        if held >= max {
            return Err(RegistryError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!(
                    "this push token already holds {held} open upload sessions, the most mirror.push_max_sessions_per_token allows; \
                     finish or cancel one (PUT or DELETE its upload URL), wait for idle ones to end after mirror.push_session_expiry_seconds, \
                     or raise that setting in airlock.toml"
                ),
            ));
        }
        map.insert(id, Arc::new(upload));
        Ok(())
    }

    fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    /// Ends sessions idle longer than `expiry`; their partial files go with them. A session
    /// a request is using stays: that request ends on its own expiry (see `append`).
    pub fn expire(&self, expiry: Duration) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, upload| Arc::strong_count(upload) > 1 || upload.idle() < expiry);
        let ended = before - map.len();
        if ended > 0 {
            tracing::info!(sessions = ended, "ended upload sessions idle longer than mirror.push_session_expiry_seconds");
        }
        ended
    }
}

/// Ends abandoned upload sessions on a timer, so they go even when no other upload comes.
pub async fn expire_uploads(state: Arc<AppState>) {
    let expiry = state.push.session_expiry;
    let mut tick = tokio::time::interval((expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(30)));
    loop {
        tick.tick().await;
        state.uploads.expire(expiry);
    }
}

pub async fn handle(state: &AppState, method: &Method, route: Route, query: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let writes = matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if !writes {
        return Err(RegistryError::unsupported(format!("{method} is not supported here")));
    }
    check_enabled(state)?;
    let token = authorize(state, headers)?;
    match &route {
        Route::Uploads { name, .. } | Route::Manifest { name, .. } | Route::Blob { name, .. } => check_writable(state, name)?,
        _ => {}
    }
    state.uploads.expire(state.push.session_expiry);
    match (method.clone(), route) {
        (Method::POST, Route::Uploads { name, session: None }) => start_upload(state, &name, &token, query, headers, body).await,
        (Method::PATCH, Route::Uploads { name, session: Some(id) }) => patch_upload(state, &name, &id, &token, headers, body).await,
        (Method::PUT, Route::Uploads { name, session: Some(id) }) => finish_upload(state, &name, &id, &token, query, headers, body).await,
        (Method::DELETE, Route::Uploads { name, session: Some(id) }) => {
            state.uploads.find(&id, &name, &token)?;
            state.uploads.remove(&id);
            Ok(status(StatusCode::NO_CONTENT))
        }
        (Method::PUT, Route::Manifest { name, reference }) => put_manifest(state, &name, &reference, headers, body).await,
        (Method::DELETE, Route::Manifest { name, reference }) => delete_manifest(state, &name, &reference),
        (Method::DELETE, Route::Blob { name, digest }) => delete_blob(state, &name, &digest).await,
        (method, _) => Err(RegistryError::unsupported(format!("{method} is not supported on this path"))),
    }
}

fn check_enabled(state: &AppState) -> Result<()> {
    if !state.allow_push {
        return Err(RegistryError::unsupported(
            "this mirror is read-only; content arrives in signed bundles (`airlock mirror import`), or start `mirror serve --allow-push`",
        ));
    }
    Ok(())
}

/// Pushes never change what signed bundles brought, and stay inside the site's namespaces.
fn check_writable(state: &AppState, name: &str) -> Result<()> {
    check_name(name)?;
    if let Some(imported) = state.store.imported_into(name)? {
        return Err(RegistryError::denied(format!(
            "repository `{name}` holds content imported from signed bundle {} (tag `{}`): imported repositories are read-only to push; \
             push under a repository name no bundle uses{}",
            imported.bundle_id,
            imported.artifact.tag,
            match state.push.namespaces.first() {
                Some(ns) => format!(", e.g. `{}/{name}`", ns.trim_end_matches('/')),
                None => String::new(),
            }
        ))
        .with_detail(serde_json::json!({ "name": name, "bundleId": imported.bundle_id })));
    }
    if !state.push.allows(name) {
        let first = state.push.namespaces[0].trim_end_matches('/');
        return Err(RegistryError::denied(format!(
            "pushes to `{name}` are refused: this mirror accepts pushes only under {} (mirror.push_namespaces in airlock.toml); \
             push to e.g. `{first}/{name}`, or add a namespace to that setting",
            state.push.namespaces.iter().map(|ns| format!("`{}/`", ns.trim_end_matches('/'))).collect::<Vec<_>>().join(", "),
        ))
        .with_detail(serde_json::json!({ "name": name, "namespaces": state.push.namespaces })));
    }
    Ok(())
}

/// Upload status (`GET …/blobs/uploads/<id>`): the session's owner only.
pub async fn upload_status(state: &AppState, name: &str, id: &str, headers: &HeaderMap) -> Result<Response> {
    check_enabled(state)?;
    let token = authorize(state, headers)?;
    state.uploads.expire(state.push.session_expiry);
    let upload = state.uploads.find(id, name, &token)?;
    Ok(upload_response(StatusCode::NO_CONTENT, name, id, upload.offset.load(Ordering::Acquire)))
}

/// Checks the Basic credentials; returns the token's hash, which identifies the pusher.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<String> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(RegistryError::unauthorized)?;
    let (_, token) = credentials.split_once(':').ok_or_else(RegistryError::unauthorized)?;
    let hash = crate::tokens::hash(token);
    match state.store.token(&hash)? {
        Some(_) => Ok(hash),
        None => Err(RegistryError::unauthorized()),
    }
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

fn upload_response(code: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    let mut response = status(code);
    let h = response.headers_mut();
    h.insert(header::LOCATION, header_value(&format!("/v2/{name}/blobs/uploads/{id}")));
    h.insert(header::RANGE, header_value(&format!("0-{}", offset.saturating_sub(1))));
    h.insert("Docker-Upload-UUID", header_value(id));
    h.insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

fn created(location: String, digest: &Digest) -> Response {
    let mut response = status(StatusCode::CREATED);
    response.headers_mut().insert(header::LOCATION, header_value(&location));
    response.headers_mut().insert("Docker-Content-Digest", header_value(&digest.to_string()));
    response.headers_mut().insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

fn parse_digest(value: &str) -> Result<Digest> {
    value.parse().map_err(|_| RegistryError::digest_invalid(format!("`{value}` is not a sha256 digest")))
}

fn busy() -> RegistryError {
    RegistryError::new(
        StatusCode::CONFLICT,
        "BLOB_UPLOAD_INVALID",
        "another request is still writing to this upload session; wait for it to finish, or start a new upload",
    )
}

async fn start_upload(state: &AppState, name: &str, token: &str, query: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    if let Some(mount) = query_param(query, "mount") {
        let digest = parse_digest(&mount)?;
        // Only from a repository that holds the blob (anyone may pull from it): a mount must
        // not turn a digest into a read of another repository's private blob.
        let from = query_param(query, "from");
        let mountable = match &from {
            Some(from) => check_name(from).is_ok() && state.store.repo_references_blob(from, &digest)?,
            None => false,
        };
        if mountable && state.store.visible_blob(&digest)?.is_some() {
            let mut changes = Changes::default();
            changes.link_blob(&digest, name);
            state.store.commit(changes)?;
            return Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest));
        }
        // Unknown blob: fall back to an ordinary upload session, as the spec says.
    }
    let upload = Upload::new(state, name, token)?;
    if let Some(expected) = query_param(query, "digest") {
        let expected = parse_digest(&expected)?;
        let mut data = upload.data.lock().await;
        let partial = data.as_mut().expect("a new session holds its data");
        append(state, &upload, partial, headers, body).await?;
        return publish(state, name, data.take().expect("present"), expected);
    }
    let id = crate::tokens::random_hex(16);
    state.uploads.insert(id.clone(), upload, state.push.max_sessions_per_token)?;
    Ok(upload_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// Refuses when the store would keep less than the reserve after `more` bytes.
fn check_space(state: &AppState, name: &str, more: u64) -> Result<()> {
    let free = state.store.blobs.free_space()?;
    let reserve = state.push.free_space_reserve;
    if free < reserve.saturating_add(more) {
        return Err(RegistryError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "DENIED",
            format!(
                "blob upload to `{name}` refused: the mirror's store has {free} bytes free and keeps {reserve} in reserve \
                 (mirror.push_free_space_reserve_bytes); the upload session ended. Free space (`airlock mirror gc`) or enlarge the store"
            ),
        ));
    }
    Ok(())
}

/// Appends a request body to an upload, within the size cap and the free-space reserve; a
/// body that brings no bytes for the session expiry ends. On error the caller ends the
/// session (its file may hold bytes the hash has not seen).
async fn append(state: &AppState, upload: &Upload, partial: &mut Partial, headers: &HeaderMap, body: Body) -> Result<()> {
    let limits = &state.push;
    let too_large = || {
        RegistryError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!(
                "blob upload to `{}` exceeds the mirror's limit of {} bytes (mirror.push_max_blob_bytes); the upload session ended. \
                 Push a smaller blob or raise that setting in airlock.toml",
                upload.repo, limits.max_blob_bytes
            ),
        )
    };
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| partial.hasher.len().saturating_add(n) > limits.max_blob_bytes) {
        return Err(too_large());
    }
    check_space(state, &upload.repo, announced.unwrap_or(0))?;
    let mut unchecked = 0u64;
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout(limits.session_expiry, stream.next()).await.map_err(|_| {
            RegistryError::new(
                StatusCode::REQUEST_TIMEOUT,
                "BLOB_UPLOAD_INVALID",
                format!(
                    "no bytes arrived for {} s (mirror.push_session_expiry_seconds); the upload session ended, start the upload again",
                    limits.session_expiry.as_secs()
                ),
            )
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", e.to_string()))?;
        if partial.hasher.len() + chunk.len() as u64 > limits.max_blob_bytes {
            return Err(too_large());
        }
        unchecked += chunk.len() as u64;
        if unchecked >= SPACE_CHECK_EVERY {
            check_space(state, &upload.repo, 0)?;
            unchecked = 0;
        }
        partial.file.write_all(&chunk)?;
        partial.hasher.update(&chunk);
        upload.touch(partial.hasher.len());
    }
    Ok(())
}

async fn patch_upload(state: &AppState, name: &str, id: &str, token: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let upload = state.uploads.find(id, name, token)?;
    let mut data = upload.data.try_lock().map_err(|_| busy())?;
    let partial = data.as_mut().ok_or_else(RegistryError::upload_unknown)?;
    if let Some(range) = headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) {
        let start = range.trim_start_matches("bytes ").split('-').next().and_then(|s| s.parse::<u64>().ok());
        if start != Some(partial.hasher.len()) {
            let mut response = RegistryError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", "chunk out of order")
                .into_response_with_range(partial.hasher.len());
            response.headers_mut().insert(header::LOCATION, header_value(&format!("/v2/{name}/blobs/uploads/{id}")));
            return Ok(response);
        }
    }
    if let Err(e) = append(state, &upload, partial, headers, body).await {
        state.uploads.remove(id);
        return Err(e);
    }
    Ok(upload_response(StatusCode::ACCEPTED, name, id, partial.hasher.len()))
}

async fn finish_upload(state: &AppState, name: &str, id: &str, token: &str, query: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let expected = query_param(query, "digest").ok_or_else(|| RegistryError::digest_invalid("the `digest` parameter is required"))?;
    let expected = parse_digest(&expected)?;
    let upload = state.uploads.find(id, name, token)?;
    let mut data = upload.data.try_lock().map_err(|_| busy())?;
    // One PUT ends the session, whatever happens next.
    state.uploads.remove(id);
    let mut partial = data.take().ok_or_else(RegistryError::upload_unknown)?;
    append(state, &upload, &mut partial, headers, body).await?;
    publish(state, name, partial, expected)
}

/// Checks the uploaded bytes against the digest the client named; only then does the
/// blob become visible, linked to the repository it was pushed to.
fn publish(state: &AppState, name: &str, partial: Partial, expected: Digest) -> Result<Response> {
    let (actual, size) = partial.hasher.finish();
    if actual != expected {
        return Err(RegistryError::digest_invalid(format!("upload hashes to {actual}, not {expected}")));
    }
    state.store.blobs.publish(partial.file, &actual)?;
    let mut changes = Changes::default();
    changes.blob(&actual, size);
    changes.link_blob(&actual, name);
    state.store.commit(changes)?;
    Ok(created(format!("/v2/{name}/blobs/{actual}"), &actual))
}

async fn put_manifest(state: &AppState, name: &str, reference: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    check_name(name)?;
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_SIZE as usize)
        .await
        .map_err(|_| RegistryError::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", "manifest too large"))?;
    let digest = Digest::of(&bytes);
    let by_digest = reference.contains(':');
    if by_digest && parse_digest(reference)? != digest {
        return Err(RegistryError::digest_invalid(format!("the manifest hashes to {digest}, not {reference}")));
    }
    if !by_digest && !airlock_oci::is_valid_tag(reference) {
        return Err(RegistryError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", format!("`{reference}` is not a valid tag")));
    }
    let links: ManifestLinks = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", e.to_string()))?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .filter(|m| is_manifest_media_type(m))
        .or(links.media_type.clone())
        .unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string());
    let _writes = state.uploads.writes.lock().await;
    for child in links.children() {
        // Only what this repository holds: a manifest must not make another repository's
        // blob readable here (push it, or mount it with `from`, first).
        let known = state.store.repo_references_blob(name, &child.digest)?
            && (state.store.visible_blob(&child.digest)?.is_some() || state.store.manifest(&child.digest)?.is_some());
        if !known {
            return Err(RegistryError::new(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", "manifest references an unknown blob")
                .with_detail(serde_json::json!({ "digest": child.digest })));
        }
    }
    let record = manifest_record(&media_type, &bytes)
        .map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", e.to_string()))?;
    state.store.blobs.put_bytes(&bytes)?;
    let mut changes = Changes::default();
    changes.manifest(name, &digest, &record);
    if !by_digest {
        changes.tag(name, reference, &digest);
    }
    state.store.commit(changes)?;
    let mut response = created(format!("/v2/{name}/manifests/{digest}"), &digest);
    if let Some(subject) = &record.subject {
        response.headers_mut().insert("OCI-Subject", header_value(&subject.to_string()));
    }
    Ok(response)
}

fn delete_manifest(state: &AppState, name: &str, reference: &str) -> Result<Response> {
    let digest = resolve(state, name, reference)?;
    let mut changes = Changes::default();
    if reference.contains(':') {
        let record = state.store.manifest(&digest)?;
        changes.remove_manifest_from_repo(name, &digest, record.as_ref().and_then(|r| r.subject.as_ref()));
        for tag in state.store.tags(name)? {
            if state.store.resolve_tag(name, &tag)? == Some(digest) {
                changes.untag(name, &tag);
            }
        }
    } else {
        changes.untag(name, reference);
    }
    state.store.commit(changes)?;
    Ok(status(StatusCode::ACCEPTED))
}

/// Deletes a blob from one repository: only one a push put there, and never one a manifest
/// in any repository still references. The content goes when no repository links it.
async fn delete_blob(state: &AppState, name: &str, digest: &str) -> Result<Response> {
    let parsed = parse_digest(digest)?;
    let _writes = state.uploads.writes.lock().await;
    if state.store.visible_blob(&parsed)?.is_none() {
        return Err(RegistryError::blob_unknown(digest));
    }
    if let Some(repo) = crate::maintenance::reachable(&state.store)?.get(&parsed) {
        return Err(RegistryError::denied(format!(
            "blob {digest} is referenced by a manifest in repository `{repo}`; delete that manifest first \
             (a blob delete never removes content a manifest uses)"
        ))
        .with_detail(serde_json::json!({ "digest": digest, "repository": repo })));
    }
    let links = state.store.blob_links(&parsed)?;
    if !links.iter().any(|l| l == name) {
        // Not pushed to this repository: another repository's blob is not this one's to delete.
        return Err(RegistryError::blob_unknown(digest));
    }
    let mut changes = Changes::default();
    changes.unlink_blob(&parsed, name);
    if links.len() == 1 {
        changes.remove_blob(&parsed);
    }
    state.store.commit(changes)?;
    Ok(status(StatusCode::ACCEPTED))
}

impl RegistryError {
    fn into_response_with_range(self, offset: u64) -> Response {
        let mut response = axum::response::IntoResponse::into_response(self);
        response.headers_mut().insert(header::RANGE, header_value(&format!("0-{}", offset.saturating_sub(1))));
        response
    }
}
