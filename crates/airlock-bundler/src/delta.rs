//! Delta bundles: built against the manifest kept beside a previous bundle
//! (`NAME.airlock-bundle.json`), they leave out every blob the base carried (or itself
//! referenced from its own base) while still describing every artifact. The mirror refuses a
//! delta whose base blobs it does not have.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock_bundle::format::BaseBundle;
use airlock_bundle::{BlobRecord, BundleManifest, FormatError};
use airlock_oci::Digest;

use crate::pack::Plan;

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("cannot read the base bundle manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a bundle manifest (pass the NAME.airlock-bundle.json kept beside the previous bundle): {source}")]
    Parse { path: PathBuf, source: FormatError },
    #[error("the base bundle {path} is on channel `{base}` but this bundle is on `{this}`; a delta must stay on its channel")]
    Channel { path: PathBuf, base: String, this: String },
    #[error("the base bundle {path} has sequence {base}, not lower than this bundle's {this}")]
    Sequence { path: PathBuf, base: u64, this: u64 },
}

#[derive(Clone, Debug)]
pub struct Delta {
    pub base: BaseBundle,
    /// Blobs the artifacts need that the base carried.
    pub base_blobs: Vec<BlobRecord>,
    /// Bytes left out.
    pub saved_bytes: u64,
}

/// The base as read from disk.
pub struct Base {
    pub path: PathBuf,
    pub manifest: BundleManifest,
    pub digest: Digest,
}

pub fn load_base(path: &Path) -> Result<Base, DeltaError> {
    let bytes = std::fs::read(path).map_err(|source| DeltaError::Read { path: path.to_path_buf(), source })?;
    let manifest = BundleManifest::parse(&bytes).map_err(|source| DeltaError::Parse { path: path.to_path_buf(), source })?;
    Ok(Base { path: path.to_path_buf(), manifest, digest: Digest::of(&bytes) })
}

/// Removes from the plan every blob the base shipped (or relied on from its own base).
pub fn apply(plan: &mut Plan, base: &Base, channel: &str, sequence: u64) -> Result<(), DeltaError> {
    let m = &base.manifest;
    if m.channel != channel {
        return Err(DeltaError::Channel { path: base.path.clone(), base: m.channel.clone(), this: channel.to_string() });
    }
    if m.sequence >= sequence {
        return Err(DeltaError::Sequence { path: base.path.clone(), base: m.sequence, this: sequence });
    }
    let shipped: BTreeSet<Digest> = m.blobs.iter().chain(&m.base_blobs).map(|b| b.digest).collect();
    let mut base_blobs = Vec::new();
    let mut saved_bytes = 0;
    plan.blobs.retain(|digest, blob| {
        if !shipped.contains(digest) {
            return true;
        }
        base_blobs.push(BlobRecord { digest: *digest, size: blob.size, media_type: blob.media_type.clone() });
        saved_bytes += blob.size;
        false
    });
    plan.delta = Some(Delta {
        base: BaseBundle { bundle_id: m.bundle_id.clone(), channel: m.channel.clone(), sequence: m.sequence, manifest_digest: base.digest },
        base_blobs,
        saved_bytes,
    });
    Ok(())
}
