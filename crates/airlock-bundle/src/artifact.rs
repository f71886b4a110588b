//! Artifact kinds and how each becomes an OCI object.
//!
//! Images stay image manifests. Every other kind is an OCI artifact manifest whose
//! `artifactType` is `application/vnd.airlock.<kind>.v1+json`, with one layer holding the
//! file and annotations that name it, so one store and one integrity rule cover everything.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use airlock_oci::{Descriptor, Digest, EMPTY_JSON, MEDIA_TYPE_EMPTY, MEDIA_TYPE_IMAGE_MANIFEST};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    Image,
    VscodeServer,
    VscodeExtension,
    JetbrainsIde,
    ReleaseFile,
    AmiDescriptor,
    /// A Python distribution file (wheel or sdist), served under the simple index API.
    PythonPackage,
    /// An npm package tarball, served under the npm registry API.
    NpmPackage,
    /// code-server, the browser build of VS Code: its release archive (docs/ide.md).
    CodeServer,
    /// A Rust `.crate`, served under the Cargo sparse index protocol.
    CargoCrate,
    /// A devcontainer feature: the upstream's own OCI artifact (config
    /// `application/vnd.devcontainers`, one `…layer.v1+tar` layer), served as the registry had it.
    DevcontainerFeature,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 11] = [
        ArtifactKind::Image,
        ArtifactKind::VscodeServer,
        ArtifactKind::VscodeExtension,
        ArtifactKind::JetbrainsIde,
        ArtifactKind::ReleaseFile,
        ArtifactKind::AmiDescriptor,
        ArtifactKind::PythonPackage,
        ArtifactKind::NpmPackage,
        ArtifactKind::CodeServer,
        ArtifactKind::CargoCrate,
        ArtifactKind::DevcontainerFeature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Image => "image",
            ArtifactKind::VscodeServer => "vscode-server",
            ArtifactKind::VscodeExtension => "vscode-extension",
            ArtifactKind::JetbrainsIde => "jetbrains-ide",
            ArtifactKind::ReleaseFile => "release-file",
            ArtifactKind::AmiDescriptor => "ami-descriptor",
            ArtifactKind::PythonPackage => "python-package",
            ArtifactKind::NpmPackage => "npm-package",
            ArtifactKind::CodeServer => "code-server",
            ArtifactKind::CargoCrate => "cargo-crate",
            ArtifactKind::DevcontainerFeature => "devcontainer-feature",
        }
    }

    /// The `artifactType` of the kinds airlock wraps as artifacts; images and devcontainer
    /// features are carried as their upstream manifests, with their own media types.
    pub fn artifact_type(self) -> Option<String> {
        (!matches!(self, ArtifactKind::Image | ArtifactKind::DevcontainerFeature))
            .then(|| format!("application/vnd.airlock.{}.v1+json", self))
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of [`ArtifactKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown artifact kind `{value}` (known: {known})")]
pub struct UnknownKind {
    pub value: String,
    pub known: String,
}

impl std::str::FromStr for ArtifactKind {
    type Err = UnknownKind;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        ArtifactKind::ALL.into_iter().find(|k| k.as_str() == value).ok_or_else(|| {
            let known: Vec<_> = ArtifactKind::ALL.iter().map(|k| k.as_str()).collect();
            UnknownKind { value: value.to_string(), known: known.join(", ") }
        })
    }
}

/// Annotation keys airlock puts on every manifest it lists in a bundle's `index.json`.
pub mod annotation {
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const KIND: &str = "vnd.airlock.kind";
    pub const NAME: &str = "vnd.airlock.name";
    pub const PLATFORM: &str = "vnd.airlock.platform";
    pub const UPSTREAM: &str = "vnd.airlock.upstream";
    pub const REPOSITORY: &str = "vnd.airlock.repository";
    pub const TAG: &str = "vnd.airlock.tag";
}

/// A tag for a versioned file: the version plus platform, with characters OCI tags do not
/// allow (such as `+`) replaced by `_`. The exact version stays in the annotations.
pub fn tag_for(version: &str, platform: Option<&str>) -> String {
    let raw = match platform {
        Some(p) => format!("{version}-{p}"),
        None => version.to_string(),
    };
    let mut tag: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect();
    if tag.starts_with(['.', '-']) {
        tag.insert(0, '_');
    }
    tag.truncate(128);
    tag
}

/// Media type of a file layer, from its name, unless the manifest gave one.
pub fn guess_media_type(file_name: &str) -> &'static str {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        "application/gzip"
    } else if lower.ends_with(".zip") || lower.ends_with(".vsix") {
        "application/zip"
    } else if lower.ends_with(".json") {
        "application/json"
    } else if lower.ends_with(".tar") {
        "application/x-tar"
    } else if lower.ends_with(".tar.zst") {
        "application/zstd"
    } else {
        "application/octet-stream"
    }
}

/// Builds the artifact manifest for one file: empty config, one layer, naming annotations.
pub fn file_artifact_manifest(
    kind: ArtifactKind,
    layer: Descriptor,
    annotations: BTreeMap<String, String>,
) -> Vec<u8> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": kind.artifact_type(),
        "config": {
            "mediaType": MEDIA_TYPE_EMPTY,
            "digest": Digest::of(EMPTY_JSON),
            "size": EMPTY_JSON.len(),
            "data": "e30=",
        },
        "layers": [layer],
        "annotations": annotations,
    });
    serde_json::to_vec(&manifest).expect("serializing a JSON value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_valid_and_keep_their_meaning() {
        assert_eq!(tag_for("0.1.0", Some("linux-x64")), "0.1.0-linux-x64");
        assert_eq!(tag_for("2024.3+build.7", None), "2024.3_build.7");
        assert!(airlock_oci::is_valid_tag(&tag_for("-x", None)));
    }

    #[test]
    fn kinds_round_trip_and_unknown_kinds_list_the_known_ones() {
        for kind in ArtifactKind::ALL {
            assert_eq!(kind.as_str().parse::<ArtifactKind>().unwrap(), kind);
        }
        let err = "dvd".parse::<ArtifactKind>().unwrap_err().to_string();
        assert!(err.contains("vscode-extension"), "{err}");
        assert_eq!(
            ArtifactKind::VscodeServer.artifact_type().unwrap(),
            "application/vnd.airlock.vscode-server.v1+json"
        );
        assert!(ArtifactKind::Image.artifact_type().is_none());
    }
}
