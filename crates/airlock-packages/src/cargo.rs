//! Cargo formats: crate names, `Cargo.lock` (every registry package with its `checksum`, the
//! sha256 of the `.crate`), sparse-index paths (`1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd`) and
//! the index entry of one version, built from the normalized `Cargo.toml` that `cargo
//! package` puts inside every `.crate`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::LockFileError;

/// The `source` of crates.io packages in a `Cargo.lock` (also when a source replacement or a
/// sparse mirror served them: the lock keeps the replaced source's name).
pub const CRATES_IO_SOURCE: &str = "registry+https://github.com/rust-lang/crates.io-index";
/// crates.io's sparse index, as a lock written with `replace-with` pointing at it may say.
pub const CRATES_IO_SPARSE_SOURCE: &str = "sparse+https://index.crates.io/";

/// A crate name as crates.io accepts it: ASCII letters, digits, `-` and `_`, starting with
/// a letter, at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `.crate` file's name: `serde-1.0.0.crate`.
pub fn crate_file_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.crate")
}

/// Where the sparse index keeps a crate's file (names are lowercased): `1/a`, `2/ab`,
/// `3/a/abc`, `ab/cd/abcd`.
pub fn index_path(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    format!("{}/{name}", prefix(&name))
}

/// The folders before the name in the index (`{prefix}` of a `dl` template), in the name's case.
fn prefix(name: &str) -> String {
    match name.len() {
        0..=2 => name.len().to_string(),
        3 => format!("3/{}", &name[..1]),
        _ => format!("{}/{}", &name[..2], &name[2..4]),
    }
}

/// One registry package a `Cargo.lock` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    pub name: String,
    pub version: String,
    pub source: String,
    /// The `.crate`'s sha256, hex.
    pub checksum: Option<String>,
    pub line: usize,
}

#[derive(Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

/// Every package of `Cargo.lock` that comes from one of `registries` (lock `source` strings).
/// Workspace and path packages (no `source`) are skipped; git sources and other registries
/// are refused, naming the line. Without `allow_unhashed`, a package without `checksum` is
/// refused.
pub fn parse_cargo_lock(
    text: &str,
    path: &Path,
    registries: &[&str],
    allow_unhashed: bool,
) -> Result<Vec<LockEntry>, LockFileError> {
    let lock: CargoLock = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| crate::line_of(text, s.start));
        LockFileError::new(path, line, format!("not a Cargo.lock: {}", e.message()))
    })?;
    // The nth `[[package]]` header is the nth package.
    let mut headers = text
        .match_indices("[[package]]")
        .map(|(at, _)| crate::line_of(text, at));
    let mut out = Vec::new();
    for package in lock.package {
        let line = headers.next();
        let err = |message: String| {
            LockFileError::new(
                path,
                line,
                format!("{} {}: {message}", package.name, package.version),
            )
        };
        let Some(source) = package.source.clone() else {
            continue; // the workspace's own crates and path dependencies
        };
        if source.starts_with("git+") {
            return Err(err(format!(
                "git source `{source}` cannot be carried; publish the crate to a registry"
            )));
        }
        if !registries.contains(&source.as_str()) {
            return Err(err(format!(
                "comes from `{source}`, which is not this [[cargo]] entry's registry ({}); set `source` in the manifest to that registry",
                registries.join(", ")
            )));
        }
        if !is_valid_name(&package.name) {
            return Err(err("is not a crate name".into()));
        }
        match &package.checksum {
            Some(sum) if sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()) => {}
            Some(sum) => return Err(err(format!("checksum `{sum}` is not a sha256"))),
            None if allow_unhashed => {}
            None => {
                return Err(err(
                    "has no checksum: airlock never trusts an unpinned download (lockfile version 1 keeps \
                     checksums in [metadata]: run `cargo generate-lockfile` with a current cargo, or set \
                     `allow_unhashed = true` in the manifest to hash it on first fetch)"
                        .into(),
                ))
            }
        }
        out.push(LockEntry {
            name: package.name,
            version: package.version,
            source,
            checksum: package.checksum.map(|s| s.to_ascii_lowercase()),
            line: line.unwrap_or(0),
        });
    }
    Ok(out)
}

/// The URL of a `.crate` from a registry's `dl` template: `{crate}`, `{version}`,
/// `{prefix}`, `{lowerprefix}`, `{sha256-checksum}` are replaced; a template without markers
/// gets `/{crate}/{version}/download` appended, as cargo does.
pub fn download_url(template: &str, name: &str, version: &str, checksum: &str) -> String {
    const MARKERS: [&str; 5] = [
        "{crate}",
        "{version}",
        "{prefix}",
        "{lowerprefix}",
        "{sha256-checksum}",
    ];
    if !MARKERS.iter().any(|m| template.contains(m)) {
        return format!(
            "{}/{name}/{version}/download",
            template.trim_end_matches('/')
        );
    }
    let prefix = prefix(name);
    template
        .replace("{crate}", name)
        .replace("{version}", version)
        .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
        .replace("{prefix}", &prefix)
        .replace("{sha256-checksum}", checksum)
}

#[derive(Deserialize)]
struct Manifest {
    package: ManifestPackage,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    #[serde(default, rename = "dev-dependencies")]
    dev_dependencies: BTreeMap<String, toml::Value>,
    #[serde(default, rename = "build-dependencies")]
    build_dependencies: BTreeMap<String, toml::Value>,
    #[serde(default)]
    target: BTreeMap<String, TargetTable>,
    #[serde(default)]
    features: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct ManifestPackage {
    name: String,
    version: String,
    #[serde(default)]
    links: Option<String>,
    #[serde(default, rename = "rust-version")]
    rust_version: Option<String>,
}

#[derive(Deserialize, Default)]
struct TargetTable {
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    #[serde(default, rename = "dev-dependencies")]
    dev_dependencies: BTreeMap<String, toml::Value>,
    #[serde(default, rename = "build-dependencies")]
    build_dependencies: BTreeMap<String, toml::Value>,
}

/// The sparse-index line of one version, from the normalized `Cargo.toml` inside its
/// `.crate` and the `.crate`'s sha256. Every dependency is taken to come from the same
/// registry (`registry: null`): the mirror serves one merged index.
pub fn index_entry(cargo_toml: &str, cksum: &str) -> Result<Value, String> {
    let manifest: Manifest =
        toml::from_str(cargo_toml).map_err(|e| format!("Cargo.toml: {}", e.message()))?;
    let mut deps = Vec::new();
    let mut add = |table: &BTreeMap<String, toml::Value>, kind: &str, target: Option<&str>| {
        for (name, spec) in table {
            deps.push(dependency(name, spec, kind, target));
        }
    };
    add(&manifest.dependencies, "normal", None);
    add(&manifest.dev_dependencies, "dev", None);
    add(&manifest.build_dependencies, "build", None);
    for (target, table) in &manifest.target {
        add(&table.dependencies, "normal", Some(target));
        add(&table.dev_dependencies, "dev", Some(target));
        add(&table.build_dependencies, "build", Some(target));
    }
    // `dep:` and `?/` need index format 2 (cargo 1.60 and later read them).
    let v2 = manifest
        .features
        .values()
        .flatten()
        .any(|f| f.starts_with("dep:") || f.contains("?/"));
    Ok(json!({
        "name": manifest.package.name,
        "vers": manifest.package.version,
        "deps": deps,
        "cksum": cksum,
        "features": manifest.features,
        "yanked": false,
        "links": manifest.package.links,
        "rust_version": manifest.package.rust_version,
        "v": if v2 { 2 } else { 1 },
    }))
}

/// One `deps` entry. A renamed dependency (`package = "…"`) is listed under the name the
/// crate uses, with `package` naming the real crate, as the index format wants.
fn dependency(name: &str, spec: &toml::Value, kind: &str, target: Option<&str>) -> Value {
    let get = |key: &str| spec.get(key).or_else(|| spec.get(key.replace('-', "_")));
    let req = match spec {
        toml::Value::String(req) => req.clone(),
        _ => get("version")
            .and_then(toml::Value::as_str)
            .unwrap_or("*")
            .to_string(),
    };
    let features: Vec<&str> = get("features")
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(toml::Value::as_str).collect())
        .unwrap_or_default();
    json!({
        "name": name,
        "req": req,
        "features": features,
        "optional": get("optional").and_then(toml::Value::as_bool).unwrap_or(false),
        "default_features": get("default-features").and_then(toml::Value::as_bool).unwrap_or(true),
        "target": target,
        "kind": kind,
        "registry": Value::Null,
        "package": get("package").and_then(toml::Value::as_str),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_follow_the_length_rule() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("abc"), "3/a/abc");
        assert_eq!(index_path("Serde"), "se/rd/serde");
    }

    #[test]
    fn download_urls_follow_the_dl_template() {
        assert_eq!(
            download_url("https://dl.site/crates", "serde", "1.0.0", "ab"),
            "https://dl.site/crates/serde/1.0.0/download"
        );
        assert_eq!(
            download_url(
                "https://s/{prefix}/{crate}/{crate}-{version}.crate?{sha256-checksum}",
                "Abc",
                "1.0.0",
                "ff"
            ),
            "https://s/3/A/Abc/Abc-1.0.0.crate?ff"
        );
    }

    const LOCK: &str = r#"version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["serde"]

[[package]]
name = "serde"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "AB00000000000000000000000000000000000000000000000000000000000000"

[[package]]
name = "nosum"
version = "0.2.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

    #[test]
    fn a_lock_gives_its_registry_packages_and_refuses_one_without_checksum() {
        let path = Path::new("Cargo.lock");
        let err = parse_cargo_lock(LOCK, path, &[CRATES_IO_SOURCE], false).unwrap_err();
        assert_eq!(err.line, Some(14));
        assert!(
            err.to_string().contains("nosum 0.2.0: has no checksum"),
            "{err}"
        );
        let entries = parse_cargo_lock(LOCK, path, &[CRATES_IO_SOURCE], true).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "serde");
        assert_eq!(entries[0].line, 8);
        assert_eq!(
            entries[0].checksum.as_deref(),
            Some(&*format!("ab{}", "0".repeat(62)))
        );
        let git = LOCK.replace(
            "registry+https://github.com/rust-lang/crates.io-index\"\nchecksum",
            "git+https://example.org/x#abc\"\nchecksum",
        );
        let err = parse_cargo_lock(&git, path, &[CRATES_IO_SOURCE], true).unwrap_err();
        assert!(
            err.to_string().contains("line 8") && err.to_string().contains("git source"),
            "{err}"
        );
        let err = parse_cargo_lock(LOCK, path, &["sparse+http://other/"], true).unwrap_err();
        assert!(
            err.to_string()
                .contains("not this [[cargo]] entry's registry"),
            "{err}"
        );
    }

    #[test]
    fn index_entries_come_from_the_normalized_manifest() {
        let toml = r#"
[package]
name = "alpha"
version = "0.2.0"
rust-version = "1.70"

[features]
default = ["std"]
std = []
extra = ["dep:beta2"]

[dependencies.beta]
version = "0.1.0"
default-features = false
features = ["x"]

[dependencies.beta2]
version = "^0.3"
optional = true
package = "beta"

[target.'cfg(unix)'.build-dependencies.cc]
version = "1"
"#;
        let entry = index_entry(toml, "ff").unwrap();
        assert_eq!(entry["name"], "alpha");
        assert_eq!(entry["vers"], "0.2.0");
        assert_eq!(entry["cksum"], "ff");
        assert_eq!(entry["v"], 2);
        assert_eq!(entry["rust_version"], "1.70");
        let deps = entry["deps"].as_array().unwrap();
        assert_eq!(deps.len(), 3);
        assert_eq!(deps[0]["name"], "beta");
        assert_eq!(deps[0]["req"], "0.1.0");
        assert_eq!(deps[0]["default_features"], false);
        assert_eq!(deps[1]["package"], "beta");
        assert_eq!(deps[1]["optional"], true);
        assert_eq!(deps[2]["kind"], "build");
        assert_eq!(deps[2]["target"], "cfg(unix)");
        assert!(index_entry("not toml [", "ff").is_err());
    }
}
