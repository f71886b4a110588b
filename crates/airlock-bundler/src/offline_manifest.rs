//! The offline manifest: a TOML file naming everything a bundle must carry.
//!
//! The schema only grows by optional fields and new tables, so manifests written by scripts
//! outside the project keep working. Unknown keys are refused, so a typo is an error instead
//! of a silently missing artifact. Relative paths resolve against the manifest's folder.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use airlock_bundle::ArtifactKind;
use airlock_oci::{is_valid_tag, validate_repository};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the offline manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid offline manifest: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {what}: {message}")]
    Invalid { path: PathBuf, what: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineManifest {
    pub bundle: BundleSection,
    #[serde(default, rename = "image")]
    pub images: Vec<ImageEntry>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub vscode_server: Vec<VscodeServerSource>,
    #[serde(default)]
    pub openvsx: Vec<OpenVsxSource>,
    #[serde(default)]
    pub jetbrains: Vec<JetBrainsSource>,
    #[serde(default)]
    pub https: Vec<HttpsSource>,
    #[serde(default)]
    pub ami: Option<AmiSource>,
    #[serde(default)]
    pub python: Vec<PythonSource>,
    #[serde(default)]
    pub npm: Vec<NpmSource>,
    #[serde(default)]
    pub cargo: Vec<CargoSource>,
    /// `[[devcontainer]]`: a devcontainer.json whose image and features (with their
    /// `dependsOn`, transitively) are locked and carried. `bundle lock --devcontainer` adds more.
    #[serde(default, rename = "devcontainer")]
    pub devcontainers: Vec<DevcontainerEntry>,
    /// The manifest's folder: relative paths (layouts, files, package locks) resolve here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSection {
    pub name: String,
    pub channel: String,
    /// Default for `--sequence`.
    pub sequence: Option<u64>,
    /// Default for `--expires`, as a duration such as `90d`.
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// Repository the image has in the mirror, e.g. `devcontainers/base`.
    pub name: String,
    pub tag: String,
    /// `oci-layout:PATH[:REF]`, where REF is a `org.opencontainers.image.ref.name` or a digest,
    /// or `registry:HOST/REPOSITORY(:TAG|@DIGEST)`.
    pub source: String,
    pub platform: Option<String>,
    /// Registry sources: the platforms (`os/arch[/variant]`) to keep from a multi-arch index;
    /// empty keeps the index whole.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Registry sources: where to connect instead of the host in `source` (a site proxy or
    /// pull-through cache); `http://` means plain HTTP.
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevcontainerEntry {
    /// The devcontainer.json, relative to the manifest's folder.
    pub path: String,
    /// Where to connect for a registry host instead of the host itself (a site proxy or
    /// pull-through cache), e.g. `{ "ghcr.io" = "https://cache.example" }`; `http://` is plain HTTP.
    #[serde(default)]
    pub base_urls: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    pub platform: Option<String>,
    /// `file:PATH`.
    pub source: String,
    /// Media type of the file's layer; guessed from the file name when absent.
    pub media_type: Option<String>,
}

pub use crate::sources::{
    AmiImage, AmiSource, CargoSource, HttpsSource, JetBrainsSource, NpmSource, OpenVsxSource, PythonLockFormat, PythonSource,
    VscodeServerSource,
};

/// Where an artifact's bytes come from, with relative paths already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    OciLayout { dir: PathBuf, reference: Option<String> },
    File { path: PathBuf },
    Registry(airlock_oci::Reference),
}

impl OfflineManifest {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        let mut manifest: OfflineManifest = toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        manifest.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |what: String, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            what,
            message,
        };
        if !is_simple_name(&self.bundle.name) {
            return Err(invalid(
                "[bundle] name".into(),
                format!("`{}` must be letters, digits, `.`, `_` or `-`", self.bundle.name),
            ));
        }
        if !is_simple_name(&self.bundle.channel) {
            return Err(invalid(
                "[bundle] channel".into(),
                format!("`{}` must be letters, digits, `.`, `_` or `-`", self.bundle.channel),
            ));
        }
        for (i, image) in self.images.iter().enumerate() {
            let what = format!("[[image]] #{} ({})", i + 1, image.name);
            validate_repository(&image.name).map_err(|e| invalid(what.clone(), e.to_string()))?;
            if !is_valid_tag(&image.tag) {
                return Err(invalid(what, format!("tag `{}` is not a valid OCI tag", image.tag)));
            }
            match image.kind_source(Path::new(".")) {
                Err(message) => return Err(invalid(what, message)),
                Ok(Source::Registry(_)) => {
                    if let Some(base) = &image.base_url {
                        crate::sources::check_url(base).map_err(|m| invalid(what.clone(), m))?;
                    }
                    for platform in &image.platforms {
                        crate::sources::check_platform(platform).map_err(|m| invalid(what.clone(), m))?;
                    }
                }
                Ok(_) if !image.platforms.is_empty() || image.base_url.is_some() => {
                    return Err(invalid(what, "`platforms` and `base_url` apply to `registry:` sources only".into()));
                }
                Ok(_) => {}
            }
        }
        for (i, file) in self.files.iter().enumerate() {
            let what = format!("[[file]] #{} ({})", i + 1, file.name);
            if file.kind == ArtifactKind::Image {
                return Err(invalid(what, "kind `image` belongs in an [[image]] table".into()));
            }
            validate_repository(&format!("{}/{}", file.kind, file.name))
                .map_err(|e| invalid(what.clone(), e.to_string()))?;
            if file.version.is_empty() {
                return Err(invalid(what, "version must not be empty".into()));
            }
            if !file.source.starts_with("file:") || file.source.len() == "file:".len() {
                return Err(invalid(
                    what,
                    format!("source `{}` must be `file:PATH`", file.source),
                ));
            }
        }
        for (i, devcontainer) in self.devcontainers.iter().enumerate() {
            let what = format!("[[devcontainer]] #{} ({})", i + 1, devcontainer.path);
            if devcontainer.path.is_empty() {
                return Err(invalid(what, "`path` must name a devcontainer.json".into()));
            }
            for base in devcontainer.base_urls.values() {
                crate::sources::check_url(base).map_err(|m| invalid(what.clone(), m))?;
            }
        }
        crate::sources::validate(self).map_err(|(what, message)| invalid(what, message))?;
        Ok(())
    }

    /// True when some artifact comes from the network (and so from a lock).
    pub fn has_remote_sources(&self) -> bool {
        self.images.iter().any(|i| i.source.starts_with("registry:"))
            || !self.vscode_server.is_empty()
            || !self.openvsx.is_empty()
            || !self.jetbrains.is_empty()
            || !self.https.is_empty()
            || self.ami.is_some()
            || !self.python.is_empty()
            || !self.npm.is_empty()
            || !self.cargo.is_empty()
            || !self.devcontainers.is_empty()
    }
}

impl OfflineManifest {
    /// Where a package lock named in the manifest is on disk.
    pub fn package_lock_path(&self, lock: &str) -> PathBuf {
        self.base_dir.join(lock)
    }
}

impl ImageEntry {
    pub fn kind_source(&self, base: &Path) -> Result<Source, String> {
        if let Some(reference) = self.source.strip_prefix("registry:") {
            return crate::sources::registry_reference(reference).map(Source::Registry);
        }
        let rest = self.source.strip_prefix("oci-layout:").ok_or_else(|| image_source_error(&self.source))?;
        // A digest reference contains a colon itself, so look for it first.
        let (dir, reference) = match rest.find(":sha256:") {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => match rest.rsplit_once(':') {
                Some((dir, reference)) => (dir, Some(reference)),
                None => (rest, None),
            },
        };
        if dir.is_empty() || reference == Some("") {
            return Err(image_source_error(&self.source));
        }
        Ok(Source::OciLayout { dir: base.join(dir), reference: reference.map(str::to_string) })
    }
}

impl FileEntry {
    pub fn kind_source(&self, base: &Path) -> Source {
        Source::File { path: base.join(&self.source["file:".len()..]) }
    }
}

fn image_source_error(source: &str) -> String {
    format!(
        "source `{source}` must be `oci-layout:PATH[:REF]` (REF: a ref name or sha256 digest) \
         or `registry:HOST/REPOSITORY:TAG` (or `@sha256:…`)"
    )
}

pub(crate) fn is_simple_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && value.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OfflineManifest, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        fs::write(&path, text).unwrap();
        OfflineManifest::load(&path)
    }

    #[test]
    fn the_minimal_form_from_outside_scripts_parses() {
        let m = parse(
            r#"
            [bundle]
            name = "sample"
            channel = "stable"

            [[image]]
            name = "devcontainers/base"      # repository in the mirror
            tag = "tiny"
            source = "oci-layout:./layouts/base:tiny"

            [[file]]
            kind = "release-file"
            name = "airlock-cli"
            version = "0.1.0"
            platform = "linux-x64"
            source = "file:./dist/airlock"
            "#,
        )
        .unwrap();
        let base = Path::new("/m");
        assert_eq!(
            m.images[0].kind_source(base).unwrap(),
            Source::OciLayout { dir: "/m/./layouts/base".into(), reference: Some("tiny".into()) }
        );
        assert_eq!(m.files[0].kind_source(base), Source::File { path: "/m/./dist/airlock".into() });
    }

    #[test]
    fn digest_references_and_bare_layouts_split_correctly() {
        let image = |source: &str| ImageEntry {
            name: "x".into(),
            tag: "t".into(),
            source: source.into(),
            platform: None,
            platforms: Vec::new(),
            base_url: None,
        };
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(
            image(&format!("oci-layout:lay:{d}")).kind_source(Path::new("")).unwrap(),
            Source::OciLayout { dir: "lay".into(), reference: Some(d.into()) }
        );
        assert_eq!(
            image("oci-layout:lay").kind_source(Path::new("")).unwrap(),
            Source::OciLayout { dir: "lay".into(), reference: None }
        );
        assert!(image("docker://x").kind_source(Path::new("")).is_err());
    }

    #[test]
    fn typos_and_bad_names_are_refused_with_the_place() {
        let err = parse("[bundle]\nname='s'\nchanel='stable'\n").unwrap_err().to_string();
        assert!(err.contains("chanel"), "{err}");
        let err = parse(
            "[bundle]\nname='s'\nchannel='c'\n[[image]]\nname='Bad/Name'\ntag='t'\nsource='oci-layout:x'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[[image]] #1"), "{err}");
        let err = parse(
            "[bundle]\nname='s'\nchannel='c'\n[[file]]\nkind='floppy'\nname='n'\nversion='1'\nsource='file:x'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("floppy"), "{err}");
    }
}
