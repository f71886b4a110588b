//! The stored file artifacts as the adapters see them: each artifact record joined with what
//! its manifest says (the one layer holding the file, its name, the annotations).
//!
//! Everything derived from content is cached by digest. Digests name immutable bytes, so a
//! cache entry can never go stale. The artifact list of each kind is cached until the store's
//! next commit, so answers follow imports (and gc) at once without a metadata scan per request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use airlock_bundle::{annotation, ArtifactKind};
use airlock_oci::Digest;
use serde::Deserialize;
use serde_json::Value;

use super::archive;
use super::extensions::VsixInfo;
use super::http::{AdapterError, Result};
use crate::serve::AppState;

/// One stored file artifact.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    pub platform: Option<String>,
    pub upstream: String,
    pub repository: String,
    pub tag: String,
    pub bundle_id: String,
    /// When it was imported (RFC 3339).
    pub imported: String,
    /// The layer blob: the file's bytes.
    pub layer: Digest,
    pub size: u64,
    pub media_type: String,
    pub file_name: String,
    /// The artifact manifest's annotations (the bundler's extra facts live here).
    pub annotations: BTreeMap<String, String>,
}

impl StoredFile {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// `repository:tag`, for messages.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// What a file artifact's manifest says, cached by manifest digest.
#[derive(Debug)]
struct LayerInfo {
    layer: Digest,
    size: u64,
    media_type: String,
    file_name: String,
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    #[serde(default)]
    layers: Vec<LayerDoc>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerDoc {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A file looked for inside an archive: (layer digest, file name).
type ArchiveMember = (Digest, &'static str);

/// A kind's file list and the store generation it was read at.
type FilesAt = (u64, Arc<Vec<StoredFile>>);

/// Caches of facts derived from immutable content; kept in the server's state.
#[derive(Default)]
pub struct Cache {
    layers: Mutex<HashMap<Digest, Arc<LayerInfo>>>,
    vsix: Mutex<HashMap<Digest, Arc<VsixInfo>>>,
    archive_json: Mutex<HashMap<ArchiveMember, Option<Arc<Value>>>>,
    files: Mutex<HashMap<ArtifactKind, FilesAt>>,
    packages: Mutex<HashMap<Digest, Arc<PackageFacts>>>,
}

/// What the package adapters read from a package file itself, once per layer digest.
#[derive(Debug, Default)]
pub struct PackageFacts {
    /// A wheel's `*.dist-info/METADATA` (PEP 658 serves it beside the wheel).
    pub metadata: Option<Vec<u8>>,
    /// `Requires-Python` of a wheel's METADATA or an sdist's PKG-INFO.
    pub requires_python: Option<String>,
    /// An npm tarball's `package/package.json`.
    pub package_json: Option<Value>,
    /// An npm tarball's `dist.integrity` (sha512) and `dist.shasum` (sha1 hex).
    pub npm_hashes: Option<(String, String)>,
    /// A `.crate`'s normalized `Cargo.toml` (the sparse index entry is built from it).
    pub cargo_manifest: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every stored artifact of one (non-image) kind. An artifact whose manifest cannot be read
/// is left out with a warning rather than failing every answer.
pub fn files(state: &AppState, kind: ArtifactKind) -> Result<Vec<StoredFile>> {
    let generation = state.store.generation();
    if let Some((read_at, files)) = lock(&state.adapters.files).get(&kind) {
        if *read_at == generation {
            return Ok(files.as_ref().clone());
        }
    }
    let files = read_files(state, kind)?;
    lock(&state.adapters.files).insert(kind, (generation, Arc::new(files.clone())));
    Ok(files)
}

fn read_files(state: &AppState, kind: ArtifactKind) -> Result<Vec<StoredFile>> {
    let mut out = Vec::new();
    for record in state.store.artifacts(Some(kind))? {
        let artifact = record.artifact;
        let info = match layer_info(state, &artifact.digest) {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(artifact = %format!("{}:{}", artifact.repository, artifact.tag), error = %e, "stored artifact left out");
                continue;
            }
        };
        out.push(StoredFile {
            kind: artifact.kind,
            name: artifact.name,
            version: artifact.version,
            platform: artifact.platform,
            upstream: artifact.upstream,
            repository: artifact.repository,
            tag: artifact.tag,
            bundle_id: record.bundle_id,
            imported: record.imported,
            layer: info.layer,
            size: info.size,
            media_type: info.media_type.clone(),
            file_name: info.file_name.clone(),
            annotations: info.annotations.clone(),
        });
    }
    Ok(out)
}

fn layer_info(state: &AppState, manifest: &Digest) -> Result<Arc<LayerInfo>> {
    if let Some(info) = lock(&state.adapters.layers).get(manifest) {
        return Ok(info.clone());
    }
    let what = manifest.to_string();
    let bytes = std::fs::read(state.store.blobs.path(manifest))?;
    let doc: ManifestDoc = serde_json::from_slice(&bytes)
        .map_err(|e| AdapterError::Content { what: what.clone(), message: format!("manifest is not valid JSON: {e}") })?;
    let [layer] = <[LayerDoc; 1]>::try_from(doc.layers).map_err(|layers| AdapterError::Content {
        what: what.clone(),
        message: format!("a file artifact has exactly one layer, this one has {}", layers.len()),
    })?;
    let file_name = layer
        .annotations
        .get(annotation::TITLE)
        .cloned()
        .unwrap_or_else(|| layer.digest.hex());
    let info = Arc::new(LayerInfo {
        layer: layer.digest,
        size: layer.size,
        media_type: layer.media_type,
        file_name: sanitize_file_name(&file_name),
        annotations: doc.annotations,
    });
    lock(&state.adapters.layers).insert(*manifest, info.clone());
    Ok(info)
}

/// A file name that is safe in a URL path segment and a download: the last path component,
/// without control characters.
fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        "file".into()
    } else {
        clean
    }
}

/// The VSIX facts of an extension file, read once per layer digest.
pub fn vsix_info(state: &AppState, file: &StoredFile) -> Result<Arc<VsixInfo>> {
    if let Some(info) = lock(&state.adapters.vsix).get(&file.layer) {
        return Ok(info.clone());
    }
    let info = Arc::new(VsixInfo::read(&state.store.blobs.path(&file.layer)).map_err(|message| AdapterError::Content {
        what: format!("{} ({})", file.reference(), file.file_name),
        message,
    })?);
    lock(&state.adapters.vsix).insert(file.layer, info.clone());
    Ok(info)
}

/// A small JSON file found inside a `.tar.gz` (`product.json`, `product-info.json`), read
/// once per layer digest; `None` when the archive has none (or is not a tar.gz).
pub fn json_in_archive(state: &AppState, file: &StoredFile, wanted: &'static str) -> Option<Arc<Value>> {
    let key = (file.layer, wanted);
    if let Some(found) = lock(&state.adapters.archive_json).get(&key) {
        return found.clone();
    }
    let lower = file.file_name.to_ascii_lowercase();
    let found = if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        match archive::json_in_targz(&state.store.blobs.path(&file.layer), wanted, archive::SCAN_BUDGET) {
            Ok(found) => found.map(Arc::new),
            Err(e) => {
                tracing::warn!(artifact = %file.reference(), error = %e, "cannot look inside the archive");
                None
            }
        }
    } else {
        None
    };
    lock(&state.adapters.archive_json).insert(key, found.clone());
    found
}

/// The facts of a package file, read once per layer digest. Unreadable parts are left empty
/// with a warning: the file is still served, only without what could not be read.
pub fn package_facts(state: &AppState, file: &StoredFile) -> Arc<PackageFacts> {
    if let Some(facts) = lock(&state.adapters.packages).get(&file.layer) {
        return facts.clone();
    }
    let path = state.store.blobs.path(&file.layer);
    let warn = |what: &str, e: &dyn std::fmt::Display| tracing::warn!(artifact = %file.reference(), error = %e, "cannot read {what}");
    let mut facts = PackageFacts::default();
    let requires_python = |bytes: &[u8]| {
        airlock_packages::python::metadata_headers(&String::from_utf8_lossy(bytes))
            .remove("requires-python")
            .and_then(|v| v.into_iter().next())
            .filter(|v| !v.is_empty())
    };
    match file.kind {
        ArtifactKind::PythonPackage if file.file_name.ends_with(".whl") => {
            match archive::Zip::open(&path).and_then(|mut zip| zip.dist_info_metadata()) {
                Ok(metadata) => {
                    facts.requires_python = metadata.as_deref().and_then(requires_python);
                    facts.metadata = metadata;
                }
                Err(e) => warn("the wheel's METADATA", &e),
            }
        }
        ArtifactKind::PythonPackage if file.file_name.ends_with(".tar.gz") => {
            match archive::member_in_targz(&path, "PKG-INFO", archive::SCAN_BUDGET, |b| Some(requires_python(b))) {
                Ok(found) => facts.requires_python = found.flatten(),
                Err(e) => warn("the sdist's PKG-INFO", &e),
            }
        }
        ArtifactKind::NpmPackage => {
            match archive::json_in_targz(&path, "package.json", archive::SCAN_BUDGET) {
                Ok(json) => facts.package_json = json,
                Err(e) => warn("the tarball's package.json", &e),
            }
            match std::fs::File::open(&path).and_then(airlock_packages::npm::dist_hashes) {
                Ok(hashes) => facts.npm_hashes = Some(hashes),
                Err(e) => warn("the tarball", &e),
            }
        }
        ArtifactKind::CargoCrate => {
            match archive::member_in_targz(&path, "Cargo.toml", archive::SCAN_BUDGET, |b| String::from_utf8(b.to_vec()).ok()) {
                Ok(toml) => facts.cargo_manifest = toml,
                Err(e) => warn("the crate's Cargo.toml", &e),
            }
        }
        _ => {}
    }
    let facts = Arc::new(facts);
    lock(&state.adapters.packages).insert(file.layer, facts.clone());
    facts
}

/// The channel each bundle was imported on, looked up once per answer.
#[derive(Default)]
pub struct Channels(HashMap<String, Option<String>>);

impl Channels {
    pub fn of(&mut self, state: &AppState, bundle_id: &str) -> Result<Option<String>> {
        if let Some(channel) = self.0.get(bundle_id) {
            return Ok(channel.clone());
        }
        let channel = state.store.import_of(bundle_id)?.and_then(|record| record.channel);
        self.0.insert(bundle_id.to_string(), channel.clone());
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_file_name;

    #[test]
    fn file_names_are_one_safe_segment() {
        assert_eq!(sanitize_file_name("goland-2024.3.tar.gz"), "goland-2024.3.tar.gz");
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name("a\nb"), "ab");
    }
}
