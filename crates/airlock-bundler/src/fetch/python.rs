//! `[[python]]`: the files a Python lock names. `uv.lock` and `pylock.toml` list every file
//! with its URL and sha256; a `requirements.txt` lists only `name==version` and the sha256 of
//! every acceptable file, so each project's page is read from the simple index (PEP 691 JSON)
//! and the files whose digests the lock names are taken, as pip does with `--require-hashes`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};

use airlock_bundle::ArtifactKind;
use airlock_oci::Digest;
use airlock_packages::python::{
    self, normalize_name, parse_dist_filename, LockedDist, Requirement,
};
use airlock_packages::simple::{Flag, ProjectPage, ACCEPT};
use airlock_packages::LockFileError;

use super::{file_name_of, Ctx, FetchError};
use crate::lock::LockedFile;
use crate::sources::{PythonLockFormat, PythonSource};

pub const REQUIRES_PYTHON: &str = "vnd.airlock.python.requires-python";
pub const YANKED: &str = "vnd.airlock.python.yanked";
/// Set on packages whose lock entry had no hash: the digest is what the first fetch measured.
pub const HASHED_ON_FIRST_FETCH: &str = "vnd.airlock.package.hashed-on-first-fetch";

pub(super) async fn resolve(
    ctx: &Ctx,
    source: &PythonSource,
    lock_path: &Path,
    text: &str,
) -> Result<Vec<LockedFile>, FetchError> {
    let format = source.lock_format().map_err(|message| FetchError::Config {
        what: format!("[[python]] {}", source.lock),
        message,
    })?;
    let jobs = ctx.options.jobs.max(1);
    let files: Vec<Vec<LockedFile>> = match format {
        PythonLockFormat::Requirements => {
            let requirements = python::parse_requirements(text, lock_path, source.allow_unhashed)?;
            futures_util::stream::iter(&requirements)
                .map(|r| from_index(ctx, source, lock_path, r))
                .buffered(jobs)
                .try_collect()
                .await?
        }
        PythonLockFormat::UvLock | PythonLockFormat::Pylock => {
            let dists = if format == PythonLockFormat::UvLock {
                python::parse_uv_lock(text, lock_path, source.allow_unhashed)?
            } else {
                python::parse_pylock(text, lock_path, source.allow_unhashed)?
            };
            futures_util::stream::iter(&dists)
                .map(|d| locked_dist(ctx, lock_path, d))
                .buffered(jobs)
                .try_collect()
                .await?
        }
    };
    Ok(files.into_iter().flatten().collect())
}

/// The files of one `name==version` the index lists whose sha256 the lock names (every file
/// of that version when the entry is unhashed and that is allowed).
async fn from_index(
    ctx: &Ctx,
    source: &PythonSource,
    lock_path: &Path,
    requirement: &Requirement,
) -> Result<Vec<LockedFile>, FetchError> {
    let name = normalize_name(&requirement.name);
    let page_url = format!("{}/{name}/", source.index_url.trim_end_matches('/'));
    let at_line = |message: String| {
        FetchError::LockFile(LockFileError::new(
            lock_path,
            Some(requirement.line),
            message,
        ))
    };
    let body = ctx
        .http
        .get_optional_accepting(&page_url, Some(ACCEPT))
        .await?
        .ok_or_else(|| {
            at_line(format!(
                "{page_url} knows no project `{name}` (check the name and `index_url`)"
            ))
        })?;
    let page: ProjectPage = serde_json::from_slice(&body).map_err(|e| FetchError::Upstream {
        what: page_url.clone(),
        message: format!("not a PEP 691 JSON project page ({e}); airlock reads indexes that answer `Accept: application/vnd.pypi.simple.v1+json`"),
    })?;
    let base = url::Url::parse(&page_url).map_err(|e| FetchError::Upstream {
        what: page_url.clone(),
        message: e.to_string(),
    })?;
    let pinned: BTreeSet<&str> = requirement.sha256.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for file in &page.files {
        let Some(dist) = parse_dist_filename(&file.filename) else {
            continue;
        };
        let index_sha = file.sha256().map(str::to_ascii_lowercase);
        let wanted = if pinned.is_empty() {
            dist.name == name && dist.version == requirement.version
        } else {
            index_sha.as_deref().is_some_and(|sha| pinned.contains(sha))
        };
        if !wanted {
            continue;
        }
        let url = base.join(&file.url).map_err(|e| FetchError::Upstream {
            what: page_url.clone(),
            message: format!("file link `{}`: {e}", file.url),
        })?;
        let url = strip_fragment(url);
        let mut annotations = BTreeMap::new();
        if let Some(requires) = &file.requires_python {
            annotations.insert(REQUIRES_PYTHON.to_string(), requires.clone());
        }
        match &file.yanked {
            Flag::Bool(false) => {}
            Flag::Bool(true) => {
                annotations.insert(YANKED.to_string(), String::new());
            }
            Flag::Value(reason) => {
                annotations.insert(YANKED.to_string(), reason.clone());
            }
        }
        let (sha256, size, verified_by) = if pinned.is_empty() {
            annotations.insert(HASHED_ON_FIRST_FETCH.to_string(), "true".into());
            match index_sha.as_deref().map(airlock_oci::Digest::from_hex) {
                Some(Ok(digest)) => (digest, file.size, "first-fetch"),
                _ => measure(ctx, &url, &file.filename).await?,
            }
        } else {
            (
                Digest::from_hex(index_sha.as_deref().unwrap_or_default())
                    .expect("matched a 64-hex pin"),
                file.size,
                "lock-hash",
            )
        };
        out.push(locked_file(
            &dist,
            &requirement.version,
            url,
            &file.filename,
            sha256,
            size,
            verified_by,
            annotations,
        ));
    }
    if out.is_empty() {
        let what = if pinned.is_empty() {
            "no file".to_string()
        } else {
            format!("none of its {} hashes matches a file", pinned.len())
        };
        return Err(at_line(format!(
            "{}=={}: {what} that {page_url} lists",
            requirement.name, requirement.version
        )));
    }
    Ok(out)
}

/// One file of a `uv.lock` / `pylock.toml`.
async fn locked_dist(
    ctx: &Ctx,
    lock_path: &Path,
    dist: &LockedDist,
) -> Result<Vec<LockedFile>, FetchError> {
    let at_line = |message: String| {
        FetchError::LockFile(LockFileError::new(lock_path, Some(dist.line), message))
    };
    let url = url::Url::parse(&dist.url)
        .map_err(|e| at_line(format!("`{}` is not a URL: {e}", dist.url)))?;
    let filename = percent_decode(&file_name_of(url.as_str()));
    let parsed = parse_dist_filename(&filename)
        .ok_or_else(|| at_line(format!("`{filename}` is not a wheel or sdist file name")))?;
    if parsed.name != normalize_name(&dist.name) {
        return Err(at_line(format!(
            "`{filename}` is not a file of `{}`",
            dist.name
        )));
    }
    let url = strip_fragment(url);
    let mut annotations = BTreeMap::new();
    let (sha256, size, verified_by) = match &dist.sha256 {
        Some(hex) => (
            Digest::from_hex(hex).map_err(|e| at_line(e.to_string()))?,
            dist.size,
            "lock-hash",
        ),
        None => {
            annotations.insert(HASHED_ON_FIRST_FETCH.to_string(), "true".into());
            measure(ctx, &url, &filename).await?
        }
    };
    Ok(vec![locked_file(
        &parsed,
        &dist.version,
        url,
        &filename,
        sha256,
        size,
        verified_by,
        annotations,
    )])
}

/// Downloads a file whose digest nothing names, and records what it measured.
async fn measure(
    ctx: &Ctx,
    url: &str,
    filename: &str,
) -> Result<(Digest, Option<u64>, &'static str), FetchError> {
    let done = ctx
        .http
        .download(url, &format!("python-package {filename}"), None, &ctx.cache)
        .await?;
    Ok((done.digest, Some(done.size), "first-fetch"))
}

#[allow(clippy::too_many_arguments)]
fn locked_file(
    dist: &python::DistFile,
    version: &str,
    url: String,
    filename: &str,
    sha256: Digest,
    size: Option<u64>,
    verified_by: &str,
    annotations: BTreeMap<String, String>,
) -> LockedFile {
    let media_type = if filename.ends_with(".tar.gz") {
        "application/gzip"
    } else {
        "application/zip"
    };
    LockedFile {
        kind: ArtifactKind::PythonPackage,
        name: dist.name.clone(),
        version: version.to_string(),
        platform: Some(dist.platform().to_string()),
        url,
        sha256,
        size,
        file_name: filename.to_string(),
        media_type: media_type.into(),
        verified_by: verified_by.into(),
        annotations,
        inline: None,
    }
}

/// Index links carry `#sha256=…`; the URL to fetch is without it.
fn strip_fragment(mut url: url::Url) -> String {
    url.set_fragment(None);
    url.to_string()
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}
