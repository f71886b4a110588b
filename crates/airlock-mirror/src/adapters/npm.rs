//! The npm registry API, from stored `npm-package` artifacts of every bundle:
//!
//! - `/npm/{name}` (`/npm/@scope%2fname` or `/npm/@scope/name`): the packument, full or, for
//!   `Accept: application/vnd.npm.install-v1+json`, abbreviated, with `dist-tags` and each
//!   version's `dist.tarball`, `dist.integrity` (sha512) and `dist.shasum` (sha1);
//! - `/npm/{name}/{version}`: one version's document (`latest` names the dist-tag);
//! - `/npm/{name}/-/{file}.tgz`: a tarball, also at `/{name}/-/{file}.tgz`, where npm looks
//!   after replacing a lock's `resolved` host with the registry's.
//!
//! Version documents come from each tarball's own `package.json` and the hashes from its
//! bytes, so what the registry says always matches what it serves. A name never imported
//! answers 404 at once; nothing is fetched from elsewhere.

use std::collections::BTreeMap;

use airlock_bundle::ArtifactKind;
use serde_json::{json, Map, Value};

use super::catalog::{self, StoredFile};
use super::http::{compare_versions, AdapterError, Origin, Reply, Req, Result};
use crate::serve::AppState;

pub const PREFIX: &str = "/npm";
const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";
const NPM_NAME: &str = "vnd.airlock.npm.name";

/// package.json fields the abbreviated form keeps (npm's registry documentation).
const ABBREVIATED_FIELDS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bin",
    "directories",
    "engines",
    "cpu",
    "os",
    "funding",
    "_hasShrinkwrap",
    "license",
];

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    let rest = match req.path.strip_prefix(PREFIX) {
        _ if is_root_tarball(&req.path) => req.path.trim_start_matches('/'),
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Ok(None),
    };
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed(
            "the npm registry is read-only (publishing happens on the connected side)".into(),
        ));
    }
    // `@scope%2fname` is how npm asks; decoding first makes both spellings one path.
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8_lossy()
        .into_owned();
    let parts: Vec<&str> = decoded.split('/').filter(|p| !p.is_empty()).collect();
    let split = if parts.first().is_some_and(|p| p.starts_with('@')) {
        2
    } else {
        1
    };
    if parts.len() < split || parts[0] == "-" {
        return Err(AdapterError::not_found(format!("nothing is served at {PREFIX}/{decoded} (the registry serves packuments and tarballs only)")));
    }
    let name = parts[..split].join("/");
    let versions = versions_of(state, &name)?;
    let reply = match &parts[split..] {
        [] => {
            let abbreviated = req
                .headers
                .get(axum::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains(ABBREVIATED));
            packument(state, &req.origin, &name, &versions, abbreviated)
        }
        ["-", file_name] => {
            let file = versions
                .iter()
                .find(|f| f.file_name == *file_name)
                .ok_or_else(|| {
                    AdapterError::not_found(format!(
                        "{name} has no tarball {file_name} in this mirror"
                    ))
                })?;
            Reply::File {
                content_type: "application/octet-stream".into(),
                file: Box::new(file.clone()),
            }
        }
        [wanted] => {
            let version = if *wanted == "latest" {
                latest(&versions).map(|f| f.version.clone())
            } else {
                Some(wanted.to_string())
            };
            let file = versions
                .iter()
                .find(|f| Some(&f.version) == version.as_ref())
                .ok_or_else(|| {
                    AdapterError::not_found(format!(
                        "{name}@{wanted} was not imported into this mirror"
                    ))
                })?;
            Reply::json(version_document(state, &req.origin, &name, file, false))
        }
        _ => {
            return Err(AdapterError::not_found(format!(
                "nothing is served at {PREFIX}/{decoded}"
            )))
        }
    };
    Ok(Some(reply))
}

/// `/{name}/-/{file}.tgz` or `/@scope/{name}/-/{file}.tgz` at the root: where npm fetches a
/// lock's `resolved` tarball after replacing its host with the registry's (npm keeps only the
/// registry's origin, not its `/npm/` path).
fn is_root_tarball(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let tarball = |p: &[&str]| p.len() == 3 && p[1] == "-" && p[2].ends_with(".tgz");
    tarball(&parts) || (parts.first().is_some_and(|p| p.starts_with('@')) && tarball(&parts[1..]))
}

/// Every stored version of the package, oldest first.
fn versions_of(state: &AppState, name: &str) -> Result<Vec<StoredFile>> {
    let mut found: Vec<StoredFile> = catalog::files(state, ArtifactKind::NpmPackage)?
        .into_iter()
        .filter(|f| f.annotation(NPM_NAME).unwrap_or(&f.name) == name)
        .collect();
    if found.is_empty() {
        return Err(AdapterError::not_found(format!(
            "{name} was not imported into this mirror; ask for it to be added to a bundle's npm lock"
        )));
    }
    found.sort_by(|a, b| compare_versions(&a.version, &b.version));
    found.dedup_by(|a, b| a.version == b.version);
    Ok(found)
}

/// The newest release, else the newest pre-release.
fn latest(versions: &[StoredFile]) -> Option<&StoredFile> {
    versions
        .iter()
        .rev()
        .find(|f| !f.version.contains('-'))
        .or_else(|| versions.last())
}

fn packument(
    state: &AppState,
    origin: &Origin,
    name: &str,
    versions: &[StoredFile],
    abbreviated: bool,
) -> Reply {
    let mut docs = Map::new();
    let mut times = Map::new();
    for file in versions {
        docs.insert(
            file.version.clone(),
            version_document(state, origin, name, file, abbreviated),
        );
        times.insert(file.version.clone(), json!(file.imported));
    }
    let modified = versions
        .iter()
        .map(|f| f.imported.as_str())
        .max()
        .unwrap_or_default()
        .to_string();
    let dist_tags = json!({ "latest": latest(versions).map(|f| f.version.clone()) });
    let body = if abbreviated {
        json!({ "name": name, "modified": modified, "dist-tags": dist_tags, "versions": docs })
    } else {
        let created = versions
            .iter()
            .map(|f| f.imported.as_str())
            .min()
            .unwrap_or_default()
            .to_string();
        times.insert("created".into(), json!(created));
        times.insert("modified".into(), json!(modified));
        json!({ "_id": name, "name": name, "dist-tags": dist_tags, "versions": docs, "time": times })
    };
    if abbreviated {
        Reply::Bytes {
            content_type: ABBREVIATED.into(),
            body: serde_json::to_vec(&body).expect("JSON serializes"),
        }
    } else {
        Reply::json(body)
    }
}

/// One version: the tarball's own package.json (abbreviated to what installers read, when
/// asked), with `dist` computed from the stored bytes.
fn version_document(
    state: &AppState,
    origin: &Origin,
    name: &str,
    file: &StoredFile,
    abbreviated: bool,
) -> Value {
    let facts = catalog::package_facts(state, file);
    let mut doc: Map<String, Value> = match facts.package_json.as_ref().and_then(Value::as_object) {
        Some(package) if abbreviated => ABBREVIATED_FIELDS
            .iter()
            .filter_map(|field| package.get(*field).map(|v| (field.to_string(), v.clone())))
            .collect(),
        Some(package) => package.clone(),
        None => Map::new(),
    };
    if doc
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n != name)
    {
        tracing::warn!(artifact = %file.reference(), "the tarball's package.json names another package; served under the name it was carried as");
    }
    doc.insert("name".into(), json!(name));
    doc.insert("version".into(), json!(file.version));
    let scripts = facts
        .package_json
        .as_ref()
        .and_then(|p| p["scripts"].as_object());
    if scripts.is_some_and(|s| {
        ["preinstall", "install", "postinstall"]
            .iter()
            .any(|k| s.contains_key(*k))
    }) {
        doc.insert("hasInstallScript".into(), json!(true));
    }
    if !abbreviated {
        doc.insert("_id".into(), json!(format!("{name}@{}", file.version)));
    }
    let mut dist = BTreeMap::from([(
        "tarball".to_string(),
        json!(origin.link(&format!("{PREFIX}/{name}/-/{}", file.file_name))),
    )]);
    if let Some((integrity, shasum)) = &facts.npm_hashes {
        dist.insert("integrity".into(), json!(integrity));
        dist.insert("shasum".into(), json!(shasum));
    }
    doc.insert("dist".into(), json!(dist));
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_tarball_paths_are_recognised() {
        assert!(super::is_root_tarball("/left-pad/-/left-pad-1.3.0.tgz"));
        assert!(super::is_root_tarball("/@s/p/-/p-1.0.0.tgz"));
        assert!(super::is_root_tarball("/npm/-/npm-10.0.0.tgz"));
        assert!(!super::is_root_tarball(
            "/npm/left-pad/-/left-pad-1.3.0.tgz"
        ));
        assert!(!super::is_root_tarball("/api/-/query"));
    }
}
