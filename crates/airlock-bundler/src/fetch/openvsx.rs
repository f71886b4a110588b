//! `[[openvsx]]`: extensions from an Open VSX registry (its `/api` registry API). Resolution
//! follows `dependencies` (extensionDependencies) and `bundledExtensions` (extensionPack)
//! transitively, prefers the build for each target platform and falls back to the universal
//! one, and records every extension it reached in the lock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::https::parse_checksum_line;
use super::{Ctx, FetchError};
use airlock_bundle::ArtifactKind;
use crate::lock::LockedFile;
use crate::sources::{parse_extension_id, OpenVsxSource};

struct Wanted {
    namespace: String,
    name: String,
    version: Option<String>,
    target: String,
    /// Who asked for it, for error messages.
    via: String,
}

pub(super) async fn resolve(ctx: &Ctx, source: &OpenVsxSource) -> Result<Vec<LockedFile>, FetchError> {
    let base = source.base_url.trim_end_matches('/');
    let mut queue = VecDeque::new();
    for id in &source.extensions {
        let (namespace, name, version) = parse_extension_id(id).expect("validated with the manifest");
        for target in &source.target_platforms {
            queue.push_back(Wanted { namespace: namespace.clone(), name: name.clone(), version: version.clone(), target: target.clone(), via: "the manifest".into() });
        }
    }
    let mut asked = BTreeSet::new();
    let mut files: BTreeMap<(String, String, String), LockedFile> = BTreeMap::new();
    while let Some(wanted) = queue.pop_front() {
        let id = format!("{}.{}", wanted.namespace, wanted.name);
        if !asked.insert((id.clone(), wanted.version.clone(), wanted.target.clone())) {
            continue;
        }
        let json = query(ctx, base, &wanted).await?;
        let version = json["version"].as_str().unwrap_or_default().to_string();
        let platform = json["targetPlatform"].as_str().unwrap_or("universal").to_string();
        let deps = references(&json, "dependencies");
        let pack = references(&json, "bundledExtensions");
        for (namespace, name) in deps.iter().chain(&pack) {
            queue.push_back(Wanted { namespace: namespace.clone(), name: name.clone(), version: None, target: wanted.target.clone(), via: id.clone() });
        }
        let key = (id.clone(), version.clone(), platform.clone());
        if files.contains_key(&key) {
            continue;
        }
        let download = json["files"]["download"].as_str().ok_or_else(|| FetchError::Upstream {
            what: format!("extension {id} {version}"),
            message: "the registry gives no download link".into(),
        })?;
        let label = format!("vscode-extension {id} {version} ({platform})");
        let (sha256, size, verified_by) = match json["files"]["sha256"].as_str() {
            Some(link) => {
                let text = ctx.http.get(link).await?;
                let digest = parse_checksum_line(&text).map_err(|message| FetchError::Upstream { what: link.to_string(), message })?;
                (digest, None, "sha256Link")
            }
            None => {
                let done = ctx.http.download(download, &label, None, &ctx.cache).await?;
                (done.digest, Some(done.size), "downloaded")
            }
        };
        let join = |list: &[(String, String)]| list.iter().map(|(n, e)| format!("{n}.{e}")).collect::<Vec<_>>().join(",");
        let mut annotations = BTreeMap::new();
        if !deps.is_empty() {
            annotations.insert("vnd.airlock.vscode-extension.dependencies".to_string(), join(&deps));
        }
        if !pack.is_empty() {
            annotations.insert("vnd.airlock.vscode-extension.pack".to_string(), join(&pack));
        }
        tracing::info!(extension = %id, %version, %platform, "resolved");
        files.insert(key, LockedFile {
            kind: ArtifactKind::VscodeExtension,
            name: id.clone(),
            version: version.clone(),
            platform: Some(platform.clone()),
            url: download.to_string(),
            sha256,
            size,
            file_name: format!("{id}-{version}{}.vsix", if platform == "universal" { String::new() } else { format!("@{platform}") }),
            media_type: "application/zip".into(),
            verified_by: verified_by.into(),
            annotations,
            inline: None,
        });
    }
    Ok(files.into_values().collect())
}

/// The platform-specific build, else the universal one (`/api/{ns}/{name}[/{target}][/{version}]`).
async fn query(ctx: &Ctx, base: &str, wanted: &Wanted) -> Result<Value, FetchError> {
    let version = wanted.version.as_ref().map(|v| format!("/{v}")).unwrap_or_default();
    let specific = format!("{base}/api/{}/{}/{}{version}", wanted.namespace, wanted.name, wanted.target);
    let universal = format!("{base}/api/{}/{}{version}", wanted.namespace, wanted.name);
    for url in [&specific, &universal] {
        if let Some(body) = ctx.http.get_optional(url).await? {
            return serde_json::from_slice(&body).map_err(|e| FetchError::Upstream { what: url.clone(), message: e.to_string() });
        }
    }
    Err(FetchError::Upstream {
        what: format!("extension {}.{}{}", wanted.namespace, wanted.name, wanted.version.as_ref().map(|v| format!("@{v}")).unwrap_or_default()),
        message: format!("{universal} knows no such extension (asked for by {}); check the id and version", wanted.via),
    })
}

fn references(json: &Value, field: &str) -> Vec<(String, String)> {
    json[field]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|d| Some((d["namespace"].as_str()?.to_ascii_lowercase(), d["extension"].as_str()?.to_ascii_lowercase())))
                .collect()
        })
        .unwrap_or_default()
}
