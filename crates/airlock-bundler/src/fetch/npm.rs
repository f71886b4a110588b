//! `[[npm]]`: every tarball a `package-lock.json` names. The lock pins each by `integrity`
//! (sha512, sha1 for old packages), not by sha256, so `bundle lock` downloads each tarball
//! into the content cache, checks it against the integrity, and records its sha256; `bundle
//! create` then finds it in the cache.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};

use airlock_bundle::ArtifactKind;
use airlock_packages::npm::{self, Integrity, LockEntry};
use airlock_packages::LockFileError;

use super::{Ctx, FetchError};
use crate::fetch::python::HASHED_ON_FIRST_FETCH;
use crate::lock::LockedFile;
use crate::sources::{NpmSource, DEFAULT_NPM_URL};

/// The package's exact name (`@scope/name`); the artifact's name is the repository-safe form.
pub const NPM_NAME: &str = "vnd.airlock.npm.name";
/// The `integrity` the lock pinned the tarball to.
pub const NPM_INTEGRITY: &str = "vnd.airlock.npm.integrity";

pub(super) async fn resolve(
    ctx: &Ctx,
    source: &NpmSource,
    lock_path: &Path,
    text: &str,
) -> Result<Vec<LockedFile>, FetchError> {
    let entries = npm::parse_package_lock(text, lock_path, source.allow_unhashed)?;
    // The same name@version installed at several places in the tree is carried once.
    let mut unique: BTreeMap<(String, String), LockEntry> = BTreeMap::new();
    for entry in entries {
        unique
            .entry((entry.name.clone(), entry.version.clone()))
            .or_insert(entry);
    }
    futures_util::stream::iter(unique.values())
        .map(|entry| fetch_tarball(ctx, source, lock_path, entry))
        .buffered(ctx.options.jobs.max(1))
        .try_collect()
        .await
}

/// Where the tarball is fetched from: the lock's `resolved`, with registry.npmjs.org replaced
/// by the configured registry, else the registry's standard tarball path.
fn tarball_url(source: &NpmSource, entry: &LockEntry) -> String {
    let registry = source.registry.trim_end_matches('/');
    match &entry.resolved {
        Some(resolved) if registry != DEFAULT_NPM_URL => {
            match resolved.strip_prefix(DEFAULT_NPM_URL) {
                Some(path) => format!("{registry}{path}"),
                None => resolved.clone(),
            }
        }
        Some(resolved) => resolved.clone(),
        None => format!(
            "{registry}/{}",
            npm::tarball_path(&entry.name, &entry.version)
        ),
    }
}

async fn fetch_tarball(
    ctx: &Ctx,
    source: &NpmSource,
    lock_path: &Path,
    entry: &LockEntry,
) -> Result<LockedFile, FetchError> {
    let url = tarball_url(source, entry);
    let label = format!("npm-package {}@{}", entry.name, entry.version);
    let done = ctx.http.download(&url, &label, None, &ctx.cache).await?;
    let mut annotations = BTreeMap::from([(NPM_NAME.to_string(), entry.name.clone())]);
    let verified_by = match &entry.integrity {
        Some(integrity) => {
            let measured =
                integrity_of(&done.path, integrity).map_err(|e| FetchError::Upstream {
                    what: done.path.display().to_string(),
                    message: e.to_string(),
                })?;
            if measured != *integrity {
                return Err(FetchError::LockFile(LockFileError::new(
                    lock_path,
                    Some(entry.line),
                    format!(
                        "{url} served {} bytes with integrity {measured}, but the lock pins {integrity}; nothing was packed \
                         (if the package was republished on purpose, update the lock with npm; otherwise something altered the bytes)",
                        done.size
                    ),
                )));
            }
            annotations.insert(NPM_INTEGRITY.to_string(), integrity.to_string());
            "integrity"
        }
        None => {
            annotations.insert(HASHED_ON_FIRST_FETCH.to_string(), "true".into());
            "first-fetch"
        }
    };
    tracing::info!(package = %entry.name, version = %entry.version, verified_by, "resolved");
    Ok(LockedFile {
        kind: ArtifactKind::NpmPackage,
        name: npm::repository_name(&entry.name),
        version: entry.version.clone(),
        platform: None,
        url,
        sha256: done.digest,
        size: Some(done.size),
        file_name: npm::tarball_file_name(&entry.name, &entry.version),
        media_type: "application/gzip".into(),
        verified_by: verified_by.into(),
        annotations,
        inline: None,
    })
}

/// The file's integrity, with the algorithm of `like`.
fn integrity_of(path: &Path, like: &Integrity) -> std::io::Result<Integrity> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = like.hasher();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(resolved: Option<&str>) -> LockEntry {
        LockEntry {
            key: "node_modules/@s/p".into(),
            name: "@s/p".into(),
            version: "1.0.0".into(),
            resolved: resolved.map(Into::into),
            integrity: None,
            line: 1,
        }
    }

    #[test]
    fn tarball_urls_follow_the_configured_registry() {
        let source = |registry: &str| NpmSource {
            lock: "package-lock.json".into(),
            registry: registry.into(),
            allow_unhashed: false,
        };
        let public = "https://registry.npmjs.org/@s/p/-/p-1.0.0.tgz";
        assert_eq!(
            tarball_url(&source(DEFAULT_NPM_URL), &entry(Some(public))),
            public
        );
        assert_eq!(
            tarball_url(&source("https://proxy.site/npm/"), &entry(Some(public))),
            "https://proxy.site/npm/@s/p/-/p-1.0.0.tgz"
        );
        assert_eq!(
            tarball_url(
                &source("https://proxy.site/npm"),
                &entry(Some("http://other/x.tgz"))
            ),
            "http://other/x.tgz"
        );
        assert_eq!(
            tarball_url(&source("http://127.0.0.1:9"), &entry(None)),
            "http://127.0.0.1:9/@s/p/-/p-1.0.0.tgz"
        );
    }
}
