//! Python packaging formats: project names (PEP 503), distribution file names (wheels and
//! sdists), the lock files the bundler reads (`requirements.txt` with `--hash` pins, `uv.lock`,
//! `pylock.toml`) and the core metadata headers the mirror reads from a wheel.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::{line_of, LockFileError};

/// PEP 503 normalization: lowercase, every run of `-`, `_` and `.` becomes one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            in_separator = true;
            continue;
        }
        if in_separator && !out.is_empty() {
            out.push('-');
        }
        in_separator = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A PEP 508 project name: ASCII letters and digits, with `.`, `_`, `-` inside.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 200
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// What a distribution file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistKind {
    /// A wheel, with its compatibility tag (`py3-none-any`).
    Wheel { tag: String },
    /// A source distribution (`.tar.gz` or `.zip`).
    Sdist,
}

/// A distribution file name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFile {
    /// The project name, normalized.
    pub name: String,
    pub version: String,
    pub kind: DistKind,
}

impl DistFile {
    /// The wheel's tag, or `sdist`: what tells two files of one version apart.
    pub fn platform(&self) -> &str {
        match &self.kind {
            DistKind::Wheel { tag } => tag,
            DistKind::Sdist => "sdist",
        }
    }
}

/// `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, or `{name}-{version}.tar.gz`
/// (`.zip`); `None` for anything else.
pub fn parse_dist_filename(filename: &str) -> Option<DistFile> {
    if filename.contains(['/', '\\']) {
        return None;
    }
    if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len())
            || parts.iter().any(|p| p.is_empty())
            || !is_valid_name(parts[0])
        {
            return None;
        }
        let n = parts.len();
        let tag = format!("{}-{}-{}", parts[n - 3], parts[n - 2], parts[n - 1]);
        return Some(DistFile {
            name: normalize_name(parts[0]),
            version: parts[1].to_string(),
            kind: DistKind::Wheel { tag },
        });
    }
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    let (name, version) = stem.rsplit_once('-')?;
    if !is_valid_name(name) || version.is_empty() {
        return None;
    }
    Some(DistFile {
        name: normalize_name(name),
        version: version.to_string(),
        kind: DistKind::Sdist,
    })
}

/// One pinned requirement of a `requirements.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As written (normalize it to compare).
    pub name: String,
    pub version: String,
    /// sha256 digests in hex, from `--hash=sha256:…`; every file of the version that may be
    /// installed has its digest here.
    pub sha256: Vec<String>,
    /// Where the requirement starts (1-based).
    pub line: usize,
}

/// Reads a `requirements.txt` as pip-compile and `uv pip compile --generate-hashes` write
/// it: one `name==version` per requirement with `--hash` options, `\` continuations,
/// comments, environment markers (kept: carrying a file a platform does not need is
/// harmless) and global options (ignored). Anything not pinned to one version is refused,
/// naming the line; so is a requirement without a hash unless `allow_unhashed`.
pub fn parse_requirements(
    text: &str,
    path: &Path,
    allow_unhashed: bool,
) -> Result<Vec<Requirement>, LockFileError> {
    let mut out = Vec::new();
    for (line, logical) in logical_lines(text) {
        let err = |message: String| LockFileError::new(path, Some(line), message);
        let content = strip_comment(&logical);
        let content = content.trim();
        if content.is_empty() {
            continue;
        }
        if content.starts_with('-') {
            let option = content.split([' ', '=', '\t']).next().unwrap_or("");
            match option {
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    return Err(err(format!(
                        "`{content}` includes another file; name that file as its own lock (a `[[python]]` table) instead"
                    )))
                }
                "-e" | "--editable" => {
                    return Err(err(format!("`{content}`: editable (local or VCS) requirements cannot be carried; only index packages can")))
                }
                // Index and install options (`--index-url`, `--extra-index-url`, `--find-links`,
                // `--trusted-host`, `--pre`, `--only-binary`, …) say nothing about what to carry.
                _ => continue,
            }
        }
        let (spec, options) = match content.find(" -") {
            Some(at) => (&content[..at], &content[at..]),
            None => (content, ""),
        };
        let spec = spec.split(';').next().unwrap_or("").trim();
        let (name, version) = parse_pin(spec).map_err(err)?;
        let mut sha256 = Vec::new();
        let mut tokens = options.split_whitespace();
        while let Some(token) = tokens.next() {
            let value = if token == "--hash" {
                tokens.next().unwrap_or("").to_string()
            } else if let Some(value) = token.strip_prefix("--hash=") {
                value.to_string()
            } else {
                return Err(err(format!("`{token}` is not an option a pinned requirement takes (expected --hash=sha256:…)")));
            };
            let (algorithm, hex) = value.split_once(':').unwrap_or(("", &value));
            if algorithm != "sha256" {
                return Err(err(format!("hash `{value}`: airlock pins files by sha256; generate the hashes with sha256 (pip-compile's default)")));
            }
            if !is_sha256_hex(hex) {
                return Err(err(format!("hash `{value}` is not 64 hex digits")));
            }
            sha256.push(hex.to_ascii_lowercase());
        }
        if sha256.is_empty() && !allow_unhashed {
            return Err(err(format!(
                "`{spec}` has no --hash: airlock never trusts an unpinned download. Generate hashes \
                 (`pip-compile --generate-hashes` or `uv pip compile --generate-hashes`), or set \
                 `allow_unhashed = true` in the manifest to hash files on first fetch"
            )));
        }
        out.push(Requirement {
            name,
            version,
            sha256,
            line,
        });
    }
    Ok(out)
}

/// Joins `\`-continued lines, each logical line with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(rest) => {
                acc.push_str(rest);
                acc.push(' ');
                current = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                out.push((start, acc));
            }
        }
    }
    out.extend(current);
    out
}

/// pip's comment rule: `#` at the start of a line or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// `name[extras]==version` (or `===`) → (name, version).
fn parse_pin(spec: &str) -> Result<(String, String), String> {
    let name_end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(spec.len());
    let name = &spec[..name_end];
    if !is_valid_name(name) {
        return Err(format!("`{spec}` does not start with a project name"));
    }
    let mut rest = spec[name_end..].trim_start();
    if rest.starts_with('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("`{spec}`: the extras' `[` is never closed"))?;
        rest = rest[close + 1..].trim_start();
    }
    if rest.starts_with('@') {
        return Err(format!(
            "`{spec}` is a direct URL requirement; only packages from an index can be carried"
        ));
    }
    let version = rest
        .strip_prefix("===")
        .or_else(|| rest.strip_prefix("=="))
        .map(str::trim);
    match version {
        Some(v) if !v.is_empty() && !v.contains([',', '*', ' ', '<', '>', '!', '~', '=']) => Ok((name.to_string(), v.to_string())),
        _ => Err(format!(
            "`{spec}` is not pinned to one version with `==`; lock it first (`pip-compile --generate-hashes` or `uv pip compile --generate-hashes`)"
        )),
    }
}

pub(crate) fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One file a `uv.lock` or `pylock.toml` names, with where it is and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedDist {
    pub name: String,
    pub version: String,
    pub url: String,
    /// sha256 in hex (`None` only when the caller allowed unhashed entries).
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// The line of the package table.
    pub line: usize,
}

#[derive(Deserialize)]
struct UvLock {
    #[serde(default, rename = "package")]
    packages: Vec<toml::Spanned<UvPackage>>,
}

#[derive(Deserialize)]
struct UvPackage {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    sdist: Option<UvFile>,
    #[serde(default)]
    wheels: Vec<UvFile>,
}

#[derive(Deserialize)]
struct UvFile {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

/// Every registry file of a `uv.lock`: each package's sdist and wheels. The project itself
/// (`editable`/`virtual` sources) is skipped; git, path and URL sources are refused.
pub fn parse_uv_lock(
    text: &str,
    path: &Path,
    allow_unhashed: bool,
) -> Result<Vec<LockedDist>, LockFileError> {
    let lock: UvLock = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        LockFileError::new(path, line, format!("not a uv.lock: {}", e.message()))
    })?;
    let mut out = Vec::new();
    for spanned in &lock.packages {
        let line = line_of(text, spanned.span().start);
        let package = spanned.get_ref();
        let err = |message: String| {
            LockFileError::new(
                path,
                Some(line),
                format!("package `{}`: {message}", package.name),
            )
        };
        let kind = package
            .source
            .keys()
            .next()
            .map(String::as_str)
            .unwrap_or("registry");
        match kind {
            "registry" => {}
            "editable" | "virtual" => continue,
            other => {
                return Err(err(format!(
                    "a `{other}` source cannot be carried; only packages from an index can"
                )));
            }
        }
        let version = package
            .version
            .clone()
            .ok_or_else(|| err("no version".into()))?;
        for file in package.sdist.iter().chain(&package.wheels) {
            let url = file.url.clone().ok_or_else(|| {
                err("a file without `url` (a local index?) cannot be fetched".into())
            })?;
            let sha256 = checked_hash(file.hash.as_deref(), &url, allow_unhashed).map_err(err)?;
            out.push(LockedDist {
                name: package.name.clone(),
                version: version.clone(),
                url,
                sha256,
                size: file.size,
                line,
            });
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct PyLock {
    #[serde(rename = "lock-version")]
    lock_version: String,
    #[serde(default)]
    packages: Vec<toml::Spanned<PyLockPackage>>,
}

#[derive(Deserialize)]
struct PyLockPackage {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    sdist: Option<PyLockFile>,
    #[serde(default)]
    wheels: Vec<PyLockFile>,
    #[serde(default)]
    vcs: Option<toml::Value>,
    #[serde(default)]
    directory: Option<toml::Value>,
    #[serde(default)]
    archive: Option<toml::Value>,
}

#[derive(Deserialize)]
struct PyLockFile {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(default)]
    size: Option<u64>,
}

/// Every file of a PEP 751 `pylock.toml`: each package's sdist and wheels.
pub fn parse_pylock(
    text: &str,
    path: &Path,
    allow_unhashed: bool,
) -> Result<Vec<LockedDist>, LockFileError> {
    let lock: PyLock = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        LockFileError::new(path, line, format!("not a pylock.toml: {}", e.message()))
    })?;
    if !lock.lock_version.starts_with("1.") {
        return Err(LockFileError::new(
            path,
            None,
            format!(
                "lock-version {} is not one this airlock reads (1.x)",
                lock.lock_version
            ),
        ));
    }
    let mut out = Vec::new();
    for spanned in &lock.packages {
        let line = line_of(text, spanned.span().start);
        let package = spanned.get_ref();
        let err = |message: String| {
            LockFileError::new(
                path,
                Some(line),
                format!("package `{}`: {message}", package.name),
            )
        };
        if package.vcs.is_some() || package.directory.is_some() || package.archive.is_some() {
            return Err(err("a vcs, directory or archive source cannot be carried; only packages from an index can".into()));
        }
        let version = package
            .version
            .clone()
            .ok_or_else(|| err("no version".into()))?;
        for file in package.sdist.iter().chain(&package.wheels) {
            let url = file
                .url
                .clone()
                .ok_or_else(|| err("a file without `url` cannot be fetched".into()))?;
            let hash = file.hashes.get("sha256").map(|h| format!("sha256:{h}"));
            let sha256 = checked_hash(hash.as_deref(), &url, allow_unhashed).map_err(err)?;
            out.push(LockedDist {
                name: package.name.clone(),
                version: version.clone(),
                url,
                sha256,
                size: file.size,
                line,
            });
        }
    }
    Ok(out)
}

fn checked_hash(
    hash: Option<&str>,
    url: &str,
    allow_unhashed: bool,
) -> Result<Option<String>, String> {
    match hash {
        Some(hash) => match hash.split_once(':') {
            Some(("sha256", hex)) if is_sha256_hex(hex) => Ok(Some(hex.to_ascii_lowercase())),
            _ => Err(format!("{url}: hash `{hash}` is not `sha256:` and 64 hex digits")),
        },
        None if allow_unhashed => Ok(None),
        None => Err(format!(
            "{url} has no sha256 hash: airlock never trusts an unpinned download (set `allow_unhashed = true` in the manifest to hash it on first fetch)"
        )),
    }
}

/// The headers of a core metadata file (`METADATA`, `PKG-INFO`): the RFC 822 block before the
/// first empty line. Repeated fields keep every value.
pub fn metadata_headers(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(values) = last.as_ref().and_then(|k| out.get_mut(k)) {
                if let Some(value) = values.last_mut() {
                    value.push('\n');
                    value.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            let key = key.trim().to_ascii_lowercase();
            out.entry(key.clone())
                .or_default()
                .push(value.trim().to_string());
            last = Some(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "0d8cdf24ab8b9a6d1e4ff5bfb4ac0ed3e3a1c1cb0af1f9f3f2a8c1bd1d8fd0a1";
    const HASH_B: &str = "aa8cdf24ab8b9a6d1e4ff5bfb4ac0ed3e3a1c1cb0af1f9f3f2a8c1bd1d8fd0a1";

    #[test]
    fn names_normalize_as_pep_503_says() {
        assert_eq!(normalize_name("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize_name("FRIENDLY._.bard"), "friendly-bard");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert!(
            is_valid_name("a")
                && is_valid_name("zope.interface")
                && !is_valid_name("-a")
                && !is_valid_name("a b")
        );
    }

    #[test]
    fn wheel_and_sdist_names_come_apart() {
        let wheel = parse_dist_filename("Airlock_Alpha-1.0.0-py3-none-any.whl").unwrap();
        assert_eq!(
            (
                wheel.name.as_str(),
                wheel.version.as_str(),
                wheel.platform()
            ),
            ("airlock-alpha", "1.0.0", "py3-none-any")
        );
        let built =
            parse_dist_filename("numpy-2.1.0-1-cp312-cp312-manylinux_2_17_x86_64.whl").unwrap();
        assert_eq!(built.platform(), "cp312-cp312-manylinux_2_17_x86_64");
        let sdist = parse_dist_filename("airlock_beta-2.0.tar.gz").unwrap();
        assert_eq!(
            (
                sdist.name.as_str(),
                sdist.version.as_str(),
                sdist.platform()
            ),
            ("airlock-beta", "2.0", "sdist")
        );
        for bad in ["x.whl", "../a-1.tar.gz", "a-1-py3.whl", "readme.txt"] {
            assert_eq!(parse_dist_filename(bad), None, "{bad}");
        }
    }

    #[test]
    fn pip_compile_output_parses_with_continuations_markers_and_comments() {
        let text = format!(
            "#\n# This file is autogenerated by pip-compile\n#\n--index-url https://pypi.example/simple\n\n\
             airlock-alpha==1.0.0 \\\n    --hash=sha256:{HASH_A} \\\n    --hash=sha256:{HASH_B}\n    # via -r requirements.in\n\
             Airlock_Beta[fast]==2.0 ; python_version >= \"3.8\" --hash sha256:{HASH_B}  # pinned\n"
        );
        let reqs = parse_requirements(&text, Path::new("req.txt"), false).unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            (
                reqs[0].name.as_str(),
                reqs[0].version.as_str(),
                reqs[0].line
            ),
            ("airlock-alpha", "1.0.0", 6)
        );
        assert_eq!(reqs[0].sha256, vec![HASH_A.to_string(), HASH_B.to_string()]);
        assert_eq!(
            (
                reqs[1].name.as_str(),
                reqs[1].version.as_str(),
                reqs[1].line
            ),
            ("Airlock_Beta", "2.0", 10)
        );
    }

    #[test]
    fn unpinned_unhashed_and_unsupported_requirements_name_their_line() {
        let path = Path::new("req.txt");
        assert!(parse_requirements(&format!("a==1 --hash=sha256:{HASH_A}\n"), path, false).is_ok());
        let err = parse_requirements("# top\nrequests==2.0\n", path, false).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.to_string().contains("req.txt line 2") && err.message.contains("no --hash"),
            "{err}"
        );
        assert_eq!(
            parse_requirements("requests==2.0\n", path, true).unwrap()[0].sha256,
            Vec::<String>::new()
        );
        for (text, expect) in [
            ("requests>=2\n", "not pinned"),
            ("requests==2.*\n", "not pinned"),
            ("-r other.txt\n", "includes another file"),
            ("-e git+https://x/y\n", "editable"),
            ("pkg @ https://x/pkg.whl\n", "direct URL"),
            (&format!("a==1 --hash=md5:{HASH_A}\n"), "sha256"),
            ("a==1 --hash=sha256:12\n", "64 hex"),
        ] {
            let err = parse_requirements(text, path, true).unwrap_err();
            assert!(err.message.contains(expect), "{text}: {err}");
            assert_eq!(err.line, Some(1));
        }
    }

    #[test]
    fn uv_lock_files_are_listed_and_the_project_itself_skipped() {
        let text = format!(
            r#"version = 1
requires-python = ">=3.9"

[[package]]
name = "airlock-alpha"
version = "1.0.0"
source = {{ registry = "http://127.0.0.1:9/simple" }}
sdist = {{ url = "http://127.0.0.1:9/files/airlock_alpha-1.0.0.tar.gz", hash = "sha256:{HASH_A}", size = 10 }}
wheels = [
    {{ url = "http://127.0.0.1:9/files/airlock_alpha-1.0.0-py3-none-any.whl", hash = "sha256:{HASH_B}", size = 20 }},
]

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
"#
        );
        let files = parse_uv_lock(&text, Path::new("uv.lock"), false).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[0].line, files[0].sha256.as_deref(), files[0].size),
            (4, Some(HASH_A), Some(10))
        );
        assert!(files[1].url.ends_with(".whl"));

        let git = text.replace("{ virtual = \".\" }", "{ git = \"https://x/y\" }");
        let err = parse_uv_lock(&git, Path::new("uv.lock"), false).unwrap_err();
        assert_eq!(err.line, Some(13));
        assert!(err.message.contains("`git` source"), "{err}");
        let unhashed = text.replace(&format!(", hash = \"sha256:{HASH_B}\""), "");
        let err = parse_uv_lock(&unhashed, Path::new("uv.lock"), false).unwrap_err();
        assert_eq!(err.line, Some(4));
        assert!(err.message.contains("no sha256 hash"), "{err}");
        assert_eq!(
            parse_uv_lock(&unhashed, Path::new("uv.lock"), true).unwrap()[1].sha256,
            None
        );
        assert!(parse_uv_lock("[[package]\n", Path::new("uv.lock"), false)
            .unwrap_err()
            .line
            .is_some());
    }

    #[test]
    fn pylock_files_are_listed() {
        let text = format!(
            "lock-version = \"1.0\"\ncreated-by = \"test\"\n\n[[packages]]\nname = \"airlock-alpha\"\nversion = \"1.0.0\"\n\
             wheels = [{{ name = \"airlock_alpha-1.0.0-py3-none-any.whl\", url = \"https://x/a.whl\", hashes = {{ sha256 = \"{HASH_A}\" }} }}]\n"
        );
        let files = parse_pylock(&text, Path::new("pylock.toml"), false).unwrap();
        assert_eq!(
            (files.len(), files[0].line, files[0].sha256.as_deref()),
            (1, 4, Some(HASH_A))
        );
        let vcs = format!(
            "{text}\n[[packages]]\nname = \"x\"\nvcs = {{ type = \"git\", url = \"https://x\" }}\n"
        );
        assert!(parse_pylock(&vcs, Path::new("pylock.toml"), false)
            .unwrap_err()
            .message
            .contains("vcs"));
    }

    #[test]
    fn metadata_headers_read_up_to_the_body() {
        let text = "Metadata-Version: 2.1\nName: airlock-alpha\nRequires-Python: >=3.8\nRequires-Dist: airlock-beta==2.0\nRequires-Dist: x\n\nRequires-Python: body\n";
        let headers = metadata_headers(text);
        assert_eq!(headers["requires-python"], vec![">=3.8".to_string()]);
        assert_eq!(headers["requires-dist"].len(), 2);
    }
}
