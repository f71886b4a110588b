//! The lock: every network reference of an offline manifest resolved to an exact version
//! and digest. It is TOML, sorted, one artifact per table, so a diff between two locks reads
//! as the list of what changed upstream. `bundle create` fetches exactly what it says and
//! checks every byte against it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airlock_bundle::ArtifactKind;
use airlock_oci::Digest;

pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read the lock {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid airlock lock: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} uses lock version {found}; this airlock reads version {LOCK_VERSION}: run `airlock bundle lock` again")]
    Version { path: PathBuf, found: u32 },
    #[error("the lock {path} was made from a different version of {manifest} (run `airlock bundle lock --manifest {manifest}` again)")]
    Stale { path: PathBuf, manifest: PathBuf },
    #[error("the lock {path} was made from a different version of the package lock {lock_file} (run `airlock bundle lock --manifest {manifest}` again)")]
    StalePackageLock { path: PathBuf, lock_file: PathBuf, manifest: PathBuf },
    #[error("the lock {path} was made from a different version of the devcontainer {devcontainer} (run `airlock bundle lock` again with the same --devcontainer files)")]
    StaleDevcontainer { path: PathBuf, devcontainer: PathBuf },
    #[error("cannot read the devcontainer {path} the lock names: {source} (run `airlock bundle lock` again)")]
    ReadDevcontainer { path: PathBuf, source: std::io::Error },
    #[error("cannot read the package lock {path}: {source}")]
    ReadPackageLock { path: PathBuf, source: std::io::Error },
    #[error("cannot write the lock {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// sha256 of the offline manifest's bytes: a lock is only used with the manifest it came from.
    pub manifest_digest: Digest,
    #[serde(default, rename = "image", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<LockedImage>,
    #[serde(default, rename = "file", skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<LockedFile>,
    /// The package lock files (`[[python]]`, `[[npm]]`) the packages came from, by digest: a
    /// changed package lock makes this lock stale, as a changed manifest does.
    #[serde(default, rename = "package_lock", skip_serializing_if = "Vec::is_empty")]
    pub package_locks: Vec<LockedPackageLock>,
    /// The devcontainer.json files whose image and features are locked, by digest: a changed
    /// devcontainer makes this lock stale.
    #[serde(default, rename = "devcontainer", skip_serializing_if = "Vec::is_empty")]
    pub devcontainers: Vec<LockedPackageLock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackageLock {
    /// As the offline manifest names it.
    pub path: String,
    pub sha256: Digest,
}

/// An image pinned to the digest its tag had when the lock was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// Repository and tag in the mirror.
    pub name: String,
    pub tag: String,
    /// The offline manifest's `source`.
    pub source: String,
    /// Where it was resolved (scheme, host and port).
    pub endpoint: String,
    /// Registry host in the source (credentials are looked up by it).
    pub registry: String,
    /// Repository upstream.
    pub repository: String,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// The platforms kept from a multi-arch index (empty: the whole index, or a single manifest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// The index entries kept, when `platforms` filtered an index.
    #[serde(default, rename = "manifest", skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<LockedPlatformManifest>,
    /// `image`, or `devcontainer-feature` for a feature a devcontainer.json named.
    #[serde(default = "image_kind", skip_serializing_if = "is_image")]
    pub kind: ArtifactKind,
}

fn image_kind() -> ArtifactKind {
    ArtifactKind::Image
}

fn is_image(kind: &ArtifactKind) -> bool {
    *kind == ArtifactKind::Image
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlatformManifest {
    pub platform: String,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// A file pinned to its sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Where the bytes are fetched from (`inline:` when the lock holds them).
    pub url: String,
    pub sha256: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub file_name: String,
    pub media_type: String,
    /// How the digest was established: `pinned`, `sidecar`, `checksumLink`, `registry`,
    /// `downloaded` (the upstream publishes none, so `bundle lock` fetched and hashed it).
    pub verified_by: String,
    /// Extra annotations for the artifact manifest (dependencies, product version, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Small generated content (AMI descriptors) carried in the lock itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

impl LockedFile {
    pub fn repository(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

impl Lock {
    pub fn new(manifest_digest: Digest) -> Self {
        Lock { version: LOCK_VERSION, manifest_digest, images: Vec::new(), files: Vec::new(), package_locks: Vec::new(), devcontainers: Vec::new() }
    }

    /// Sorts entries so the same resolution always prints the same text.
    pub fn normalize(&mut self) {
        self.images.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        // Two devcontainers may name the same image or feature.
        self.images.dedup_by(|a, b| a.name == b.name && a.tag == b.tag && a.digest == b.digest);
        self.devcontainers.sort_by(|a, b| a.path.cmp(&b.path));
        self.devcontainers.dedup();
        self.files.sort_by(|a, b| {
            (a.kind, &a.name, &a.version, &a.platform).cmp(&(b.kind, &b.name, &b.version, &b.platform))
        });
        self.files.dedup_by(|a, b| a.repository() == b.repository() && a.version == b.version && a.platform == b.platform);
        self.package_locks.sort_by(|a, b| a.path.cmp(&b.path));
        self.package_locks.dedup();
    }

    pub fn to_text(&self) -> String {
        let body = toml::to_string_pretty(self).expect("a lock serializes");
        format!("# airlock lock: written by `airlock bundle lock`; commit it, do not edit it.\n{body}")
    }

    pub fn load(path: &Path) -> Result<Self, LockError> {
        let text = fs::read_to_string(path).map_err(|source| LockError::Read { path: path.to_path_buf(), source })?;
        let version = toml::from_str::<toml::Value>(&text)
            .ok()
            .and_then(|v| v.get("version").and_then(|v| v.as_integer()))
            .unwrap_or(0);
        if version != i64::from(LOCK_VERSION) {
            return Err(LockError::Version { path: path.to_path_buf(), found: version as u32 });
        }
        toml::from_str(&text).map_err(|e| LockError::Parse { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Refuses a lock made from other manifest bytes.
    pub fn check_matches(&self, lock_path: &Path, manifest_path: &Path, manifest_digest: Digest) -> Result<(), LockError> {
        if self.manifest_digest != manifest_digest {
            return Err(LockError::Stale { path: lock_path.to_path_buf(), manifest: manifest_path.to_path_buf() });
        }
        Ok(())
    }

    /// Refuses a lock whose package lock files changed since (each is read and hashed).
    pub fn check_package_locks(&self, lock_path: &Path, manifest_path: &Path, manifest: &crate::offline_manifest::OfflineManifest) -> Result<(), LockError> {
        for locked in &self.package_locks {
            let path = manifest.package_lock_path(&locked.path);
            let bytes = fs::read(&path).map_err(|source| LockError::ReadPackageLock { path: path.clone(), source })?;
            if Digest::of(&bytes) != locked.sha256 {
                return Err(LockError::StalePackageLock {
                    path: lock_path.to_path_buf(),
                    lock_file: path,
                    manifest: manifest_path.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    /// Refuses a lock whose devcontainer.json files changed since (relative paths resolve
    /// against `base_dir`, the manifest's folder).
    pub fn check_devcontainers(&self, lock_path: &Path, base_dir: &Path) -> Result<(), LockError> {
        for locked in &self.devcontainers {
            let path = base_dir.join(&locked.path);
            let bytes = fs::read(&path).map_err(|source| LockError::ReadDevcontainer { path: path.clone(), source })?;
            if Digest::of(&bytes) != locked.sha256 {
                return Err(LockError::StaleDevcontainer { path: lock_path.to_path_buf(), devcontainer: path });
            }
        }
        Ok(())
    }

    /// Writes atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let err = |source| LockError::Write { path: path.to_path_buf(), source };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp = tempfile::Builder::new().prefix(".airlock-lock-").tempfile_in(&dir).map_err(err)?;
        std::io::Write::write_all(&mut temp, self.to_text().as_bytes()).map_err(err)?;
        temp.as_file().sync_all().map_err(err)?;
        temp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// `M.toml` → `M.lock`, beside it.
pub fn default_lock_path(manifest: &Path) -> PathBuf {
    manifest.with_extension("lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_round_trips_through_its_text_and_sorts_stably() {
        let d = Digest::of(b"x");
        let file = |name: &str| LockedFile {
            kind: ArtifactKind::ReleaseFile,
            name: name.into(),
            version: "1".into(),
            platform: None,
            url: "https://example.test/x".into(),
            sha256: d,
            size: Some(1),
            file_name: "x".into(),
            media_type: "application/octet-stream".into(),
            verified_by: "pinned".into(),
            annotations: BTreeMap::new(),
            inline: None,
        };
        let mut lock = Lock::new(d);
        lock.files = vec![file("b"), file("a"), file("a")];
        lock.normalize();
        assert_eq!(lock.files.len(), 2);
        let text = lock.to_text();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lock");
        lock.save(&path).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), lock);
        assert!(text.find("name = \"a\"").unwrap() < text.find("name = \"b\"").unwrap(), "{text}");
        let stale = lock.check_matches(&path, Path::new("m.toml"), Digest::of(b"y")).unwrap_err().to_string();
        assert!(stale.contains("bundle lock"), "{stale}");
    }
}
