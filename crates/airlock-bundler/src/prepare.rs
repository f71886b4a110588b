//! From an offline manifest to a [`Plan`]: use (or make) the lock, fetch into the cache,
//! and add local sources. `bundle lock` and `bundle create` are thin wrappers over this.

use std::path::{Path, PathBuf};

use airlock_oci::Digest;
use crate::fetch::{FetchError, FetchOptions, FetchStats, Fetcher};
use crate::lock::{default_lock_path, Lock, LockError};
use crate::offline_manifest::OfflineManifest;
use crate::pack::{self, PackError, Plan};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

pub struct Prepared {
    pub plan: Plan,
    /// Which lock was used (`None` when the manifest has only local sources or was resolved
    /// on the fly).
    pub lock_path: Option<PathBuf>,
    pub stats: Option<FetchStats>,
}

/// sha256 of the manifest file as it is on disk: what a lock is tied to.
pub fn manifest_digest(path: &Path) -> Result<Digest, PrepareError> {
    let bytes = std::fs::read(path).map_err(|source| PrepareError::Read { path: path.to_path_buf(), source })?;
    Ok(Digest::of(&bytes))
}

/// Resolves every network source of the manifest (`bundle lock`).
pub fn resolve_lock(manifest_path: &Path, offline: &OfflineManifest, options: FetchOptions) -> Result<Lock, PrepareError> {
    let digest = manifest_digest(manifest_path)?;
    let fetcher = Fetcher::new(options)?;
    Ok(fetcher.resolve(offline, digest)?)
}

/// Builds the plan for `bundle create`: the lock given, else `M.lock` beside the manifest
/// when there is one, else a resolution made now; then fetch, then local sources.
pub fn prepare(
    manifest_path: &Path,
    offline: &OfflineManifest,
    lock_path: Option<&Path>,
    options: FetchOptions,
) -> Result<Prepared, PrepareError> {
    let base_dir = manifest_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let default_lock = default_lock_path(manifest_path);
    let lock_path = lock_path.map(Path::to_path_buf).or_else(|| default_lock.exists().then_some(default_lock));
    // A lock can carry more than the manifest names (`bundle lock --devcontainer`): such a
    // lock is used even when the manifest itself has only local sources.
    let carries_devcontainers = |path: &Path| Lock::load(path).map(|l| !l.devcontainers.is_empty()).unwrap_or(true);
    if !offline.has_remote_sources() && !lock_path.as_deref().is_some_and(carries_devcontainers) {
        return Ok(Prepared { plan: pack::plan(offline, &base_dir)?, lock_path: None, stats: None });
    }
    let digest = manifest_digest(manifest_path)?;
    let fetcher = Fetcher::new(options)?;
    let lock = match &lock_path {
        Some(path) => {
            let lock = Lock::load(path)?;
            lock.check_matches(path, manifest_path, digest)?;
            lock.check_package_locks(path, manifest_path, offline)?;
            lock.check_devcontainers(path, &base_dir)?;
            lock
        }
        None => fetcher.resolve(offline, digest)?,
    };
    let fetched = fetcher.fetch(&lock)?;
    let plan = pack::plan_with_fetched(offline, &base_dir, Some(&fetched))?;
    Ok(Prepared { plan, lock_path, stats: Some(fetcher.stats()) })
}
