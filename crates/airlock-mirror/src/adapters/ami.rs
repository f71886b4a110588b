//! AMI descriptors as JSON, from stored `ami-descriptor` artifacts:
//!
//! - `/ami` (or `/ami/`): `{"images": [descriptor, …]}`, the newest version of each image
//!   (`?all=true` for every version; `owner`, `architecture`, `name` filter), in the shape
//!   the bundler's `[ami] descriptor_urls` reads, so a descriptor list round-trips;
//! - `/ami/{name}`: the newest descriptor's exact bytes (`?version=` for another one).

use airlock_bundle::ArtifactKind;
use serde_json::{json, Value};

use super::catalog::{self, StoredFile};
use super::http::{compare_versions, AdapterError, Reply, Req, Result};
use crate::serve::AppState;

/// Largest descriptor parsed for the listing.
const MAX_DESCRIPTOR: u64 = 1024 * 1024;

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    let rest = match req.path.strip_prefix("/ami") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Ok(None),
    };
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed("AMI descriptors are read-only".into()));
    }
    let mut files = catalog::files(state, ArtifactKind::AmiDescriptor)?;
    files.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| compare_versions(&b.version, &a.version)));
    if rest.is_empty() {
        return list(state, req, files).map(Some);
    }
    let name = percent_encoding::percent_decode_str(rest.trim_end_matches('/')).decode_utf8_lossy().into_owned();
    let version = req.param("version");
    let file = files
        .into_iter()
        .find(|f| f.name == name && version.as_ref().is_none_or(|v| f.version == *v))
        .ok_or_else(|| {
            AdapterError::not_found(format!("no AMI descriptor {name}{}", version.map(|v| format!(" version {v}")).unwrap_or_default()))
        })?;
    Ok(Some(Reply::File { content_type: "application/json".into(), file: Box::new(file) }))
}

fn list(state: &AppState, req: &Req, files: Vec<StoredFile>) -> Result<Reply> {
    let all = req.param("all").is_some_and(|v| v == "true");
    let owner = req.param("owner");
    let architecture = req.param("architecture");
    let name = req.param("name");
    let mut images = Vec::new();
    let mut last_name: Option<String> = None;
    for file in files {
        if !all && last_name.as_deref() == Some(file.name.as_str()) {
            continue;
        }
        last_name = Some(file.name.clone());
        if file.size > MAX_DESCRIPTOR {
            tracing::warn!(artifact = %file.reference(), "AMI descriptor too large to list");
            continue;
        }
        let descriptor: Value = match std::fs::read(state.store.blobs.path(&file.layer)).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => {
                tracing::warn!(artifact = %file.reference(), error = %e, "AMI descriptor is not JSON; left out of the listing");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let field = |k: &str| descriptor[k].as_str().map(str::to_string);
        if owner.as_ref().is_some_and(|o| field("owner").as_ref() != Some(o))
            || architecture.as_ref().is_some_and(|a| field("architecture").as_ref() != Some(a))
            || name.as_ref().is_some_and(|n| *n != file.name)
        {
            continue;
        }
        images.push(descriptor);
    }
    Ok(Reply::json(json!({ "images": images })))
}
