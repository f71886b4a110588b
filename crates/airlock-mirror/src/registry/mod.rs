//! The OCI Distribution API (v1.1): pull, content discovery and, when enabled, push.
//!
//! Repository names contain slashes, so routes cannot be matched by a pattern router;
//! the path is split on the last `/manifests/`, `/blobs/`, … instead, as registries do.

mod errors;
mod pull;
mod push;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};

pub use errors::RegistryError;
pub use pull::{header_value, parse_range};
pub use push::{expire_uploads, PushLimits, Uploads};

use crate::serve::AppState;

/// What a `/v2/…` path addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Tags { name: String },
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    Uploads { name: String, session: Option<String> },
    Referrers { name: String, digest: String },
}

pub fn parse_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name: name.to_string() });
    }
    if let Some((name, session)) = rest.rsplit_once("/blobs/uploads") {
        let session = session.trim_start_matches('/');
        return Some(Route::Uploads {
            name: name.to_string(),
            session: (!session.is_empty()).then(|| session.to_string()),
        });
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Route::Manifest { name: name.to_string(), reference: reference.to_string() });
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Route::Blob { name: name.to_string(), digest: digest.to_string() });
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(Route::Referrers { name: name.to_string(), digest: digest.to_string() });
    }
    None
}

/// Entry point for every `/v2` request.
pub async fn handle(state: Arc<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let Some(route) = parse_route(uri.path()) else {
        return RegistryError::new(axum::http::StatusCode::NOT_FOUND, "NAME_UNKNOWN", "no such endpoint").into_response();
    };
    let query = uri.query().unwrap_or("");
    let result = match (&method, route) {
        // A push-enabled mirror challenges the version check: clients such as skopeo and
        // docker send credentials only after a challenge there. Pulls stay anonymous.
        (_, Route::Base) if state.allow_push => push::authorize(&state, &headers).map(|_| pull::base()),
        (_, Route::Base) => Ok(pull::base()),
        (&Method::GET, Route::Catalog) => pull::catalog(&state, query),
        (&Method::GET, Route::Tags { name }) => pull::tags(&state, &name, query),
        (&Method::GET | &Method::HEAD, Route::Manifest { name, reference }) => {
            pull::manifest(&state, &name, &reference, method == Method::HEAD)
        }
        (&Method::GET | &Method::HEAD, Route::Blob { name, digest }) => {
            pull::blob(&state, &name, &digest, &headers, method == Method::HEAD).await
        }
        (&Method::GET, Route::Referrers { name, digest }) => pull::referrers(&state, &name, &digest, query),
        (&Method::GET, Route::Uploads { name, session: Some(id) }) => push::upload_status(&state, &name, &id, &headers).await,
        (_, route) => push::handle(&state, &method, route, query, &headers, body).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Reads one query parameter (values in registry queries need no decoding beyond `%3A`).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.replace("%3A", ":").replace("%3a", ":").replace("%2F", "/").replace("%2f", "/"))
    })
}

pub(crate) fn check_name(name: &str) -> Result<(), RegistryError> {
    airlock_oci::validate_repository(name).map_err(|_| RegistryError::name_invalid(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_on_the_last_keyword() {
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(
            parse_route("/v2/devcontainers/base/manifests/tiny"),
            Some(Route::Manifest { name: "devcontainers/base".into(), reference: "tiny".into() })
        );
        assert_eq!(
            parse_route("/v2/a/manifests/b/manifests/sha256:00"),
            Some(Route::Manifest { name: "a/manifests/b".into(), reference: "sha256:00".into() })
        );
        assert_eq!(parse_route("/v2/x/y/tags/list"), Some(Route::Tags { name: "x/y".into() }));
        assert_eq!(parse_route("/v2/x/blobs/uploads/"), Some(Route::Uploads { name: "x".into(), session: None }));
        assert_eq!(
            parse_route("/v2/x/blobs/uploads/abc"),
            Some(Route::Uploads { name: "x".into(), session: Some("abc".into()) })
        );
        assert_eq!(parse_route("/v2/x/blobs/sha256:ab"), Some(Route::Blob { name: "x".into(), digest: "sha256:ab".into() }));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse_route("/other"), None);
    }
}
