//! Push (off unless `mirror serve --allow-push`): blob uploads (monolithic, chunked,
//! cross-repository mount), manifest puts, and deletes. Clients authenticate with HTTP
//! Basic: any user name, and a push token from `airlock mirror token create` as password.

use std::collections::HashMap;
use std::io::Write;

use airlock_bundler::digest::Hasher;
use airlock_bundler::oci::{self, ManifestLinks};
use airlock_bundler::Digest;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::pull::{header_value, resolve};
use super::{check_name, query_param, RegistryError, Route};
use crate::import::manifest_record;
use crate::serve::AppState;
use crate::store::Changes;

type Result<T> = std::result::Result<T, RegistryError>;

/// Upload sessions in progress, by id. They live in memory: an upload interrupted by a
/// restart starts again, as clients do on `BLOB_UPLOAD_UNKNOWN`.
#[derive(Default)]
pub struct Uploads {
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    repo: String,
    file: tempfile::NamedTempFile,
    hasher: Hasher,
}

pub async fn handle(state: &AppState, method: &Method, route: Route, query: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let writes = matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if !writes {
        return Err(RegistryError::unsupported(format!("{method} is not supported here")));
    }
    if !state.allow_push {
        return Err(RegistryError::unsupported(
            "this mirror is read-only; content arrives in signed bundles (`airlock mirror import`), or start `mirror serve --allow-push`",
        ));
    }
    authorize(state, headers)?;
    match (method.clone(), route) {
        (Method::POST, Route::Uploads { name, session: None }) => start_upload(state, &name, query, body).await,
        (Method::PATCH, Route::Uploads { name, session: Some(id) }) => patch_upload(state, &name, &id, headers, body).await,
        (Method::PUT, Route::Uploads { name, session: Some(id) }) => finish_upload(state, &name, &id, query, body).await,
        (Method::DELETE, Route::Uploads { session: Some(id), .. }) => {
            state.uploads.sessions.lock().await.remove(&id).ok_or_else(RegistryError::upload_unknown)?;
            Ok(status(StatusCode::NO_CONTENT))
        }
        (Method::PUT, Route::Manifest { name, reference }) => put_manifest(state, &name, &reference, headers, body).await,
        (Method::DELETE, Route::Manifest { name, reference }) => delete_manifest(state, &name, &reference),
        (Method::DELETE, Route::Blob { name, digest }) => delete_blob(state, &name, &digest),
        (method, _) => Err(RegistryError::unsupported(format!("{method} is not supported on this path"))),
    }
}

/// Upload status (`GET …/blobs/uploads/<id>`).
pub async fn upload_status(state: &AppState, name: &str, id: &str) -> Result<Response> {
    let sessions = state.uploads.sessions.lock().await;
    let session = sessions.get(id).ok_or_else(RegistryError::upload_unknown)?;
    Ok(upload_response(StatusCode::NO_CONTENT, name, id, session.hasher.len()))
}

pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(RegistryError::unauthorized)?;
    let (_, token) = credentials.split_once(':').ok_or_else(RegistryError::unauthorized)?;
    match state.store.token(&crate::tokens::hash(token))? {
        Some(_) => Ok(()),
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

async fn start_upload(state: &AppState, name: &str, query: &str, body: Body) -> Result<Response> {
    check_name(name)?;
    if let Some(mount) = query_param(query, "mount") {
        let digest = parse_digest(&mount)?;
        if state.store.visible_blob(&digest)?.is_some() {
            return Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest));
        }
        // Unknown blob: fall back to an ordinary upload session, as the spec says.
    }
    let mut session = Session { repo: name.to_string(), file: state.store.blobs.staging_file()?, hasher: Hasher::new() };
    if let Some(expected) = query_param(query, "digest") {
        let expected = parse_digest(&expected)?;
        append(&mut session, body).await?;
        return publish(state, name, session, expected);
    }
    let id = crate::tokens::random_hex(16);
    state.uploads.sessions.lock().await.insert(id.clone(), session);
    Ok(upload_response(StatusCode::ACCEPTED, name, &id, 0))
}

async fn append(session: &mut Session, body: Body) -> Result<()> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", e.to_string()))?;
        session.file.write_all(&chunk)?;
        session.hasher.update(&chunk);
    }
    Ok(())
}

async fn patch_upload(state: &AppState, name: &str, id: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let mut sessions = state.uploads.sessions.lock().await;
    let session = sessions.get_mut(id).filter(|s| s.repo == name).ok_or_else(RegistryError::upload_unknown)?;
    if let Some(range) = headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) {
        let start = range.trim_start_matches("bytes ").split('-').next().and_then(|s| s.parse::<u64>().ok());
        if start != Some(session.hasher.len()) {
            let mut response = RegistryError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", "chunk out of order")
                .into_response_with_range(session.hasher.len());
            response.headers_mut().insert(header::LOCATION, header_value(&format!("/v2/{name}/blobs/uploads/{id}")));
            return Ok(response);
        }
    }
    append(session, body).await?;
    Ok(upload_response(StatusCode::ACCEPTED, name, id, session.hasher.len()))
}

async fn finish_upload(state: &AppState, name: &str, id: &str, query: &str, body: Body) -> Result<Response> {
    let expected = query_param(query, "digest").ok_or_else(|| RegistryError::digest_invalid("the `digest` parameter is required"))?;
    let expected = parse_digest(&expected)?;
    let mut session = {
        let mut sessions = state.uploads.sessions.lock().await;
        match sessions.get(id) {
            Some(s) if s.repo == name => sessions.remove(id).expect("present"),
            _ => return Err(RegistryError::upload_unknown()),
        }
    };
    append(&mut session, body).await?;
    publish(state, name, session, expected)
}

/// Checks the uploaded bytes against the digest the client named; only then does the
/// blob become visible.
fn publish(state: &AppState, name: &str, session: Session, expected: Digest) -> Result<Response> {
    let (actual, size) = session.hasher.finish();
    if actual != expected {
        return Err(RegistryError::digest_invalid(format!("upload hashes to {actual}, not {expected}")));
    }
    state.store.blobs.publish(session.file, &actual)?;
    let mut changes = Changes::default();
    changes.blob(&actual, size);
    state.store.commit(changes)?;
    Ok(created(format!("/v2/{name}/blobs/{actual}"), &actual))
}

async fn put_manifest(state: &AppState, name: &str, reference: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    check_name(name)?;
    let bytes = axum::body::to_bytes(body, oci::MAX_MANIFEST_SIZE as usize)
        .await
        .map_err(|_| RegistryError::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", "manifest too large"))?;
    let digest = Digest::of(&bytes);
    let by_digest = reference.contains(':');
    if by_digest && parse_digest(reference)? != digest {
        return Err(RegistryError::digest_invalid(format!("the manifest hashes to {digest}, not {reference}")));
    }
    if !by_digest && !airlock_bundler::offline_manifest::is_valid_tag(reference) {
        return Err(RegistryError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", format!("`{reference}` is not a valid tag")));
    }
    let links: ManifestLinks = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", e.to_string()))?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .filter(|m| oci::is_manifest_media_type(m))
        .or(links.media_type.clone())
        .unwrap_or_else(|| oci::MEDIA_TYPE_IMAGE_MANIFEST.to_string());
    for child in links.children() {
        let known = state.store.visible_blob(&child.digest)?.is_some() || state.store.manifest(&child.digest)?.is_some();
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

fn delete_blob(state: &AppState, name: &str, digest: &str) -> Result<Response> {
    check_name(name)?;
    let parsed = parse_digest(digest)?;
    if state.store.visible_blob(&parsed)?.is_none() {
        return Err(RegistryError::blob_unknown(digest));
    }
    let mut changes = Changes::default();
    changes.remove_blob(&parsed);
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
