//! OCI image layouts on disk: finding a manifest in `index.json` and collecting every blob
//! it needs, for packing.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_bundle::annotation;
use airlock_oci::{is_manifest_media_type, Descriptor, Digest, ImageIndex, ManifestLinks, MAX_MANIFEST_SIZE};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{layout}: cannot read {file}: {source}")]
    Read { layout: PathBuf, file: String, source: std::io::Error },
    #[error("{layout}: {file} is not valid: {message}")]
    Invalid { layout: PathBuf, file: String, message: String },
    #[error("{layout}: no manifest is named `{reference}` in index.json (names found: {found})")]
    UnknownReference { layout: PathBuf, reference: String, found: String },
    #[error("{layout}: index.json lists {count} manifests; name one in the source as `oci-layout:PATH:REF`")]
    Ambiguous { layout: PathBuf, count: usize },
    #[error("{layout}: blob {digest} (referenced by {parent}) is missing")]
    MissingBlob { layout: PathBuf, digest: Digest, parent: String },
    #[error("{layout}: blob {digest} has {actual} bytes but {parent} says {expected}")]
    SizeMismatch { layout: PathBuf, digest: Digest, parent: String, expected: u64, actual: u64 },
    #[error("{layout}: blob {digest} is damaged: its content hashes to {actual}")]
    DigestMismatch { layout: PathBuf, digest: Digest, actual: Digest },
}

/// Where the bytes of one blob come from when a bundle is packed.
#[derive(Clone, Debug)]
pub enum BlobSource {
    /// A file whose content must hash to the blob digest; checked while it is packed.
    File(PathBuf),
    /// Bytes already in memory and already checked.
    Bytes(Arc<Vec<u8>>),
}

#[derive(Clone, Debug)]
pub struct Blob {
    pub size: u64,
    pub source: BlobSource,
    /// Set for manifests and indexes, so readers know which blobs to parse.
    pub media_type: Option<String>,
}

/// Every blob a bundle will carry, sorted by digest.
pub type BlobSet = BTreeMap<Digest, Blob>;

pub struct OciLayout {
    root: PathBuf,
    index: ImageIndex,
}

impl OciLayout {
    pub fn open(root: &Path) -> Result<Self, LayoutError> {
        let read_err = |file: &str| {
            let file = file.to_string();
            move |source| LayoutError::Read { layout: root.to_path_buf(), file, source }
        };
        let invalid = |file: &str, message: String| LayoutError::Invalid {
            layout: root.to_path_buf(),
            file: file.to_string(),
            message,
        };
        let marker = fs::read(root.join("oci-layout")).map_err(read_err("oci-layout"))?;
        let marker: serde_json::Value =
            serde_json::from_slice(&marker).map_err(|e| invalid("oci-layout", e.to_string()))?;
        if marker.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(invalid("oci-layout", "imageLayoutVersion is not 1.0.0".into()));
        }
        let index = fs::read(root.join("index.json")).map_err(read_err("index.json"))?;
        let index: ImageIndex =
            serde_json::from_slice(&index).map_err(|e| invalid("index.json", e.to_string()))?;
        Ok(OciLayout { root: root.to_path_buf(), index })
    }

    /// Finds the top-level descriptor for a ref name, a digest, or the only entry.
    pub fn resolve(&self, reference: Option<&str>) -> Result<&Descriptor, LayoutError> {
        let manifests = &self.index.manifests;
        let Some(reference) = reference else {
            return match manifests.as_slice() {
                [only] => Ok(only),
                _ => Err(LayoutError::Ambiguous { layout: self.root.clone(), count: manifests.len() }),
            };
        };
        let by_digest = reference.parse::<Digest>().ok();
        manifests
            .iter()
            .find(|d| {
                Some(d.digest) == by_digest
                    || d.annotations.get(annotation::REF_NAME).map(String::as_str)
                        == Some(reference)
            })
            .ok_or_else(|| LayoutError::UnknownReference {
                layout: self.root.clone(),
                reference: reference.to_string(),
                found: manifests
                    .iter()
                    .filter_map(|d| d.annotations.get(annotation::REF_NAME))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.layout_path())
    }

    /// Adds `root` and everything it references to `blobs`. Manifests are read and checked
    /// now (they are small and must be parsed); other blobs are size-checked now and
    /// hash-checked while they are packed, so large layers are read once.
    pub fn collect(&self, root: &Descriptor, blobs: &mut BlobSet) -> Result<(), LayoutError> {
        let mut stack = vec![(root.clone(), "index.json".to_string())];
        let mut visited = HashSet::new();
        while let Some((desc, parent)) = stack.pop() {
            if !visited.insert(desc.digest) {
                continue;
            }
            let path = self.blob_path(&desc.digest);
            let meta = fs::metadata(&path).map_err(|_| LayoutError::MissingBlob {
                layout: self.root.clone(),
                digest: desc.digest,
                parent: parent.clone(),
            })?;
            if !meta.is_file() || meta.len() != desc.size {
                return Err(LayoutError::SizeMismatch {
                    layout: self.root.clone(),
                    digest: desc.digest,
                    parent,
                    expected: desc.size,
                    actual: meta.len(),
                });
            }
            if !is_manifest_media_type(&desc.media_type) {
                blobs.entry(desc.digest).or_insert(Blob {
                    size: desc.size,
                    source: BlobSource::File(path),
                    media_type: None,
                });
                continue;
            }
            let bytes = self.read_manifest(&desc)?;
            let links: ManifestLinks = serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                layout: self.root.clone(),
                file: desc.digest.layout_path(),
                message: e.to_string(),
            })?;
            let this = format!("manifest {}", desc.digest);
            for child in links.children() {
                stack.push((child.clone(), this.clone()));
            }
            blobs.insert(desc.digest, Blob {
                size: desc.size,
                source: BlobSource::Bytes(Arc::new(bytes)),
                media_type: Some(desc.media_type.clone()),
            });
        }
        Ok(())
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(&desc.digest);
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .and_then(|f| f.take(MAX_MANIFEST_SIZE + 1).read_to_end(&mut bytes))
            .map_err(|source| LayoutError::Read {
                layout: self.root.clone(),
                file: desc.digest.layout_path(),
                source,
            })?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(LayoutError::DigestMismatch { layout: self.root.clone(), digest: desc.digest, actual });
        }
        Ok(bytes)
    }
}
