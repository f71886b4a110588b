//! What adapters answer with, and the small HTTP pieces they share: the request as they see
//! it, errors, query strings, version ordering, and streaming a stored file with `Range`.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::catalog::StoredFile;
pub use crate::registry::{header_value, parse_range};
use crate::serve::AppState;

/// Where the client reached the mirror, so that generated links lead back the same way.
#[derive(Clone, Debug)]
pub struct Origin {
    pub scheme: &'static str,
    /// The host as the client sent it, port included.
    pub host: String,
    /// A path prefix the face is served under on the mirror's own name (`/vscode-update`).
    pub base: String,
}

impl Origin {
    /// An absolute link to `path` (which starts with `/`).
    pub fn link(&self, path: &str) -> String {
        format!("{}://{}{}{}", self.scheme, self.host, self.base, path)
    }
}

/// A request as the adapters see it: the path below the face's base, the raw query.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub origin: Origin,
}

impl Req {
    pub fn is_read(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    /// Decoded query parameters, in order.
    pub fn params(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params().into_iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Path segments, percent-decoded, without empty ones.
    pub fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect()
    }
}

/// An adapter's answer, computed off the async threads; files are streamed afterwards.
pub enum Reply {
    Json(StatusCode, Value),
    Text { content_type: &'static str, body: String },
    Bytes { content_type: String, body: Vec<u8> },
    /// The bytes of a stored file, with `Range` support.
    File { file: Box<StoredFile>, content_type: String },
    Redirect(String),
    NoContent,
}

impl Reply {
    pub fn json(value: Value) -> Reply {
        Reply::Json(StatusCode::OK, value)
    }

    /// The file with the media type it was carried with.
    pub fn file(file: StoredFile) -> Reply {
        let content_type = file.media_type.clone();
        Reply::File { file: Box::new(file), content_type }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("reading the content store: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored artifact {what} is unusable: {message}")]
    Content { what: String, message: String },
}

impl AdapterError {
    pub fn not_found(message: impl Into<String>) -> Self {
        AdapterError::NotFound(message.into())
    }
}

impl IntoResponse for AdapterError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdapterError::NotFound(_) => StatusCode::NOT_FOUND,
            AdapterError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdapterError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            _ => {
                tracing::error!(error = %self, "adapter request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        // Open VSX's error shape; `ovsx` prints the `error` field.
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub type Result<T> = std::result::Result<T, AdapterError>;

/// Turns a reply into a response; files are streamed from the content store.
pub async fn respond(state: &Arc<AppState>, reply: Reply, request_headers: &HeaderMap, head: bool) -> Response {
    match reply {
        Reply::Json(status, value) => (status, axum::Json(value)).into_response(),
        Reply::Text { content_type, body } => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Reply::Bytes { content_type, body } => ([(header::CONTENT_TYPE, header_value(&content_type))], body).into_response(),
        Reply::Redirect(location) => {
            (StatusCode::FOUND, [(header::LOCATION, header_value(&location))]).into_response()
        }
        Reply::NoContent => StatusCode::NO_CONTENT.into_response(),
        Reply::File { file, content_type } => match send_file(state, &file, &content_type, request_headers, head).await {
            Ok(response) => response,
            Err(e) => AdapterError::from(e).into_response(),
        },
    }
}

async fn send_file(state: &Arc<AppState>, file: &StoredFile, content_type: &str, headers: &HeaderMap, head: bool) -> std::io::Result<Response> {
    let size = file.size;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(|spec| parse_range(spec, size));
    if let Some(None) = range {
        let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        response.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}")));
        return Ok(response);
    }
    let range = range.flatten();
    let (start, len) = range.unwrap_or((0, size));
    let body = if head || len == 0 {
        Body::empty()
    } else {
        crate::serve::blob_body(state, &file.layer, start, len).await?
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, header_value(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, header_value(&format!("\"{}\"", file.layer)));
    h.insert(HeaderName::from_static("x-checksum-sha256"), header_value(&file.layer.hex()));
    h.insert(header::CONTENT_DISPOSITION, header_value(&format!("attachment; filename=\"{}\"", file.file_name.replace('"', ""))));
    if let Some((start, len)) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response
            .headers_mut()
            .insert(header::CONTENT_RANGE, header_value(&format!("bytes {}-{}/{size}", start, start + len - 1)));
    }
    Ok(response)
}

/// Orders versions as people read them: numeric parts numerically (`1.10` after `1.9`), a
/// release after its pre-releases (`1.0.0` after `1.0.0-rc.1`), anything else by text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (&str, Option<&str>) {
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        }
    }
    fn parts(v: &str) -> Vec<&str> {
        v.split(['.', '-', '_']).collect()
    }
    fn compare_parts(a: &str, b: &str) -> Ordering {
        let (pa, pb) = (parts(a), parts(b));
        for (x, y) in pa.iter().zip(&pb) {
            let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
                _ => x.cmp(y),
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        pa.len().cmp(&pb.len())
    }
    let ((core_a, pre_a), (core_b, pre_b)) = (split(a), split(b));
    compare_parts(core_a, core_b).then_with(|| match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => compare_parts(x, y),
    })
}

/// Milliseconds since the epoch of an RFC 3339 time (import times), 0 if unreadable.
pub fn epoch_millis(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Media type of a file inside an archive, from its name.
pub fn content_type_for(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or("");
    match ext {
        "json" => "application/json",
        "js" | "mjs" | "cjs" => "application/javascript",
        "css" => "text/css",
        "html" | "htm" => "text/html",
        "md" => "text/markdown",
        "txt" => "text/plain",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "wasm" => "application/wasm",
        "xml" | "vsixmanifest" => "application/xml",
        _ if lower.ends_with("license") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A value made safe for one URL path segment.
pub fn seg(value: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'@').remove(b':').remove(b'+');
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_people_read_them() {
        assert_eq!(compare_versions("1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(compare_versions("1.0.0", "1.0.0-rc.1"), Ordering::Greater);
        assert_eq!(compare_versions("2024.3", "2024.2.1"), Ordering::Greater);
        assert_eq!(compare_versions("2024.3", "2024.3.1"), Ordering::Less);
        assert_eq!(compare_versions("1.2.3", "1.2.3"), Ordering::Equal);
    }

    #[test]
    fn import_times_become_epoch_millis() {
        assert_eq!(epoch_millis("1970-01-01T00:00:01Z"), 1000);
        assert_eq!(epoch_millis("garbage"), 0);
    }
}

