//! Bundle format v1: `airlock-bundle.json`, the signed description of a bundle.
//!
//! A bundle is a zstd-compressed ustar stream whose entries are, in this order:
//! `airlock-bundle.json`, its embedded signatures (`airlock-bundle.json.minisig`, then
//! `airlock-bundle.json.2.minisig`, …), `oci-layout`, `index.json`, then every blob as
//! `blobs/sha256/<hex>` sorted by digest. Every byte after the signatures is named with its
//! digest and size in the signed manifest, so nothing unsigned is ever read as content.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactKind;
use airlock_oci::Digest;

pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_ENTRY: &str = "airlock-bundle.json";
pub const FIRST_SIGNATURE_ENTRY: &str = "airlock-bundle.json.minisig";
pub const OCI_LAYOUT_ENTRY: &str = "oci-layout";
pub const INDEX_ENTRY: &str = "index.json";
pub const BUNDLE_SUFFIX: &str = ".airlock.tar.zst";
/// Embedded signatures beyond this number are refused (threshold signing needs a few).
pub const MAX_EMBEDDED_SIGNATURES: usize = 16;

/// Entry name of the `n`th embedded signature (1-based).
pub fn signature_entry(n: usize) -> String {
    if n == 1 {
        FIRST_SIGNATURE_ENTRY.to_string()
    } else {
        format!("{MANIFEST_ENTRY}.{n}.minisig")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleManifest {
    pub format_version: u32,
    pub bundle_id: String,
    pub name: String,
    pub channel: String,
    pub sequence: u64,
    /// RFC 3339, UTC, whole seconds.
    pub created: String,
    pub expires: String,
    /// Set on delta bundles: the bundle whose blobs this one leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseBundle>,
    pub tool: Tool,
    pub layout: Layout,
    pub artifacts: Vec<Artifact>,
    /// Every blob this bundle carries, sorted by digest.
    pub blobs: Vec<BlobRecord>,
    /// Blobs the artifacts need that the base bundle carried (delta bundles only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_blobs: Vec<BlobRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseBundle {
    pub bundle_id: String,
    pub channel: String,
    pub sequence: u64,
    pub manifest_digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Layout {
    pub oci_layout: FileRecord,
    pub index: FileRecord,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifact {
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Where the content came from, as the offline manifest named it.
    pub upstream: String,
    /// Repository and tag under which the mirror serves it.
    pub repository: String,
    pub tag: String,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    /// Present for manifests and indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("airlock-bundle.json is not valid JSON: {0}")]
    Json(String),
    #[error("this bundle uses format version {found}; this airlock reads version {FORMAT_VERSION} (upgrade airlock on this side)")]
    UnsupportedVersion { found: u64 },
    #[error("airlock-bundle.json is inconsistent: {0}")]
    Inconsistent(String),
}

impl BundleManifest {
    /// Parses and checks a manifest. The version is read first so a newer format gets a
    /// clear message rather than a complaint about some field.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))?;
        let version = value.get("formatVersion").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(FormatError::UnsupportedVersion { found: version });
        }
        let manifest: BundleManifest =
            serde_json::from_value(value).map_err(|e| FormatError::Json(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        bytes.push(b'\n');
        bytes
    }

    pub fn created_time(&self) -> Result<SystemTime, FormatError> {
        humantime::parse_rfc3339(&self.created)
            .map_err(|e| FormatError::Inconsistent(format!("created `{}`: {e}", self.created)))
    }

    pub fn expires_time(&self) -> Result<SystemTime, FormatError> {
        humantime::parse_rfc3339(&self.expires)
            .map_err(|e| FormatError::Inconsistent(format!("expires `{}`: {e}", self.expires)))
    }

    /// Cannot overflow for a parsed manifest: `check` refuses sizes that add up past u64.
    pub fn total_blob_bytes(&self) -> u64 {
        self.blobs.iter().fold(0u64, |total, b| total.saturating_add(b.size))
    }

    fn check(&self) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Inconsistent(m));
        if self.expires_time()? <= self.created_time()? {
            return bad("expires is not after created".into());
        }
        if !self.blobs.windows(2).all(|w| w[0].digest < w[1].digest) {
            return bad("blobs are not sorted by digest or repeat one".into());
        }
        // Sizes are signed but not trusted: every sum taken of them later must fit in a u64.
        let mut total = 0u64;
        for blob in self.blobs.iter().chain(&self.base_blobs) {
            let Some(sum) = total.checked_add(blob.size) else {
                return bad(format!(
                    "the declared blob sizes add up to more than {} bytes (blob {} declares {}): no real bundle is that large",
                    u64::MAX,
                    blob.digest,
                    blob.size
                ));
            };
            total = sum;
        }
        let carried: BTreeSet<Digest> = self.blobs.iter().map(|b| b.digest).collect();
        let mut known = carried.clone();
        for blob in &self.base_blobs {
            if !known.insert(blob.digest) {
                return bad(format!("blob {} is listed as carried and as in the base", blob.digest));
            }
        }
        if !self.base_blobs.is_empty() && self.base.is_none() {
            return bad("baseBlobs are listed but no base bundle is named".into());
        }
        let mut names = BTreeSet::new();
        for artifact in &self.artifacts {
            if !known.contains(&artifact.digest) {
                return bad(format!(
                    "artifact {} {} names manifest {} which is not among the blobs",
                    artifact.kind, artifact.name, artifact.digest
                ));
            }
            if !names.insert((&artifact.repository, &artifact.tag)) {
                return bad(format!("{}:{} is listed twice", artifact.repository, artifact.tag));
            }
        }
        Ok(())
    }
}

/// Formats a time as the manifest stores it.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
