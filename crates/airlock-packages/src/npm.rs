//! npm formats: package names (scoped `@scope/name` included), tarball names and paths,
//! `package-lock.json` / `npm-shrinkwrap.json` (lockfileVersion 2 and 3), and `integrity`
//! strings (Subresource Integrity: `sha512-<base64>`, older packages `sha1-<base64>`).

use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use sha2::Digest as _;

use crate::LockFileError;

/// An npm package name: `name` or `@scope/name`, URL-safe characters, no leading `.` or `_`.
pub fn is_valid_name(name: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => {
            matches!(scoped.split_once('/'), Some((scope, rest)) if part_ok(scope) && part_ok(rest))
        }
        None => part_ok(name),
    }
}

/// The part after the scope: `@types/node` → `node`.
pub fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The tarball's file name, as the registry names it: `node-20.1.0.tgz`.
pub fn tarball_file_name(name: &str, version: &str) -> String {
    format!("{}-{version}.tgz", base_name(name))
}

/// The tarball's path below a registry's root: `@types/node/-/node-20.1.0.tgz`.
pub fn tarball_path(name: &str, version: &str) -> String {
    format!("{name}/-/{}", tarball_file_name(name, version))
}

/// A name usable as (part of) an OCI repository: `@Scope/Name` → `scope/name`. Scoped and
/// unscoped names cannot collide, as only scoped ones have a `/`.
pub fn repository_name(name: &str) -> String {
    name.trim_start_matches('@').to_ascii_lowercase()
}

/// One package a `package-lock.json` installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// The `packages` key, e.g. `node_modules/a/node_modules/@s/b`.
    pub key: String,
    pub name: String,
    pub version: String,
    /// The tarball URL (absent when npm was told `omit-lockfile-registry-resolved`).
    pub resolved: Option<String>,
    pub integrity: Option<Integrity>,
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageLock {
    #[serde(default)]
    lockfile_version: u32,
    #[serde(default)]
    packages: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    resolved: Option<String>,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    in_bundle: bool,
}

/// Every registry package a lockfileVersion 2 or 3 lock installs. The root project,
/// workspace links and packages bundled inside another's tarball are skipped; git and local
/// sources are refused, naming the line. Without `allow_unhashed`, an entry without
/// `integrity` is refused.
pub fn parse_package_lock(
    text: &str,
    path: &Path,
    allow_unhashed: bool,
) -> Result<Vec<LockEntry>, LockFileError> {
    let lock: PackageLock = serde_json::from_str(text).map_err(|e| {
        LockFileError::new(
            path,
            Some(e.line()),
            format!("not a package-lock.json: {e}"),
        )
    })?;
    let packages = match lock.packages {
        Some(packages) if lock.lockfile_version >= 2 => packages,
        _ => {
            return Err(LockFileError::new(
                path,
                None,
                format!(
                    "lockfileVersion {} has no `packages` section; npm 7 or later writes version 3 \
                     (`npm install --package-lock-only --lockfile-version 3`)",
                    lock.lockfile_version
                ),
            ))
        }
    };
    let mut out = Vec::new();
    for (key, value) in packages {
        let Some(at) = key.rfind("node_modules/") else {
            continue; // the root project ("") and workspace folders
        };
        let line = line_of_key(text, &key);
        let err = |message: String| LockFileError::new(path, line, format!("`{key}`: {message}"));
        let entry: PackageEntry = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        if entry.link || entry.in_bundle {
            continue;
        }
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| key[at + "node_modules/".len()..].to_string());
        if !is_valid_name(&name) {
            return Err(err(format!("`{name}` is not an npm package name")));
        }
        let version = entry
            .version
            .clone()
            .ok_or_else(|| err("no version".into()))?;
        if let Some(resolved) = &entry.resolved {
            if !(resolved.starts_with("https://") || resolved.starts_with("http://")) {
                return Err(err(format!("resolved `{resolved}` is not a registry tarball; git and local packages cannot be carried")));
            }
        }
        let integrity = match &entry.integrity {
            Some(text) => Some(Integrity::parse(text).map_err(err)?),
            None if allow_unhashed => None,
            None => {
                return Err(err(format!(
                    "{name}@{version} has no integrity: airlock never trusts an unpinned download (set \
                     `allow_unhashed = true` in the manifest to hash it on first fetch)"
                )))
            }
        };
        out.push(LockEntry {
            key: key.clone(),
            name,
            version,
            resolved: entry.resolved,
            integrity,
            line: line.unwrap_or(0),
        });
    }
    Ok(out)
}

/// The line where `"KEY":` first appears (the lock is JSON that npm pretty-prints).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let needle = format!("\"{key}\":");
    text.find(&needle).map(|at| crate::line_of(text, at))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// An SRI `integrity` value; of several, the strongest is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

impl Integrity {
    pub fn parse(text: &str) -> Result<Integrity, String> {
        let mut best: Option<Integrity> = None;
        for token in text.split_whitespace() {
            let Some((algorithm, b64)) = token.split_once('-') else {
                continue;
            };
            let algorithm = match algorithm {
                "sha1" => Algorithm::Sha1,
                "sha256" => Algorithm::Sha256,
                "sha384" => Algorithm::Sha384,
                "sha512" => Algorithm::Sha512,
                _ => continue,
            };
            let b64 = b64.split('?').next().unwrap_or("");
            let digest = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| format!("integrity `{token}` is not base64"))?;
            let want = match algorithm {
                Algorithm::Sha1 => 20,
                Algorithm::Sha256 => 32,
                Algorithm::Sha384 => 48,
                Algorithm::Sha512 => 64,
            };
            if digest.len() != want {
                return Err(format!(
                    "integrity `{token}` has {} bytes, {} has {want}",
                    digest.len(),
                    algorithm.name()
                ));
            }
            if best.as_ref().is_none_or(|b| algorithm > b.algorithm) {
                best = Some(Integrity { algorithm, digest });
            }
        }
        best.ok_or_else(|| {
            format!("integrity `{text}` names no sha1, sha256, sha384 or sha512 digest")
        })
    }

    /// Hashes with this integrity's algorithm.
    pub fn hasher(&self) -> IntegrityHasher {
        IntegrityHasher::new(self.algorithm)
    }

    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finish() == *self
    }
}

impl std::fmt::Display for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            self.algorithm.name(),
            base64::engine::general_purpose::STANDARD.encode(&self.digest)
        )
    }
}

/// Computes an [`Integrity`] over streamed bytes.
pub enum IntegrityHasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl IntegrityHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => IntegrityHasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => IntegrityHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => IntegrityHasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => IntegrityHasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            IntegrityHasher::Sha1(h) => h.update(bytes),
            IntegrityHasher::Sha256(h) => h.update(bytes),
            IntegrityHasher::Sha384(h) => h.update(bytes),
            IntegrityHasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Integrity {
        let (algorithm, digest) = match self {
            IntegrityHasher::Sha1(h) => (Algorithm::Sha1, h.finalize().to_vec()),
            IntegrityHasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            IntegrityHasher::Sha384(h) => (Algorithm::Sha384, h.finalize().to_vec()),
            IntegrityHasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Integrity { algorithm, digest }
    }
}

/// What a packument says about a tarball's bytes: `dist.integrity` (sha512) and
/// `dist.shasum` (sha1 in hex), computed in one pass.
pub fn dist_hashes(mut reader: impl std::io::Read) -> std::io::Result<(String, String)> {
    let mut sha512 = sha2::Sha512::new();
    let mut sha1 = sha1::Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha512.update(&buf[..n]);
        sha1.update(&buf[..n]);
    }
    let integrity = Integrity {
        algorithm: Algorithm::Sha512,
        digest: sha512.finalize().to_vec(),
    };
    Ok((integrity.to_string(), hex::encode(sha1.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tarballs_and_repositories() {
        assert!(
            is_valid_name("left-pad")
                && is_valid_name("@airlock/scoped")
                && is_valid_name("JSONStream")
        );
        for bad in [
            "", "@scope", "@/x", "a/b", ".hidden", "_x", "a b", "@s/../x",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(
            tarball_path("@airlock/scoped", "1.0.0"),
            "@airlock/scoped/-/scoped-1.0.0.tgz"
        );
        assert_eq!(
            tarball_path("left-pad", "1.3.0"),
            "left-pad/-/left-pad-1.3.0.tgz"
        );
        assert_eq!(repository_name("@Airlock/Scoped"), "airlock/scoped");
    }

    #[test]
    fn integrity_values_parse_verify_and_print() {
        let data = b"tarball bytes";
        let (sri, shasum) = dist_hashes(&data[..]).unwrap();
        let integrity = Integrity::parse(&sri).unwrap();
        assert!(integrity.matches(data) && !integrity.matches(b"other"));
        assert_eq!(integrity.to_string(), sri);
        let sha1 = Integrity {
            algorithm: Algorithm::Sha1,
            digest: hex::decode(&shasum).unwrap(),
        };
        assert!(
            Integrity::parse(&format!("{sha1} {sri}"))
                .unwrap()
                .algorithm
                == Algorithm::Sha512
        );
        assert!(Integrity::parse(&sha1.to_string()).unwrap().matches(data));
        assert!(Integrity::parse("md5-AAAA").is_err());
        assert!(Integrity::parse("sha512-AAAA")
            .unwrap_err()
            .contains("bytes"));
    }

    fn lock(packages: serde_json::Value) -> String {
        serde_json::to_string_pretty(&serde_json::json!({
            "name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": packages
        }))
        .unwrap()
    }

    #[test]
    fn package_locks_list_registry_packages_with_their_lines() {
        let sri = Integrity {
            algorithm: Algorithm::Sha512,
            digest: vec![7; 64],
        }
        .to_string();
        let text = lock(serde_json::json!({
            "": { "name": "app", "version": "1.0.0", "dependencies": { "@airlock/scoped": "^1.0.0" } },
            "node_modules/@airlock/scoped": { "version": "1.0.0", "resolved": "http://r/@airlock/scoped/-/scoped-1.0.0.tgz", "integrity": sri },
            "node_modules/@airlock/scoped/node_modules/dep": { "version": "2.0.0", "integrity": sri },
            "node_modules/alias": { "name": "real-name", "version": "3.0.0", "resolved": "http://r/real-name/-/real-name-3.0.0.tgz", "integrity": sri },
            "node_modules/inner": { "version": "1.0.0", "inBundle": true },
            "node_modules/ws-link": { "resolved": "packages/ws", "link": true },
            "packages/ws": { "name": "ws", "version": "0.0.1" },
        }));
        let entries = parse_package_lock(&text, Path::new("package-lock.json"), false).unwrap();
        let names: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("@airlock/scoped", "1.0.0"),
                ("dep", "2.0.0"),
                ("real-name", "3.0.0")
            ]
        );
        assert!(entries[0].line > 1 && entries[1].resolved.is_none());
    }

    #[test]
    fn package_locks_refuse_what_cannot_be_carried_naming_the_line() {
        let path = Path::new("package-lock.json");
        let text = lock(
            serde_json::json!({ "": {}, "node_modules/x": { "version": "1.0.0", "resolved": "http://r/x/-/x-1.0.0.tgz" } }),
        );
        let err = parse_package_lock(&text, path, false).unwrap_err();
        assert!(
            err.message.contains("no integrity") && err.line == Some(6),
            "{err:?}"
        );
        assert!(parse_package_lock(&text, path, true).unwrap()[0]
            .integrity
            .is_none());
        let git = lock(
            serde_json::json!({ "node_modules/x": { "version": "1.0.0", "resolved": "git+ssh://git@github.com/a/b.git#abc" } }),
        );
        assert!(parse_package_lock(&git, path, true)
            .unwrap_err()
            .message
            .contains("git and local"));
        let v1 = r#"{"lockfileVersion": 1, "dependencies": {}}"#;
        assert!(parse_package_lock(v1, path, true)
            .unwrap_err()
            .message
            .contains("lockfileVersion 1"));
        assert!(parse_package_lock("{", path, true)
            .unwrap_err()
            .line
            .is_some());
    }
}
