//! OCI Distribution error bodies: `{"errors":[{"code","message","detail"}]}` with the
//! spec's codes and status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct RegistryError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: serde_json::Value,
}

impl RegistryError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        RegistryError { status, code, message: message.into(), detail: serde_json::Value::Null }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry").with_detail(json!({ "digest": digest }))
    }

    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown").with_detail(json!({ "reference": reference }))
    }

    pub fn name_unknown(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "repository name not known to registry").with_detail(json!({ "name": name }))
    }

    pub fn name_invalid(name: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", "invalid repository name").with_detail(json!({ "name": name }))
    }

    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    pub fn upload_unknown() -> Self {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }

    /// The request is understood and authenticated, but not allowed (spec code `DENIED`).
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "DENIED", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required: use any user name and a push token from `airlock mirror token create`")
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "registry request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message.to_string())
    }
}

impl From<crate::store::StoreError> for RegistryError {
    fn from(e: crate::store::StoreError) -> Self {
        RegistryError::internal(e)
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::internal(e)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = json!({ "errors": [{ "code": self.code, "message": self.message, "detail": self.detail }] });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"airlock mirror\""));
        }
        response
    }
}
