//! The mirror's metadata, in one sled tree behind this module. Keys are prefixed by what
//! they describe; an import's changes go in as one atomic batch, so clients see a bundle's
//! content all at once or not at all.
//!
//! | prefix | key                       | value                       |
//! |--------|---------------------------|-----------------------------|
//! | `m/`   | manifest digest           | [`ManifestRecord`]          |
//! | `t/`   | repository \0 tag         | manifest digest             |
//! | `r/`   | repository \0 digest      | (manifest is in repository) |
//! | `b/`   | blob digest               | size (visible blobs)        |
//! | `s/`   | subject \0 referrer       | (referrers index)           |
//! | `a/`   | kind \0 repository \0 tag | [`ArtifactRecord`]          |
//! | `c/`   | channel                   | [`Owner`]: highest sequence imported and its bundle (a bare number before) |
//! | `o/`   | repository \0 tag         | [`Owner`]: channel, sequence and bundle that set the tag |
//! | `i/`   | bundle id                 | [`HistoryRecord`] of import |
//! | `h/`   | id (big endian)           | [`HistoryRecord`]           |
//! | `k/`   | sha256 of a push token    | [`TokenRecord`]             |
//! | `p/`   | `trust-anchor`            | [`AnchorRecord`]: the site's keys and threshold |
//! | `u/`   | blob digest \0 repository | (blob pushed or mounted there) |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_bundle::{Artifact, ArtifactKind};
use airlock_oci::Digest;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::blobs::BlobStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the mirror data folder {0} is in use by another airlock process (a running `airlock mirror serve`?)")]
    Locked(PathBuf),
    #[error("cannot open the mirror data folder {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot close the mirror data folder {path}: {message}")]
    Close { path: PathBuf, message: String },
    #[error("mirror metadata: {0}")]
    Db(#[from] sled::Error),
    #[error("mirror content store: {0}")]
    Io(#[from] std::io::Error),
    #[error("mirror metadata record `{key}` is damaged: {message}")]
    Corrupt { key: String, message: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRecord {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// Every blob and child manifest it references (for gc).
    #[serde(default)]
    pub children: Vec<Digest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRecord {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub bundle_id: String,
    pub imported: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    pub id: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Which import a channel's head or a tag belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub channel: String,
    pub sequence: u64,
    /// Unknown for channel heads written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
}

/// The site's trust anchor as the server last pinned it from its configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnchorRecord {
    #[serde(flatten)]
    pub requirement: crate::anchor::KeyRequirement,
    pub pinned: String,
}

/// A channel head as stored: a bare sequence in stores written before owners were recorded.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredHead {
    Owner(Owner),
    Sequence(u64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub name: String,
    pub created: String,
}

pub struct Store {
    pub blobs: BlobStore,
    data_dir: std::path::PathBuf,
    db: airlock_db::Db,
    meta: sled::Tree,
    /// One import (or gc) at a time: both read state and then change it.
    pub(crate) exclusive: std::sync::Mutex<()>,
    /// Commits one at a time: sled 0.34 can deadlock when a flush overlaps a batch from
    /// another thread (seen in the control plane under load).
    commits: std::sync::Mutex<()>,
    /// Counts commits, so what is derived from metadata can be cached until it changes.
    generation: std::sync::atomic::AtomicU64,
}

fn key(prefix: &str, parts: &[&str]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(part.as_bytes());
    }
    k
}

fn decode<T: DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Open { path: data_dir.to_path_buf(), message: e.to_string() })?;
        let db = airlock_db::open(&data_dir.join("metadata"), airlock_db::Profile::Compact).map_err(|e| match e {
            airlock_db::DbError::Locked(_) => StoreError::Locked(data_dir.to_path_buf()),
            other => StoreError::Open { path: data_dir.to_path_buf(), message: other.to_string() },
        })?;
        let meta = db.sled().open_tree("meta")?;
        let blobs = BlobStore::open(data_dir)?;
        Ok(Store { blobs, data_dir: data_dir.to_path_buf(), db, meta, exclusive: std::sync::Mutex::new(()), commits: std::sync::Mutex::new(()), generation: Default::default() })
    }

    /// Closes the metadata database and waits until the folder can be opened again: what
    /// a process that reopens the same folder (an offline import, then the server) must do
    /// instead of dropping the store. Every commit is already durable.
    pub fn close(self) -> Result<(), StoreError> {
        let Store { db, meta, data_dir, .. } = self;
        drop(meta);
        db.close().map_err(|e| StoreError::Close { path: data_dir, message: e.to_string() })
    }

    /// The data folder the store was opened in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.meta.get(k)? {
            Some(v) => Ok(Some(decode(k, &v)?)),
            None => Ok(None),
        }
    }

    fn scan(&self, prefix: Vec<u8>) -> impl Iterator<Item = Result<(Vec<u8>, sled::IVec), StoreError>> + '_ {
        let skip = prefix.len();
        self.meta
            .scan_prefix(prefix)
            .map(move |item| item.map(|(k, v)| (k[skip..].to_vec(), v)).map_err(StoreError::from))
    }

    pub fn manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        self.get(&key("m/", &[&digest.to_string()]))
    }

    pub fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StoreError> {
        self.get(&key("t/", &[repo, tag]))
    }

    pub fn repo_has_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.meta.contains_key(key("r/", &[repo, &digest.to_string()]))?)
    }

    /// Whether content was ever pushed or imported into the repository. Deleting its last
    /// manifest empties it without making it unknown: its tag list is then empty (200),
    /// not `NAME_UNKNOWN`, as registries answer. The `r/` scan covers stores written
    /// before the `n/` marker existed.
    pub fn repo_exists(&self, repo: &str) -> Result<bool, StoreError> {
        Ok(self.meta.contains_key(key("n/", &[repo]))? || self.scan(key("r/", &[repo, ""])).next().transpose()?.is_some())
    }

    /// Size of a blob clients may fetch, if it is one.
    pub fn visible_blob(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.get(&key("b/", &[&digest.to_string()]))
    }

    /// Tags of a repository, sorted.
    pub fn tags(&self, repo: &str) -> Result<Vec<String>, StoreError> {
        self.scan(key("t/", &[repo, ""]))
            .map(|item| item.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
            .collect()
    }

    /// Every repository holding at least one manifest, sorted.
    pub fn repositories(&self) -> Result<Vec<String>, StoreError> {
        let mut repos: Vec<String> = Vec::new();
        for item in self.scan(b"r/".to_vec()) {
            let (k, _) = item?;
            let repo = k.split(|&b| b == 0).next().unwrap_or_default();
            let repo = String::from_utf8_lossy(repo).into_owned();
            if repos.last() != Some(&repo) {
                repos.push(repo);
            }
        }
        Ok(repos)
    }

    pub fn referrers(&self, subject: &Digest) -> Result<Vec<Digest>, StoreError> {
        self.scan(key("s/", &[&subject.to_string(), ""]))
            .map(|item| {
                let (k, _) = item?;
                let text = String::from_utf8_lossy(&k).into_owned();
                text.parse().map_err(|_| StoreError::Corrupt { key: text, message: "not a digest".into() })
            })
            .collect()
    }

    pub fn artifacts(&self, kind: Option<ArtifactKind>) -> Result<Vec<ArtifactRecord>, StoreError> {
        let prefix = match kind {
            Some(kind) => key("a/", &[kind.as_str(), ""]),
            None => b"a/".to_vec(),
        };
        self.scan(prefix).map(|item| item.and_then(|(k, v)| decode(&k, &v))).collect()
    }

    pub fn channel_sequence(&self, channel: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.channel_head(channel)?.map(|head| head.sequence))
    }

    /// The highest sequence imported on a channel, and the bundle that brought it.
    pub fn channel_head(&self, channel: &str) -> Result<Option<Owner>, StoreError> {
        Ok(self.get::<StoredHead>(&key("c/", &[channel]))?.map(|head| match head {
            StoredHead::Owner(owner) => owner,
            StoredHead::Sequence(sequence) => Owner { channel: channel.to_string(), sequence, bundle_id: None },
        }))
    }

    /// The import that set a tag. Tags imported before owners were recorded are attributed
    /// through their artifact record to the import of its bundle; pushed tags have none.
    pub fn tag_owner(&self, kind: ArtifactKind, repo: &str, tag: &str) -> Result<Option<Owner>, StoreError> {
        if let Some(owner) = self.get(&key("o/", &[repo, tag]))? {
            return Ok(Some(owner));
        }
        let Some(artifact) = self.get::<ArtifactRecord>(&key("a/", &[kind.as_str(), repo, tag]))? else { return Ok(None) };
        let Some(import) = self.import_of(&artifact.bundle_id)? else { return Ok(None) };
        Ok(import.channel.zip(import.sequence).map(|(channel, sequence)| Owner { channel, sequence, bundle_id: Some(artifact.bundle_id) }))
    }

    pub fn trust_anchor(&self) -> Result<Option<AnchorRecord>, StoreError> {
        self.get(&key("p/", &["trust-anchor"]))
    }

    pub fn import_of(&self, bundle_id: &str) -> Result<Option<HistoryRecord>, StoreError> {
        self.get(&key("i/", &[bundle_id]))
    }

    pub fn history(&self) -> Result<Vec<HistoryRecord>, StoreError> {
        self.scan(b"h/".to_vec()).map(|item| item.and_then(|(k, v)| decode(&k, &v))).collect()
    }

    /// All manifests and visible blobs (for gc and verify).
    pub fn all_manifests(&self) -> Result<Vec<(Digest, ManifestRecord)>, StoreError> {
        self.scan_by_digest(b"m/")
    }

    pub fn visible_blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        self.scan_by_digest(b"b/")
    }

    /// Every record under a prefix whose key rest is a digest.
    fn scan_by_digest<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Digest, T)>, StoreError> {
        self.scan(prefix.to_vec())
            .map(|item| {
                let (k, v) = item?;
                let text = String::from_utf8_lossy(&k).into_owned();
                let digest = text.parse().map_err(|_| StoreError::Corrupt { key: text.clone(), message: "not a digest".into() })?;
                Ok((digest, decode(&k, &v)?))
            })
            .collect()
    }

    /// One artifact a signed bundle put in the repository, if any: such repositories are
    /// read-only to push.
    pub fn imported_into(&self, repo: &str) -> Result<Option<ArtifactRecord>, StoreError> {
        for kind in ArtifactKind::ALL {
            if let Some(item) = self.scan(key("a/", &[kind.as_str(), repo, ""])).next() {
                let (k, v) = item?;
                return Ok(Some(decode(&k, &v)?));
            }
        }
        Ok(None)
    }

    /// Whether `repo` may serve `digest` as a blob: a push put (or mounted) it there, it is a
    /// manifest of the repository, or a manifest of the repository references it. Pulls by
    /// digest are scoped this way, as the reference registry scopes them, so a blob pushed
    /// to one repository cannot be read through another's name.
    pub fn repo_references_blob(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        let d = digest.to_string();
        if self.meta.contains_key(key("u/", &[&d, repo]))? || self.repo_has_manifest(repo, digest)? {
            return Ok(true);
        }
        // A repository holds few manifests; each lists what it references (`children`).
        for item in self.scan(key("r/", &[repo, ""])) {
            let (manifest, _) = item?;
            let text = String::from_utf8_lossy(&manifest).into_owned();
            let manifest: Digest = text.parse().map_err(|_| StoreError::Corrupt { key: text, message: "not a digest".into() })?;
            if self.manifest(&manifest)?.is_some_and(|record| record.children.contains(digest)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Repositories a blob was pushed or mounted into (imports record none), sorted.
    pub fn blob_links(&self, digest: &Digest) -> Result<Vec<String>, StoreError> {
        self.scan(key("u/", &[&digest.to_string(), ""]))
            .map(|item| item.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
            .collect()
    }

    pub fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.get(&key("k/", &[token_hash]))
    }

    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.sled().generate_id()?)
    }

    /// Applies a change set atomically and flushes it to disk before returning.
    pub fn commit(&self, changes: Changes) -> Result<(), StoreError> {
        let _one_at_a_time = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        self.meta.apply_batch(changes.batch)?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        self.db.sled().flush()?;
        Ok(())
    }

    /// Changes whenever a commit lands. Read it before reading the metadata a cached
    /// answer is derived from: a commit in between then only makes the cache miss.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Appends one history record on its own (refusals, overrides, no-ops).
    pub fn record(&self, record: &HistoryRecord) -> Result<(), StoreError> {
        let mut changes = Changes::default();
        changes.history(record);
        self.commit(changes)
    }
}

/// A set of metadata changes applied together by [`Store::commit`].
#[derive(Default)]
pub struct Changes {
    batch: sled::Batch,
}

impl Changes {
    pub fn manifest(&mut self, repo: &str, digest: &Digest, record: &ManifestRecord) {
        let d = digest.to_string();
        self.batch.insert(key("m/", &[&d]), encode(record));
        self.batch.insert(key("r/", &[repo, &d]), Vec::<u8>::new());
        // Outlives the repository's manifests; see `Store::repo_exists`.
        self.batch.insert(key("n/", &[repo]), Vec::<u8>::new());
        if let Some(subject) = &record.subject {
            self.batch.insert(key("s/", &[&subject.to_string(), &d]), Vec::<u8>::new());
        }
    }

    pub fn tag(&mut self, repo: &str, tag: &str, digest: &Digest) {
        self.batch.insert(key("t/", &[repo, tag]), encode(&digest.to_string()));
    }

    pub fn untag(&mut self, repo: &str, tag: &str) {
        self.batch.remove(key("t/", &[repo, tag]));
    }

    /// Takes a manifest out of a repository (its bytes stay until gc).
    pub fn remove_manifest_from_repo(&mut self, repo: &str, digest: &Digest, subject: Option<&Digest>) {
        self.batch.remove(key("r/", &[repo, &digest.to_string()]));
        if let Some(subject) = subject {
            self.batch.remove(key("s/", &[&subject.to_string(), &digest.to_string()]));
        }
    }

    pub fn blob(&mut self, digest: &Digest, size: u64) {
        self.batch.insert(key("b/", &[&digest.to_string()]), encode(&size));
    }

    pub fn remove_blob(&mut self, digest: &Digest) {
        self.batch.remove(key("b/", &[&digest.to_string()]));
    }

    /// Records that a push put the blob in the repository (see `Store::blob_links`).
    pub fn link_blob(&mut self, digest: &Digest, repo: &str) {
        self.batch.insert(key("u/", &[&digest.to_string(), repo]), Vec::<u8>::new());
    }

    pub fn unlink_blob(&mut self, digest: &Digest, repo: &str) {
        self.batch.remove(key("u/", &[&digest.to_string(), repo]));
    }

    pub fn remove_manifest_record(&mut self, digest: &Digest) {
        self.batch.remove(key("m/", &[&digest.to_string()]));
    }

    pub fn artifact(&mut self, record: &ArtifactRecord) {
        let a = &record.artifact;
        self.batch.insert(key("a/", &[a.kind.as_str(), &a.repository, &a.tag]), encode(record));
    }

    pub fn channel(&mut self, head: &Owner) {
        self.batch.insert(key("c/", &[&head.channel]), encode(head));
    }

    pub fn tag_owner(&mut self, repo: &str, tag: &str, owner: &Owner) {
        self.batch.insert(key("o/", &[repo, tag]), encode(owner));
    }

    pub fn trust_anchor(&mut self, anchor: &AnchorRecord) {
        self.batch.insert(key("p/", &["trust-anchor"]), encode(anchor));
    }

    pub fn import(&mut self, bundle_id: &str, record: &HistoryRecord) {
        self.batch.insert(key("i/", &[bundle_id]), encode(record));
    }

    pub fn history(&mut self, record: &HistoryRecord) {
        self.batch.insert(key("h/", &[]).into_iter().chain(record.id.to_be_bytes()).collect::<Vec<u8>>(), encode(record));
    }

    pub fn token(&mut self, token_hash: &str, record: &TokenRecord) {
        self.batch.insert(key("k/", &[token_hash]), encode(record));
    }
}
