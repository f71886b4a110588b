//! OCI media types, descriptors, and the manifest and index documents that link content.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MEDIA_TYPE_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const EMPTY_JSON: &[u8] = b"{}";
pub const OCI_LAYOUT_FILE: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";

/// Manifests and indexes are parsed into memory; anything bigger than this is not one.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

pub fn is_manifest_media_type(media_type: &str) -> bool {
    is_index_media_type(media_type)
        || media_type == MEDIA_TYPE_IMAGE_MANIFEST
        || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_IMAGE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// `os/architecture[/variant]` of an index entry, when it names a platform.
    pub fn platform_name(&self) -> Option<String> {
        let platform = self.platform.as_ref()?;
        let field = |k: &str| platform.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        let mut name = format!("{}/{}", field("os"), field("architecture"));
        if !field("variant").is_empty() {
            name.push('/');
            name.push_str(field("variant"));
        }
        Some(name)
    }
}

/// `linux/arm64` matches `linux/arm64/v8`; a variant asked for must match exactly.
pub fn platform_matches(wanted: &str, have: &str) -> bool {
    wanted == have || (wanted.matches('/').count() == 1 && have.starts_with(&format!("{wanted}/")))
}

/// The fields of a manifest or index that point at other content.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestLinks {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<SubjectRef>,
}

/// A manifest's `subject`: only its digest matters (it indexes referrers). Read leniently,
/// since some clients send it without `mediaType` or `size`, and the distribution spec asks
/// registries to accept a subject whatever it points at.
#[derive(Debug, Deserialize)]
pub struct SubjectRef {
    pub digest: Digest,
}

impl ManifestLinks {
    /// Every descriptor this manifest needs, in document order (the subject is a reference
    /// to other content, not part of this artifact, and is left out).
    pub fn children(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers).chain(&self.manifests)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_match_with_or_without_variant() {
        assert!(platform_matches("linux/arm64", "linux/arm64/v8"));
        assert!(platform_matches("linux/arm64/v8", "linux/arm64/v8"));
        assert!(!platform_matches("linux/arm", "linux/arm64"));
        assert!(!platform_matches("linux/arm/v7", "linux/arm/v6"));
    }

    #[test]
    fn platform_names_include_the_variant_when_there_is_one() {
        let entry = |platform: serde_json::Value| -> Descriptor {
            serde_json::from_value(serde_json::json!({
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": Digest::of(b"m"), "size": 1, "platform": platform,
            }))
            .unwrap()
        };
        assert_eq!(entry(serde_json::json!({"os": "linux", "architecture": "amd64"})).platform_name().unwrap(), "linux/amd64");
        let arm = entry(serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}));
        assert_eq!(arm.platform_name().unwrap(), "linux/arm64/v8");
    }
}
