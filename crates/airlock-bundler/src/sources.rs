//! The offline manifest's network sources: their TOML tables, defaults and checks.
//!
//! Every source names its upstream base URL, defaulting to the public service, so a site can
//! point the bundler at its own proxy or pull-through cache (and tests at stand-ins).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use airlock_bundle::ArtifactKind;
use airlock_oci::{validate_repository, Digest, Reference};

use crate::offline_manifest::OfflineManifest;

pub const DEFAULT_VSCODE_URL: &str = "https://update.code.visualstudio.com";
pub const DEFAULT_OPENVSX_URL: &str = "https://open-vsx.org";
pub const DEFAULT_JETBRAINS_URL: &str = "https://data.services.jetbrains.com";
pub const DEFAULT_PYPI_URL: &str = "https://pypi.org/simple";
pub const DEFAULT_NPM_URL: &str = "https://registry.npmjs.org";
/// crates.io's download template (its sparse index's `config.json` `dl`).
pub const DEFAULT_CRATES_DOWNLOAD: &str = "https://static.crates.io/crates/{crate}/{crate}-{version}.crate";

/// `[[vscode_server]]`: VS Code server archives from the update service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VscodeServerSource {
    #[serde(default = "default_vscode_url")]
    pub base_url: String,
    #[serde(default = "default_quality")]
    pub quality: String,
    /// A 40-hex commit, or `latest` (resolved to a commit in the lock).
    pub commit: String,
    /// e.g. `server-linux-x64`, `server-linux-arm64`, `server-linux-x64-web`.
    pub platforms: Vec<String>,
}

/// `[[openvsx]]`: extensions from an Open VSX registry, with their dependencies and packs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenVsxSource {
    #[serde(default = "default_openvsx_url")]
    pub base_url: String,
    /// `publisher.name` or `publisher.name@version`.
    pub extensions: Vec<String>,
    /// e.g. `linux-x64`, `linux-arm64`; a universal build serves every platform.
    #[serde(default = "default_target_platforms")]
    pub target_platforms: Vec<String>,
}

/// `[[jetbrains]]`: IDE backends from the JetBrains products API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetBrainsSource {
    #[serde(default = "default_jetbrains_url")]
    pub base_url: String,
    /// Product codes, e.g. `IIU` (IntelliJ IDEA Ultimate), `GO` (GoLand), `PCP` (PyCharm).
    pub products: Vec<String>,
    /// An exact version such as `2024.3.1`, or `latest` (the latest release).
    #[serde(default = "default_latest")]
    pub version: String,
    /// Download keys: `linux`, `linuxARM64`, `mac`, `macM1`, `windows`.
    #[serde(default = "default_jetbrains_platforms")]
    pub platforms: Vec<String>,
}

/// `[[https]]`: a release artifact by URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSource {
    #[serde(default = "default_release_kind")]
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    pub platform: Option<String>,
    pub url: String,
    /// Pinned sha256 (64 hex digits, with or without `sha256:`).
    pub sha256: Option<String>,
    /// Verify against `URL.sha256` (`<sha256>  <filename>`).
    #[serde(default)]
    pub sidecar: bool,
    pub media_type: Option<String>,
}

/// `[[python]]`: every file a Python lock file names, each checked against the lock's sha256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonSource {
    /// `requirements.txt` with `--hash` pins, `uv.lock` or `pylock.toml`, relative to the
    /// offline manifest.
    pub lock: String,
    /// The lock's format; guessed from the file name when absent.
    pub format: Option<PythonLockFormat>,
    /// The simple index `requirements.txt` entries are looked up in (PEP 691 JSON).
    #[serde(default = "default_pypi_url")]
    pub index_url: String,
    /// Entries without a hash are fetched and hashed on first fetch (recorded in the lock and
    /// the bundle) instead of refused.
    #[serde(default)]
    pub allow_unhashed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PythonLockFormat {
    Requirements,
    UvLock,
    Pylock,
}

impl PythonSource {
    pub fn lock_format(&self) -> Result<PythonLockFormat, String> {
        if let Some(format) = self.format {
            return Ok(format);
        }
        let file = self.lock.rsplit('/').next().unwrap_or(&self.lock);
        if file == "uv.lock" {
            Ok(PythonLockFormat::UvLock)
        } else if file.starts_with("pylock.") && file.ends_with(".toml") {
            Ok(PythonLockFormat::Pylock)
        } else if file.ends_with(".txt") {
            Ok(PythonLockFormat::Requirements)
        } else {
            Err(format!("cannot tell the format of `{}` from its name: add format = \"requirements\", \"uv-lock\" or \"pylock\"", self.lock))
        }
    }
}

/// `[[npm]]`: every tarball a `package-lock.json` (or `npm-shrinkwrap.json`) names, each
/// checked against its `integrity`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmSource {
    /// The lock, relative to the offline manifest.
    pub lock: String,
    /// The registry tarballs come from when the lock has no `resolved` URL; `resolved` URLs
    /// on registry.npmjs.org are fetched from here instead (npm's `replace-registry-host`).
    #[serde(default = "default_npm_url")]
    pub registry: String,
    #[serde(default)]
    pub allow_unhashed: bool,
}

/// `[[cargo]]`: every registry crate a `Cargo.lock` names, each checked against its
/// `checksum` (the `.crate`'s sha256).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoSource {
    /// The lock, relative to the offline manifest.
    pub lock: String,
    /// The lock's `source` for the crates taken: crates.io by default (also what a lock says
    /// when crates.io was replaced by a site mirror); an alternate registry's
    /// `sparse+https://…/` or `registry+https://…` otherwise.
    #[serde(default = "default_cargo_source")]
    pub source: String,
    /// Where `.crate` files are downloaded: a `dl` template as in a sparse index's
    /// `config.json` (`{crate}`, `{version}`, `{prefix}`, `{lowerprefix}`,
    /// `{sha256-checksum}`; without markers `/{crate}/{version}/download` is appended).
    #[serde(default = "default_crates_download")]
    pub download_url: String,
    #[serde(default)]
    pub allow_unhashed: bool,
}

impl CargoSource {
    /// The lock `source` strings this entry takes: crates.io under either of its names.
    pub fn sources(&self) -> Vec<&str> {
        use airlock_packages::cargo::{CRATES_IO_SOURCE, CRATES_IO_SPARSE_SOURCE};
        if self.source == CRATES_IO_SOURCE || self.source == CRATES_IO_SPARSE_SOURCE {
            vec![CRATES_IO_SOURCE, CRATES_IO_SPARSE_SOURCE]
        } else {
            vec![self.source.as_str()]
        }
    }
}

/// `[ami]`: AMI descriptors, from descriptor URLs and inline, limited to allowed owners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmiSource {
    /// AWS account ids whose images may be carried; resolution refuses any other owner.
    pub allowed_owners: Vec<String>,
    /// URLs of JSON documents `{"images": [AMI, …]}` (or a bare array).
    #[serde(default)]
    pub descriptor_urls: Vec<String>,
    #[serde(default, rename = "image")]
    pub images: Vec<AmiImage>,
}

/// One AMI descriptor, as the mirror serves it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmiImage {
    pub name: String,
    pub name_pattern: String,
    pub owner: String,
    pub architecture: String,
    pub purpose: String,
    pub version: String,
    /// Region → image id.
    #[serde(default)]
    pub regions: BTreeMap<String, String>,
}

fn default_vscode_url() -> String {
    DEFAULT_VSCODE_URL.into()
}
fn default_openvsx_url() -> String {
    DEFAULT_OPENVSX_URL.into()
}
fn default_jetbrains_url() -> String {
    DEFAULT_JETBRAINS_URL.into()
}
fn default_pypi_url() -> String {
    DEFAULT_PYPI_URL.into()
}
fn default_npm_url() -> String {
    DEFAULT_NPM_URL.into()
}
fn default_cargo_source() -> String {
    airlock_packages::cargo::CRATES_IO_SOURCE.into()
}
fn default_crates_download() -> String {
    DEFAULT_CRATES_DOWNLOAD.into()
}
fn default_quality() -> String {
    "stable".into()
}
fn default_latest() -> String {
    "latest".into()
}
fn default_target_platforms() -> Vec<String> {
    vec!["linux-x64".into()]
}
fn default_jetbrains_platforms() -> Vec<String> {
    vec!["linux".into()]
}
fn default_release_kind() -> ArtifactKind {
    ArtifactKind::ReleaseFile
}

/// The reference of a `registry:HOST/REPOSITORY(:TAG|@DIGEST)` source: the host and exactly
/// one of tag or digest spelled out (no `:latest` default, so a lock says what was meant).
pub(crate) fn registry_reference(value: &str) -> Result<Reference, String> {
    let usage = || {
        format!(
            "registry source `{value}` must be `registry:HOST/REPOSITORY:TAG` or \
             `registry:HOST/REPOSITORY@sha256:…`, with the registry host named \
             (e.g. `registry:docker.io/library/ubuntu:24.04`)"
        )
    };
    let reference = Reference::parse_explicit(value).map_err(|e| format!("registry source `{value}`: {}", e.reason))?;
    if reference.tag.is_some() == reference.digest.is_some() {
        return Err(usage());
    }
    Ok(reference)
}

pub(crate) fn check_url(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!("`{value}` must be an http(s):// URL with a host"));
    }
    Ok(url)
}

pub(crate) fn check_platform(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("platform `{value}` must be `os/arch` or `os/arch/variant`, e.g. `linux/arm64`"));
    }
    Ok(())
}

pub(crate) fn is_hex_commit(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a pinned sha256 given as 64 hex digits, with or without `sha256:`.
pub fn parse_sha256(value: &str) -> Result<Digest, String> {
    let hex = value.trim().strip_prefix("sha256:").unwrap_or(value.trim());
    Digest::from_hex(&hex.to_ascii_lowercase())
        .map_err(|_| format!("`{value}` is not a sha256 (64 hex digits)"))
}

/// `publisher.name[@version]` → (publisher, name, version).
pub fn parse_extension_id(value: &str) -> Result<(String, String, Option<String>), String> {
    let (id, version) = match value.split_once('@') {
        Some((id, v)) if !v.is_empty() => (id, Some(v.to_string())),
        Some(_) => return Err(format!("extension `{value}`: the version after `@` is empty")),
        None => (value, None),
    };
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    match id.split_once('.') {
        Some((publisher, name)) if ok(publisher) && ok(name) => {
            Ok((publisher.to_ascii_lowercase(), name.to_ascii_lowercase(), version))
        }
        _ => Err(format!("extension `{value}` must be `publisher.name` or `publisher.name@version`")),
    }
}

/// Checks the network source tables; errors carry the table and what is wrong.
pub(crate) fn validate(m: &OfflineManifest) -> Result<(), (String, String)> {
    for (i, s) in m.vscode_server.iter().enumerate() {
        let what = format!("[[vscode_server]] #{}", i + 1);
        check_url(&s.base_url).map_err(|e| (what.clone(), e))?;
        if s.commit != "latest" && !is_hex_commit(&s.commit) {
            return Err((what, format!("commit `{}` must be 40 lowercase hex digits or `latest`", s.commit)));
        }
        if s.platforms.is_empty() {
            return Err((what, "platforms must name at least one, e.g. `server-linux-x64`".into()));
        }
        if !crate::offline_manifest::is_simple_name(&s.quality) {
            return Err((what, format!("quality `{}` is not a simple name such as `stable`", s.quality)));
        }
    }
    for (i, s) in m.openvsx.iter().enumerate() {
        let what = format!("[[openvsx]] #{}", i + 1);
        check_url(&s.base_url).map_err(|e| (what.clone(), e))?;
        for ext in &s.extensions {
            parse_extension_id(ext).map_err(|e| (what.clone(), e))?;
        }
        if s.target_platforms.is_empty() {
            return Err((what, "target_platforms must name at least one, e.g. `linux-x64`".into()));
        }
    }
    for (i, s) in m.jetbrains.iter().enumerate() {
        let what = format!("[[jetbrains]] #{}", i + 1);
        check_url(&s.base_url).map_err(|e| (what.clone(), e))?;
        if s.products.is_empty() || s.platforms.is_empty() {
            return Err((what, "products and platforms must each name at least one".into()));
        }
    }
    for (i, s) in m.https.iter().enumerate() {
        let what = format!("[[https]] #{} ({})", i + 1, s.name);
        check_url(&s.url).map_err(|e| (what.clone(), e))?;
        validate_repository(&format!("{}/{}", s.kind, s.name)).map_err(|e| (what.clone(), e.to_string()))?;
        if s.kind == ArtifactKind::Image {
            return Err((what, "kind `image` belongs in an [[image]] table".into()));
        }
        if s.version.is_empty() {
            return Err((what, "version must not be empty".into()));
        }
        if let Some(sha) = &s.sha256 {
            parse_sha256(sha).map_err(|e| (what.clone(), e))?;
            if s.sidecar {
                return Err((what, "give either sha256 or sidecar = true, not both".into()));
            }
        }
    }
    for (i, s) in m.python.iter().enumerate() {
        let what = format!("[[python]] #{} ({})", i + 1, s.lock);
        check_url(&s.index_url).map_err(|e| (what.clone(), e))?;
        s.lock_format().map_err(|e| (what.clone(), e))?;
    }
    for (i, s) in m.npm.iter().enumerate() {
        let what = format!("[[npm]] #{} ({})", i + 1, s.lock);
        check_url(&s.registry).map_err(|e| (what.clone(), e))?;
        if s.lock.is_empty() {
            return Err((what, "lock must name a package-lock.json or npm-shrinkwrap.json".into()));
        }
    }
    for (i, s) in m.cargo.iter().enumerate() {
        let what = format!("[[cargo]] #{} ({})", i + 1, s.lock);
        check_url(&s.download_url.replace(['{', '}'], "")).map_err(|e| (what.clone(), e))?;
        if s.lock.is_empty() {
            return Err((what, "lock must name a Cargo.lock".into()));
        }
    }
    if let Some(ami) = &m.ami {
        let what = "[ami]".to_string();
        if ami.allowed_owners.is_empty() {
            return Err((what, "allowed_owners must list the AWS account ids images may come from".into()));
        }
        for owner in &ami.allowed_owners {
            if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
                return Err((what, format!("owner `{owner}` is not a 12-digit AWS account id")));
            }
        }
        for url in &ami.descriptor_urls {
            check_url(url).map_err(|e| (what.clone(), e))?;
        }
        for image in &ami.images {
            validate_repository(&format!("ami-descriptor/{}", image.name))
                .map_err(|e| (format!("[[ami.image]] {}", image.name), e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_references_split_into_host_repository_and_tag_or_digest() {
        let r = registry_reference("mcr.microsoft.com/devcontainers/base:ubuntu-24.04").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("mcr.microsoft.com", "devcontainers/base", Some("ubuntu-24.04")));
        let r = registry_reference("127.0.0.1:5000/x/y:1").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "x/y"));
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let r = registry_reference(&format!("ghcr.io/a/b@{d}")).unwrap();
        assert_eq!(r.digest.unwrap().to_string(), d);
        for bad in ["ubuntu:24.04", "docker.io/library/ubuntu", "docker.io/Library/ubuntu:1", "ghcr.io/a@sha256:12"] {
            assert!(registry_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extension_ids_and_pins_parse() {
        assert_eq!(parse_extension_id("Redhat.java@1.2.3").unwrap(), ("redhat".into(), "java".into(), Some("1.2.3".into())));
        assert!(parse_extension_id("nodot").is_err());
        assert!(parse_extension_id("a.b@").is_err());
        assert!(parse_sha256("sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A").is_ok());
    }
}
