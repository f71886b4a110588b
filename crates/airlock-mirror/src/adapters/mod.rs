//! Protocol adapters: everything `mirror serve` answers besides the OCI API, computed from
//! the store on each request so answers always match the bytes served.
//!
//! | module            | protocol                                                         |
//! |-------------------|------------------------------------------------------------------|
//! | [`vscode_update`] | VS Code update service (`/api/commits/…`, `/commit:…`, …)        |
//! | [`gallery`]       | extension gallery (`/vscode/gallery/extensionquery`, assets, …)  |
//! | [`openvsx`]       | Open VSX registry API (`/api/{ns}/{name}…`)                      |
//! | [`jetbrains`]     | JetBrains products API and archives                              |
//! | [`releases`]      | release files, `.sha256` sidecars, channel `manifest.json`       |
//! | [`ami`]           | AMI descriptors                                                  |
//! | [`pypi`]          | PyPI simple index (`/pypi/simple/…`) and package files           |
//! | [`npm`]           | npm registry (`/npm/{name}`, tarballs)                           |
//! | [`cargo`]         | Cargo sparse index (`/cargo/index/…`) and crate downloads        |
//! | [`replay`]        | files at their upstream URL's path, for hosts pointed at the mirror |
//!
//! Which protocols answer depends on the `Host` the client used ([`hosts`]), so clients with
//! compiled-in upstream hosts work behind split-horizon DNS; generated links point back at
//! that same host.

pub mod ami;
mod archive;
pub mod cargo;
mod catalog;
mod extensions;
pub mod gallery;
pub mod hosts;
mod http;
pub mod jetbrains;
pub mod npm;
pub mod openvsx;
pub mod pypi;
pub mod releases;
mod replay;
pub mod vscode_update;

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

pub use catalog::Cache;
use hosts::Face;
use http::{AdapterError, Origin, Reply, Req, Result};

use crate::registry;
use crate::serve::AppState;

/// Marks requests that arrived over TLS (set by `serve` on its HTTPS listener), so that
/// generated links use `https`.
#[derive(Clone, Copy, Debug)]
pub struct Https;

/// On the mirror's own name the update service lives under this prefix, because Open VSX
/// owns `/api/…` there. (`/commit:…` and `/latest/…` are also answered at the root.)
pub const VSCODE_UPDATE_PREFIX: &str = "/vscode-update";

/// Largest request body read (extension queries are a few hundred bytes).
const MAX_BODY: usize = 1024 * 1024;

/// The host as the client sent it (HTTP/2 authority or `Host`), port included.
fn host_as_sent(parts: &Parts) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Route family for metrics: which protocol a request was for.
pub fn family(host: &str, path: &str) -> &'static str {
    let face = hosts::face_for(host);
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    match face {
        Face::Registry => "oci",
        Face::VscodeUpdate => "vscode-update",
        Face::JetBrainsData | Face::JetBrainsDownload => "jetbrains",
        Face::OpenVsx | Face::Marketplace if under("/api") => "openvsx",
        Face::OpenVsx | Face::Marketplace => "gallery",
        Face::Own if under("/v2") => "oci",
        Face::Own if path == "/metrics" => "metrics",
        Face::Own if under(VSCODE_UPDATE_PREFIX) || path.starts_with("/commit:") || under("/latest") => "vscode-update",
        Face::Own if under("/vscode") => "gallery",
        Face::Own if under("/api") => "openvsx",
        Face::Own if under("/products") || path == "/products.json" || under("/jetbrains") => "jetbrains",
        Face::Own if under("/releases") => "releases",
        Face::Own if under("/ami") => "ami",
        Face::Own if under(pypi::PREFIX) => "pypi",
        Face::Own if under(npm::PREFIX) => "npm",
        Face::Own if under(cargo::PREFIX) => "cargo",
        Face::Own => "other",
    }
}

/// Entry point for every request that is not `/metrics`.
pub async fn route(state: Arc<AppState>, parts: Parts, body: Body) -> Response {
    let host = host_as_sent(&parts);
    let face = hosts::face_for(&host);
    let path = parts.uri.path().to_string();
    let is_oci = path == "/v2" || path.starts_with("/v2/");
    if face == Face::Registry || (face == Face::Own && is_oci) {
        return registry::handle(state, parts.method, parts.uri, parts.headers, body).await;
    }
    let body = if parts.method == Method::POST {
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return AdapterError::BadRequest(format!("request body larger than {MAX_BODY} bytes or unreadable")).into_response();
            }
        }
    } else {
        Default::default()
    };
    let forwarded_https = parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if parts.extensions.get::<Https>().is_some() || forwarded_https { "https" } else { "http" };
    // The update service under its prefix on the mirror's own name.
    let (face, base, inner_path) = match path.strip_prefix(VSCODE_UPDATE_PREFIX) {
        Some(rest) if face == Face::Own && (rest.is_empty() || rest.starts_with('/')) => {
            (Face::VscodeUpdate, VSCODE_UPDATE_PREFIX.to_string(), rest.to_string())
        }
        _ => (face, String::new(), path.clone()),
    };
    let head = parts.method == Method::HEAD;
    let request_headers = parts.headers.clone();
    let req = Req {
        method: parts.method,
        path: inner_path,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        origin: Origin { scheme, host: host.clone(), base },
    };
    let worker = state.clone();
    // Store reads, zip and tarball reads block: keep them off the async workers.
    let answer = tokio::task::spawn_blocking(move || answer(&worker, face, &req, &host)).await;
    match answer {
        Ok(Ok(Some(reply))) => http::respond(&state, reply, &request_headers, head).await,
        Ok(Ok(None)) => AdapterError::not_found(format!("nothing is served at {path}")).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "adapter task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

type Adapter<'a> = &'a dyn Fn() -> Result<Option<Reply>>;

/// The first adapter of the face that claims the path answers.
fn answer(state: &AppState, face: Face, req: &Req, host: &str) -> Result<Option<Reply>> {
    let vscode_update = || vscode_update::handle(state, req);
    let open_vsx_gallery = || gallery::handle(state, req, &gallery::OPEN_VSX);
    let marketplace_gallery = || gallery::handle(state, req, &gallery::MARKETPLACE);
    let open_vsx_api = || openvsx::handle(state, req);
    let jetbrains_api = || jetbrains::handle(state, req);
    let release_files = || releases::handle(state, req);
    let ami_descriptors = || ami::handle(state, req);
    let python_index = || pypi::handle(state, req);
    let npm_registry = || npm::handle(state, req);
    let cargo_registry = || cargo::handle(state, req);
    let upstream_paths = || replay::handle(state, req, host);
    let root_update = || {
        if req.path.starts_with("/commit:") || req.path.starts_with("/latest/") {
            vscode_update::handle(state, req)
        } else {
            Ok(None)
        }
    };
    let chain: Vec<Adapter> = match face {
        Face::VscodeUpdate => vec![&vscode_update, &upstream_paths],
        Face::OpenVsx => vec![&open_vsx_gallery, &open_vsx_api, &upstream_paths],
        Face::Marketplace => vec![&marketplace_gallery, &upstream_paths],
        Face::JetBrainsData => vec![&jetbrains_api, &upstream_paths],
        Face::JetBrainsDownload => vec![&upstream_paths, &jetbrains_api],
        Face::Own => vec![
            &python_index,
            &npm_registry,
            &cargo_registry,
            &release_files,
            &ami_descriptors,
            &root_update,
            &open_vsx_gallery,
            &open_vsx_api,
            &jetbrains_api,
            &upstream_paths,
        ],
        Face::Registry => Vec::new(),
    };
    for adapter in chain {
        if let Some(reply) = adapter()? {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}
