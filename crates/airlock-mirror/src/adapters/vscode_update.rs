//! The VS Code update service, from stored `vscode-server` artifacts:
//! `/api/commits/<quality>/<platform>`, `/commit:<sha>/<platform>/<quality>` (the archive,
//! 200 with the bytes), `/latest/<platform>/<quality>`, `/api/latest/…`, `/api/versions/…`
//! and the desktop updater's `/api/update/<platform>/<quality>/<commit>` (204: up to date).
//!
//! Conventions (docs/artifact-conventions.md): version = the 40-hex commit, platform = the
//! update service's platform name, quality from `vnd.airlock.vscode.quality` (default
//! `stable`), product version from `vnd.airlock.vscode.product-version` or the archive's
//! `product.json`.

use std::cmp::Ordering;

use airlock_bundle::ArtifactKind;
use serde_json::{json, Value};

use super::catalog::{self, StoredFile};
use super::http::{compare_versions, epoch_millis, seg, AdapterError, Origin, Reply, Req, Result};
use crate::serve::AppState;

pub const QUALITY: &str = "vnd.airlock.vscode.quality";
pub const PRODUCT_VERSION: &str = "vnd.airlock.vscode.product-version";

/// One stored server (or CLI) archive.
struct Server {
    file: StoredFile,
    commit: String,
    platform: String,
    quality: String,
    /// The semver release (`1.85.1`), when known.
    product_version: Option<String>,
    /// Release time in milliseconds since the epoch (product.json `date`, else import).
    timestamp: u64,
}

impl Server {
    /// What the API calls `name`: the product version, else the commit.
    fn name(&self) -> &str {
        self.product_version.as_deref().unwrap_or(&self.commit)
    }
}

fn load(state: &AppState) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for file in catalog::files(state, ArtifactKind::VscodeServer)? {
        let Some(platform) = file.platform.clone().filter(|p| !p.is_empty()) else {
            tracing::warn!(artifact = %file.reference(), "vscode-server artifact without a platform left out");
            continue;
        };
        let commit = file.version.to_ascii_lowercase();
        let quality = file.annotation(QUALITY).unwrap_or("stable").to_string();
        let product = match file.annotation(PRODUCT_VERSION) {
            Some(_) => None,
            None => catalog::json_in_archive(state, &file, "product.json"),
        };
        let product_version = file
            .annotation(PRODUCT_VERSION)
            .map(str::to_string)
            .or_else(|| product.as_ref().and_then(|p| p["version"].as_str().map(str::to_string)));
        if let Some(product_commit) = product.as_ref().and_then(|p| p["commit"].as_str()) {
            if product_commit != commit {
                tracing::warn!(artifact = %file.reference(), %product_commit, "the archive's product.json names another commit");
            }
        }
        let timestamp = product
            .as_ref()
            .and_then(|p| p["date"].as_str())
            .map(epoch_millis)
            .filter(|t| *t > 0)
            .unwrap_or_else(|| epoch_millis(&file.imported));
        servers.push(Server { commit, platform, quality, product_version, timestamp, file });
    }
    // Newest first: by product version, then release time.
    servers.sort_by(|a, b| newer(b, a));
    Ok(servers)
}

fn newer(a: &Server, b: &Server) -> Ordering {
    let by_version = match (&a.product_version, &b.product_version) {
        (Some(x), Some(y)) => compare_versions(x, y),
        _ => Ordering::Equal,
    };
    by_version.then(a.timestamp.cmp(&b.timestamp)).then_with(|| a.commit.cmp(&b.commit))
}

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    let segments = req.segments();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = match s.as_slice() {
        ["api", "commits", quality, platform] => Route::Commits { quality, platform },
        [first, platform, quality] if first.starts_with("commit:") => Route::Download { commit: Some(&first["commit:".len()..]), platform, quality },
        ["latest", platform, quality] => Route::Download { commit: None, platform, quality },
        ["api", "latest", platform, quality] => Route::Latest { version: None, platform, quality },
        ["api", "versions", version, platform, quality] => Route::Latest { version: Some(version), platform, quality },
        ["api", "update", platform, quality, commit] => Route::Update { platform, quality, commit },
        _ => return Ok(None),
    };
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed("the update service is read-only".into()));
    }
    let servers = load(state)?;
    let matching = |platform: &str, quality: &str| -> Result<Vec<&Server>> {
        let found: Vec<&Server> = servers.iter().filter(|s| s.platform == platform && s.quality == quality).collect();
        if found.is_empty() {
            let mut known: Vec<String> = servers.iter().map(|s| format!("{}/{}", s.platform, s.quality)).collect();
            known.sort();
            known.dedup();
            return Err(AdapterError::not_found(format!(
                "no VS Code server for platform `{platform}`, quality `{quality}` is mirrored (mirrored: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
        Ok(found)
    };
    let reply = match route {
        Route::Commits { quality, platform } => {
            let commits: Vec<&str> = matching(platform, quality)?.iter().map(|s| s.commit.as_str()).collect();
            Reply::json(json!(commits))
        }
        Route::Download { commit, platform, quality } => {
            let found = matching(platform, quality)?;
            let server = match commit {
                None => found[0],
                Some(commit) => {
                    let commit = commit.to_ascii_lowercase();
                    found.into_iter().find(|s| s.commit == commit).ok_or_else(|| {
                        AdapterError::not_found(format!("commit {commit} is not mirrored for {platform}/{quality}"))
                    })?
                }
            };
            Reply::file(server.file.clone())
        }
        Route::Latest { version, platform, quality } => {
            let found = matching(platform, quality)?;
            let server = match version {
                None | Some("latest") => found[0],
                Some(version) => found.into_iter().find(|s| s.product_version.as_deref() == Some(version) || s.commit == version).ok_or_else(|| {
                    AdapterError::not_found(format!("version {version} is not mirrored for {platform}/{quality}"))
                })?,
            };
            Reply::json(release_json(&req.origin, server))
        }
        Route::Update { platform, quality, commit } => {
            let newest = matching(platform, quality)?[0];
            if newest.commit.eq_ignore_ascii_case(commit) {
                Reply::NoContent
            } else {
                Reply::json(release_json(&req.origin, newest))
            }
        }
    };
    Ok(Some(reply))
}

enum Route<'a> {
    Commits { quality: &'a str, platform: &'a str },
    Download { commit: Option<&'a str>, platform: &'a str, quality: &'a str },
    Latest { version: Option<&'a str>, platform: &'a str, quality: &'a str },
    Update { platform: &'a str, quality: &'a str, commit: &'a str },
}

/// What `/api/latest`, `/api/versions` and `/api/update` say about a release; `url` and
/// `sha256hash` describe exactly the bytes `/commit:…` serves.
fn release_json(origin: &Origin, server: &Server) -> Value {
    json!({
        "version": server.commit,
        "name": server.name(),
        "productVersion": server.name(),
        "timestamp": server.timestamp,
        "url": origin.link(&format!("/commit:{}/{}/{}", server.commit, seg(&server.platform), seg(&server.quality))),
        "sha256hash": server.file.layer.hex(),
        "supportsFastUpdate": false,
    })
}
