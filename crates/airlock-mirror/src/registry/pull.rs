//! Pull and content discovery: manifests, blobs (with ranges), tags, catalog, referrers.

use std::sync::Arc;

use airlock_oci::{Digest, MEDIA_TYPE_IMAGE_INDEX};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{check_name, query_param, RegistryError};
use crate::serve::AppState;

type Result<T> = std::result::Result<T, RegistryError>;

pub fn base() -> Response {
    let mut response = axum::Json(json!({})).into_response();
    response
        .headers_mut()
        .insert("Docker-Distribution-API-Version", HeaderValue::from_static("registry/2.0"));
    response
}

/// Resolves a tag or digest within a repository.
pub fn resolve(state: &AppState, name: &str, reference: &str) -> Result<Digest> {
    check_name(name)?;
    if reference.starts_with("sha256:") || reference.contains(':') {
        let digest: Digest = reference.parse().map_err(|_| RegistryError::digest_invalid(format!("`{reference}` is not a sha256 digest")))?;
        if state.store.repo_has_manifest(name, &digest)? {
            return Ok(digest);
        }
        return Err(RegistryError::manifest_unknown(reference));
    }
    match state.store.resolve_tag(name, reference)? {
        Some(digest) => Ok(digest),
        None if !state.store.repo_exists(name)? => Err(RegistryError::name_unknown(name)),
        None => Err(RegistryError::manifest_unknown(reference)),
    }
}

pub fn manifest(state: &AppState, name: &str, reference: &str, head: bool) -> Result<Response> {
    let digest = resolve(state, name, reference)?;
    let record = state.store.manifest(&digest)?.ok_or_else(|| RegistryError::manifest_unknown(reference))?;
    let body = if head { Vec::new() } else { std::fs::read(state.store.blobs.path(&digest))? };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header_value(&record.media_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
    headers.insert("Docker-Content-Digest", header_value(&digest.to_string()));
    Ok(response)
}

pub async fn blob(state: &Arc<AppState>, name: &str, digest: &str, headers: &HeaderMap, head: bool) -> Result<Response> {
    check_name(name)?;
    let parsed: Digest = digest.parse().map_err(|_| RegistryError::digest_invalid(format!("`{digest}` is not a sha256 digest")))?;
    if !state.store.repo_references_blob(name, &parsed)? {
        return Err(RegistryError::blob_unknown(digest));
    }
    let size = match state.store.visible_blob(&parsed)? {
        Some(size) => size,
        // Manifests are blobs too, and clients fetch them by blob URL at times.
        None => state.store.manifest(&parsed)?.map(|m| m.size).ok_or_else(|| RegistryError::blob_unknown(digest))?,
    };
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(spec) => match parse_range(spec, size) {
            Some(range) => Some(range),
            None => {
                let mut response = RegistryError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN", "requested range not satisfiable")
                    .into_response();
                response.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}")));
                return Ok(response);
            }
        },
    };
    let (start, len) = range.unwrap_or((0, size));
    let body = if head || len == 0 {
        Body::empty()
    } else {
        crate::serve::blob_body(state, &parsed, start, len).await?
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert("Docker-Content-Digest", header_value(digest));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response
            .headers_mut()
            .insert(header::CONTENT_RANGE, header_value(&format!("bytes {}-{}/{size}", start, start + len - 1)));
    }
    Ok(response)
}

/// One `bytes=` range: `a-b`, `a-` or `-n`. Returns (start, length), or `None` if it
/// cannot be satisfied or names several ranges.
pub fn parse_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 || size == 0 {
                return None;
            }
            (size.saturating_sub(n), size - 1)
        }
        (start, "") => (start.parse().ok()?, size.checked_sub(1)?),
        (start, end) => (start.parse().ok()?, end.parse::<u64>().ok()?.min(size.checked_sub(1)?)),
    };
    (start <= end && start < size).then(|| (start, end - start + 1))
}

/// `n` and `last` paging with a `Link` header, as the spec describes for tags and catalog.
fn page(items: Vec<String>, query: &str, path: &str) -> (Vec<String>, Option<String>) {
    let last = query_param(query, "last");
    let mut items: Vec<String> = match &last {
        Some(last) => items.into_iter().filter(|t| t.as_str() > last.as_str()).collect(),
        None => items,
    };
    let n = query_param(query, "n").and_then(|n| n.parse::<usize>().ok());
    let mut link = None;
    if let Some(n) = n {
        if items.len() > n {
            items.truncate(n);
            if let Some(last) = items.last() {
                link = Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""));
            }
        }
    }
    (items, link)
}

pub fn tags(state: &AppState, name: &str, query: &str) -> Result<Response> {
    check_name(name)?;
    let tags = state.store.tags(name)?;
    if tags.is_empty() && !state.store.repo_exists(name)? {
        return Err(RegistryError::name_unknown(name));
    }
    let (tags, link) = page(tags, query, &format!("/v2/{name}/tags/list"));
    let mut response = axum::Json(json!({ "name": name, "tags": tags })).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, header_value(&link));
    }
    Ok(response)
}

pub fn catalog(state: &AppState, query: &str) -> Result<Response> {
    let (repos, link) = page(state.store.repositories()?, query, "/v2/_catalog");
    let mut response = axum::Json(json!({ "repositories": repos })).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, header_value(&link));
    }
    Ok(response)
}

pub fn referrers(state: &AppState, name: &str, digest: &str, query: &str) -> Result<Response> {
    check_name(name)?;
    let subject: Digest = digest.parse().map_err(|_| RegistryError::digest_invalid(format!("`{digest}` is not a sha256 digest")))?;
    let filter = query_param(query, "artifactType");
    let mut manifests = Vec::new();
    for referrer in state.store.referrers(&subject)? {
        if !state.store.repo_has_manifest(name, &referrer)? {
            continue;
        }
        let Some(record) = state.store.manifest(&referrer)? else { continue };
        if filter.as_ref().is_some_and(|f| record.artifact_type.as_deref() != Some(f.as_str())) {
            continue;
        }
        let mut descriptor = json!({ "mediaType": record.media_type, "digest": referrer, "size": record.size });
        if let Some(artifact_type) = &record.artifact_type {
            descriptor["artifactType"] = json!(artifact_type);
        }
        if !record.annotations.is_empty() {
            descriptor["annotations"] = json!(record.annotations);
        }
        manifests.push(descriptor);
    }
    let body = json!({ "schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX, "manifests": manifests });
    let mut response = Response::new(Body::from(serde_json::to_vec(&body).expect("json")));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE_IMAGE_INDEX));
    if filter.is_some() {
        response.headers_mut().insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
    }
    Ok(response)
}

pub fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 10)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, 5)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 50)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
