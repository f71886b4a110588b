//! VS Code extensions as both the gallery and the registry API see them: one [`Build`] per
//! stored VSIX (an extension version for one target platform), described by the VSIX's own
//! `extension/package.json`, so what the mirror says always matches the bytes it serves.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use airlock_bundle::ArtifactKind;
use serde_json::Value;

use super::archive::{self, Zip};
use super::catalog::{self, StoredFile};
use super::http::{compare_versions, content_type_for, AdapterError, Reply, Result};
use crate::serve::AppState;

/// Target platforms VS Code and Open VSX know.
pub const TARGET_PLATFORMS: &[&str] = &[
    "win32-x64", "win32-ia32", "win32-arm64", "linux-x64", "linux-arm64", "linux-armhf", "alpine-x64",
    "alpine-arm64", "darwin-x64", "darwin-arm64", "web", "universal",
];

pub const UNIVERSAL: &str = "universal";

pub const ASSET_VSIX: &str = "Microsoft.VisualStudio.Services.VSIXPackage";
pub const ASSET_MANIFEST: &str = "Microsoft.VisualStudio.Code.Manifest";
pub const ASSET_DETAILS: &str = "Microsoft.VisualStudio.Services.Content.Details";
pub const ASSET_CHANGELOG: &str = "Microsoft.VisualStudio.Services.Content.Changelog";
pub const ASSET_LICENSE: &str = "Microsoft.VisualStudio.Services.Content.License";
pub const ASSET_ICON: &str = "Microsoft.VisualStudio.Services.Icons.Default";
pub const ASSET_VSIX_MANIFEST: &str = "Microsoft.VisualStudio.Services.VsixManifest";
pub const ASSET_WEB_RESOURCES: &str = "Microsoft.VisualStudio.Code.WebResources";

/// What the mirror reads from a VSIX.
#[derive(Debug)]
pub struct VsixInfo {
    /// `extension/package.json`.
    pub package: Value,
    /// Zip member names of the optional assets, when present.
    pub readme: Option<String>,
    pub changelog: Option<String>,
    pub license: Option<String>,
    pub icon: Option<String>,
    pub vsix_manifest: Option<String>,
    /// `Microsoft.VisualStudio.Code.PreRelease` in `extension.vsixmanifest`.
    pub pre_release: bool,
}

impl VsixInfo {
    pub fn read(path: &Path) -> std::result::Result<VsixInfo, String> {
        let mut zip = Zip::open(path)?;
        let names = zip.names();
        let package = zip
            .read("extension/package.json")?
            .ok_or("the VSIX has no extension/package.json")?;
        let package: Value = serde_json::from_slice(&package).map_err(|e| format!("extension/package.json is not valid JSON: {e}"))?;
        for field in ["publisher", "name", "version"] {
            if !package[field].is_string() {
                return Err(format!("extension/package.json has no `{field}`"));
            }
        }
        // Case-insensitive, as vsce writes whatever case the author used.
        let find = |stem: &str| {
            names.iter().find(|n| {
                n.strip_prefix("extension/").is_some_and(|rest| {
                    let lower = rest.to_ascii_lowercase();
                    lower == stem || lower.strip_prefix(stem).is_some_and(|ext| ext.starts_with('.'))
                })
            })
            .cloned()
        };
        let icon = package["icon"].as_str().map(|icon| format!("extension/{}", icon.trim_start_matches("./"))).filter(|n| names.contains(n));
        let vsix_manifest = names.iter().find(|n| *n == "extension.vsixmanifest").cloned();
        let pre_release = match &vsix_manifest {
            Some(name) => zip.read(name)?.is_some_and(|xml| {
                let xml = String::from_utf8_lossy(&xml);
                xml.contains("Id=\"Microsoft.VisualStudio.Code.PreRelease\" Value=\"true\"")
            }),
            None => false,
        };
        Ok(VsixInfo {
            readme: find("readme"),
            changelog: find("changelog"),
            license: find("license").or_else(|| find("license.txt")),
            icon,
            vsix_manifest,
            pre_release,
            package,
        })
    }
}

/// One stored VSIX: an extension version for one target platform.
#[derive(Clone, Debug)]
pub struct Build {
    pub file: StoredFile,
    pub vsix: Arc<VsixInfo>,
    /// `publisher.name` in lowercase: how extensions are matched.
    pub id: String,
    /// As written in package.json.
    pub publisher: String,
    pub name: String,
    pub version: String,
    pub platform: String,
}

impl Build {
    fn text(&self, field: &str) -> Option<&str> {
        self.vsix.package[field].as_str().filter(|s| !s.is_empty())
    }

    pub fn display_name(&self) -> &str {
        self.text("displayName").unwrap_or(&self.name)
    }

    pub fn description(&self) -> &str {
        self.text("description").unwrap_or("")
    }

    pub fn engine(&self) -> &str {
        self.vsix.package["engines"]["vscode"].as_str().unwrap_or("*")
    }

    fn list(&self, field: &str) -> Vec<String> {
        self.vsix.package[field]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `extensionDependencies` (the bundler's annotation when package.json has none).
    pub fn dependencies(&self) -> Vec<String> {
        self.list_or_annotation("extensionDependencies", "vnd.airlock.vscode-extension.dependencies")
    }

    /// `extensionPack`.
    pub fn pack(&self) -> Vec<String> {
        self.list_or_annotation("extensionPack", "vnd.airlock.vscode-extension.pack")
    }

    fn list_or_annotation(&self, field: &str, key: &str) -> Vec<String> {
        if self.vsix.package[field].is_array() {
            return self.list(field);
        }
        self.file.annotation(key).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default()
    }

    pub fn categories(&self) -> Vec<String> {
        self.list("categories")
    }

    pub fn keywords(&self) -> Vec<String> {
        self.list("keywords")
    }

    pub fn extension_kind(&self) -> Vec<String> {
        match &self.vsix.package["extensionKind"] {
            Value::String(kind) => vec![kind.clone()],
            _ => self.list("extensionKind"),
        }
    }

    pub fn preview(&self) -> bool {
        self.vsix.package["preview"].as_bool().unwrap_or(false)
    }

    pub fn repository(&self) -> Option<String> {
        match &self.vsix.package["repository"] {
            Value::String(url) => Some(url.clone()),
            other => other["url"].as_str().map(str::to_string),
        }
    }

    /// The file name Open VSX gives the VSIX: `publisher.name-1.2.3[@platform].vsix`.
    pub fn vsix_file_name(&self) -> String {
        let target = if self.platform == UNIVERSAL { String::new() } else { format!("@{}", self.platform) };
        format!("{}.{}-{}{target}.vsix", self.publisher, self.name, self.version)
    }

    /// A stable UUID for the extension (the gallery's `extensionId`): the same on every
    /// mirror, derived from the id since there is no publisher database here.
    pub fn extension_uuid(&self) -> String {
        uuid_of(&format!("airlock extension {}", self.id))
    }

    pub fn publisher_uuid(&self) -> String {
        uuid_of(&format!("airlock publisher {}", self.publisher.to_ascii_lowercase()))
    }

    /// Gallery asset types this build has, in a fixed order.
    pub fn asset_types(&self) -> Vec<&'static str> {
        let mut types = vec![ASSET_MANIFEST];
        let optional = [
            (ASSET_DETAILS, &self.vsix.readme),
            (ASSET_CHANGELOG, &self.vsix.changelog),
            (ASSET_LICENSE, &self.vsix.license),
            (ASSET_ICON, &self.vsix.icon),
            (ASSET_VSIX_MANIFEST, &self.vsix.vsix_manifest),
        ];
        types.extend(optional.iter().filter(|(_, member)| member.is_some()).map(|(t, _)| *t));
        types.push(ASSET_VSIX);
        types
    }

    /// The zip member behind an asset type.
    fn member_for(&self, asset_type: &str) -> Option<&str> {
        match asset_type {
            ASSET_MANIFEST => Some("extension/package.json"),
            ASSET_DETAILS => self.vsix.readme.as_deref(),
            ASSET_CHANGELOG => self.vsix.changelog.as_deref(),
            ASSET_LICENSE => self.vsix.license.as_deref(),
            ASSET_ICON => self.vsix.icon.as_deref(),
            ASSET_VSIX_MANIFEST => self.vsix.vsix_manifest.as_deref(),
            _ => None,
        }
    }

    /// Registry-API file names (`/file/{name}`) of the assets, by asset type.
    pub fn file_names(&self) -> BTreeMap<&'static str, String> {
        let mut names = BTreeMap::new();
        for asset_type in self.asset_types() {
            let name = match asset_type {
                ASSET_VSIX => self.vsix_file_name(),
                ASSET_MANIFEST => "package.json".to_string(),
                other => self.member_for(other).map(|m| m.rsplit('/').next().unwrap_or(m).to_string()).unwrap_or_default(),
            };
            names.insert(asset_type, name);
        }
        names
    }
}

fn uuid_of(seed: &str) -> String {
    use sha2::Digest as _;
    let mut bytes: [u8; 16] = sha2::Sha256::digest(seed.as_bytes())[..16].try_into().expect("16 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8: custom
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Every stored extension build, sorted by id, then newest version first, then platform.
pub fn load(state: &AppState) -> Result<Vec<Build>> {
    let mut builds = Vec::new();
    for file in catalog::files(state, ArtifactKind::VscodeExtension)? {
        let vsix = match catalog::vsix_info(state, &file) {
            Ok(vsix) => vsix,
            Err(e) => {
                tracing::warn!(error = %e, "extension left out of the gallery");
                continue;
            }
        };
        let publisher = vsix.package["publisher"].as_str().unwrap_or_default().to_string();
        let name = vsix.package["name"].as_str().unwrap_or_default().to_string();
        let version = vsix.package["version"].as_str().unwrap_or_default().to_string();
        let id = format!("{publisher}.{name}").to_ascii_lowercase();
        if id != file.name.to_ascii_lowercase() || version != file.version {
            tracing::warn!(
                artifact = %file.reference(), vsix = %format!("{id} {version}"),
                "the artifact's name or version differs from its package.json; the package.json wins"
            );
        }
        let platform = file.platform.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| UNIVERSAL.to_string());
        builds.push(Build { file, vsix, id, publisher, name, version, platform });
    }
    builds.sort_by(|a, b| {
        a.id.cmp(&b.id).then_with(|| compare_versions(&b.version, &a.version)).then_with(|| a.platform.cmp(&b.platform))
    });
    Ok(builds)
}

/// The builds of one extension (`publisher.name`, any case).
pub fn of<'a>(builds: &'a [Build], publisher: &str, name: &str) -> Vec<&'a Build> {
    let id = format!("{publisher}.{name}").to_ascii_lowercase();
    builds.iter().filter(|b| b.id == id).collect()
}

/// Groups builds by extension, keeping the load order.
pub fn grouped(builds: &[Build]) -> Vec<Vec<&Build>> {
    let mut groups: Vec<Vec<&Build>> = Vec::new();
    for build in builds {
        match groups.last_mut() {
            Some(group) if group[0].id == build.id => group.push(build),
            _ => groups.push(vec![build]),
        }
    }
    groups
}

/// The newest version's builds first, one per platform (the gallery's "latest only").
pub fn latest_per_platform<'a>(builds: &[&'a Build]) -> Vec<&'a Build> {
    let mut seen = std::collections::BTreeSet::new();
    builds.iter().copied().filter(|b| seen.insert(b.platform.clone())).collect()
}

/// The newest version (of all builds given).
pub fn newest_version<'a>(builds: &[&'a Build]) -> Option<&'a str> {
    builds.iter().map(|b| b.version.as_str()).max_by(|a, b| compare_versions(a, b))
}

/// The build for a version (`None` or `latest`: the newest) and platform. Without a
/// platform the universal build is preferred, then the first.
pub fn pick<'a>(builds: &[&'a Build], version: Option<&str>, platform: Option<&str>) -> Option<&'a Build> {
    let version = match version {
        None | Some("latest") => newest_version(builds)?.to_string(),
        Some(v) => v.to_string(),
    };
    let candidates: Vec<&Build> = builds.iter().copied().filter(|b| b.version == version).collect();
    match platform {
        Some(platform) => candidates.into_iter().find(|b| b.platform == platform),
        None => candidates.iter().copied().find(|b| b.platform == UNIVERSAL).or_else(|| candidates.first().copied()),
    }
}

/// Serves one asset of a build: the VSIX itself, or a member of it.
pub fn asset(state: &AppState, build: &Build, asset_type: &str, resource: Option<&str>) -> Result<Reply> {
    if asset_type == ASSET_VSIX {
        let mut file = build.file.clone();
        file.file_name = build.vsix_file_name();
        return Ok(Reply::File { file: Box::new(file), content_type: "application/vsix".into() });
    }
    let member = if asset_type == ASSET_WEB_RESOURCES {
        resource.map(str::to_string)
    } else {
        build.member_for(asset_type).map(str::to_string)
    };
    let Some(member) = member else {
        return Err(AdapterError::not_found(format!(
            "{} {} has no asset {asset_type}",
            build.id, build.version
        )));
    };
    member_reply(state, build, &member)
}

/// One zip member of a build, by member name.
pub fn member_reply(state: &AppState, build: &Build, member: &str) -> Result<Reply> {
    let path = state.store.blobs.path(&build.file.layer);
    let bytes = archive::zip_member(&path, member)
        .map_err(|message| AdapterError::Content { what: build.file.reference(), message })?
        .ok_or_else(|| AdapterError::not_found(format!("{} {} has no file {member}", build.id, build.version)))?;
    Ok(Reply::Bytes { content_type: content_type_for(member).to_string(), body: bytes })
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = super::uuid_of("airlock extension pub.name");
        assert_eq!(a, super::uuid_of("airlock extension pub.name"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert_ne!(a, super::uuid_of("airlock extension pub.other"));
    }
}
