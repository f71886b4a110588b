//! `[[cargo]]`: every registry crate a `Cargo.lock` names. The lock's `checksum` is the
//! `.crate`'s sha256, so nothing is downloaded at lock time: `bundle create` fetches each
//! file and refuses bytes with another digest, as for every pinned file.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};

use airlock_bundle::ArtifactKind;
use airlock_oci::Digest;
use airlock_packages::cargo::{self, LockEntry};
use airlock_packages::LockFileError;

use super::{Ctx, FetchError};
use crate::fetch::python::HASHED_ON_FIRST_FETCH;
use crate::lock::LockedFile;
use crate::sources::CargoSource;

/// The crate's exact name (the artifact's name is lowercased for the OCI repository).
pub const CARGO_NAME: &str = "vnd.airlock.cargo.name";

pub(super) async fn resolve(
    ctx: &Ctx,
    source: &CargoSource,
    lock_path: &Path,
    text: &str,
) -> Result<Vec<LockedFile>, FetchError> {
    let entries =
        cargo::parse_cargo_lock(text, lock_path, &source.sources(), source.allow_unhashed)?;
    futures_util::stream::iter(&entries)
        .map(|entry| locked_crate(ctx, source, lock_path, entry))
        .buffered(ctx.options.jobs.max(1))
        .try_collect()
        .await
}

async fn locked_crate(
    ctx: &Ctx,
    source: &CargoSource,
    lock_path: &Path,
    entry: &LockEntry,
) -> Result<LockedFile, FetchError> {
    let checksum = entry.checksum.as_deref().unwrap_or_default();
    let url = cargo::download_url(&source.download_url, &entry.name, &entry.version, checksum);
    let file_name = cargo::crate_file_name(&entry.name, &entry.version);
    let mut annotations = BTreeMap::from([(CARGO_NAME.to_string(), entry.name.clone())]);
    let (sha256, size, verified_by) = match &entry.checksum {
        Some(hex) => {
            let digest = Digest::from_hex(hex).map_err(|e| {
                FetchError::LockFile(LockFileError::new(
                    lock_path,
                    Some(entry.line),
                    e.to_string(),
                ))
            })?;
            (digest, None, "lock-hash")
        }
        None => {
            annotations.insert(HASHED_ON_FIRST_FETCH.to_string(), "true".into());
            let label = format!("cargo-crate {file_name}");
            let done = ctx.http.download(&url, &label, None, &ctx.cache).await?;
            (done.digest, Some(done.size), "first-fetch")
        }
    };
    tracing::info!(krate = %entry.name, version = %entry.version, verified_by, "resolved");
    Ok(LockedFile {
        kind: ArtifactKind::CargoCrate,
        name: entry.name.to_ascii_lowercase(),
        version: entry.version.clone(),
        platform: None,
        url,
        sha256,
        size,
        file_name,
        media_type: "application/gzip".into(),
        verified_by: verified_by.into(),
        annotations,
        inline: None,
    })
}
