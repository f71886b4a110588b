//! The PyPI simple repository API, from stored `python-package` artifacts of every bundle:
//!
//! - `/pypi/simple/`: every project (PEP 503 HTML, or PEP 691 JSON by `Accept`);
//! - `/pypi/simple/{project}/`: its files, with `#sha256=` links, `data-requires-python`,
//!   `data-yanked` (PEP 592) and `data-core-metadata` (PEP 658/714) for wheels;
//! - `/pypi/files/{sha256}/{filename}`: a file; `….metadata` beside a wheel is its METADATA.
//!
//! A project never imported answers 404 at once: pip and uv then report that no version
//! satisfies the requirement. Nothing is ever fetched from elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use airlock_bundle::ArtifactKind;
use airlock_packages::python::normalize_name;
use airlock_packages::simple::{
    self, Flag, Meta, ProjectFile, ProjectList, ProjectName, ProjectPage,
};
use sha2::Digest as _;

use super::catalog::{self, StoredFile};
use super::http::{compare_versions, seg, AdapterError, Reply, Req, Result};
use crate::serve::AppState;

pub const PREFIX: &str = "/pypi";
const REQUIRES_PYTHON: &str = "vnd.airlock.python.requires-python";
const YANKED: &str = "vnd.airlock.python.yanked";

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    let rest = match req.path.strip_prefix(PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Ok(None),
    };
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed(
            "the package index is read-only".into(),
        ));
    }
    let segments = req.segments();
    let s: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    let accept = req
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let reply = match s.as_slice() {
        ["simple"] => project_list(state, accept)?,
        ["simple", project] => project_page(state, req, accept, project)?,
        ["files", sha256, filename] => file(state, sha256, filename)?,
        _ => {
            return Err(AdapterError::not_found(format!(
                "nothing is served at {PREFIX}{rest}; the index is {PREFIX}/simple/"
            )))
        }
    };
    Ok(Some(reply))
}

fn files(state: &AppState) -> Result<Vec<StoredFile>> {
    catalog::files(state, ArtifactKind::PythonPackage)
}

fn project_list(state: &AppState, accept: Option<&str>) -> Result<Reply> {
    let names: BTreeSet<String> = files(state)?
        .into_iter()
        .map(|f| normalize_name(&f.name))
        .collect();
    let list = ProjectList {
        meta: Meta::default(),
        projects: names.into_iter().map(|name| ProjectName { name }).collect(),
    };
    Ok(negotiated(accept, serde_json::to_vec(&list), || {
        simple::render_list_html(&list)
    }))
}

fn project_page(state: &AppState, req: &Req, accept: Option<&str>, project: &str) -> Result<Reply> {
    let name = normalize_name(project);
    let mut found: Vec<StoredFile> = files(state)?
        .into_iter()
        .filter(|f| normalize_name(&f.name) == name)
        .collect();
    if found.is_empty() {
        return Err(AdapterError::not_found(format!(
            "no project `{name}` was imported into this mirror; ask for it to be added to a bundle's Python lock"
        )));
    }
    found.sort_by(|a, b| {
        compare_versions(&a.version, &b.version).then_with(|| a.file_name.cmp(&b.file_name))
    });
    found.dedup_by(|a, b| a.layer == b.layer && a.file_name == b.file_name);
    let mut versions: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    for file in &found {
        if !versions.contains(&file.version) {
            versions.push(file.version.clone());
        }
        let facts = catalog::package_facts(state, file);
        let metadata = match &facts.metadata {
            Some(bytes) => Flag::Value(BTreeMap::from([(
                "sha256".to_string(),
                hex::encode(sha2::Sha256::digest(bytes)),
            )])),
            None => Flag::Bool(false),
        };
        let yanked = match file.annotations.get(YANKED) {
            None => Flag::Bool(false),
            Some(reason) if reason.is_empty() => Flag::Bool(true),
            Some(reason) => Flag::Value(reason.clone()),
        };
        entries.push(ProjectFile {
            filename: file.file_name.clone(),
            url: req.origin.link(&file_path(file)),
            hashes: BTreeMap::from([("sha256".to_string(), file.layer.hex())]),
            requires_python: file
                .annotation(REQUIRES_PYTHON)
                .map(str::to_string)
                .or_else(|| facts.requires_python.clone()),
            yanked,
            core_metadata: metadata.clone(),
            dist_info_metadata: metadata,
            size: Some(file.size),
        });
    }
    let page = ProjectPage {
        meta: Meta::default(),
        name,
        files: entries,
        versions,
    };
    Ok(negotiated(accept, serde_json::to_vec(&page), || {
        simple::render_project_html(&page)
    }))
}

fn file_path(file: &StoredFile) -> String {
    format!(
        "{PREFIX}/files/{}/{}",
        file.layer.hex(),
        seg(&file.file_name)
    )
}

/// PEP 691: JSON when the client ranks it first, else HTML (the PEP 503 form).
fn negotiated(
    accept: Option<&str>,
    json: serde_json::Result<Vec<u8>>,
    html: impl FnOnce() -> String,
) -> Reply {
    if simple::wants_json(accept) {
        Reply::Bytes {
            content_type: simple::JSON_MEDIA_TYPE.into(),
            body: json.expect("the index model serializes"),
        }
    } else {
        let content_type = if accept.is_some_and(|a| a.contains(simple::HTML_MEDIA_TYPE)) {
            simple::HTML_MEDIA_TYPE
        } else {
            "text/html; charset=utf-8"
        };
        Reply::Bytes {
            content_type: content_type.into(),
            body: html().into_bytes(),
        }
    }
}

fn file(state: &AppState, sha256: &str, filename: &str) -> Result<Reply> {
    let (wanted, metadata) = match filename.strip_suffix(".metadata") {
        Some(wheel) => (wheel, true),
        None => (filename, false),
    };
    let file = files(state)?
        .into_iter()
        .find(|f| f.layer.hex() == sha256 && f.file_name == wanted)
        .ok_or_else(|| {
            AdapterError::not_found(format!(
                "no package file {wanted} with sha256 {sha256} was imported"
            ))
        })?;
    if !metadata {
        return Ok(Reply::File {
            content_type: "application/octet-stream".into(),
            file: Box::new(file),
        });
    }
    let facts = catalog::package_facts(state, &file);
    let body = facts
        .metadata
        .clone()
        .ok_or_else(|| AdapterError::not_found(format!("{wanted} has no core metadata file")))?;
    Ok(Reply::Bytes {
        content_type: "text/plain; charset=utf-8".into(),
        body,
    })
}
