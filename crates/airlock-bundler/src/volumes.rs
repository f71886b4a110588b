//! Packing a bundle as volumes: the signed bundle stream cut by [`VolumeWriter`], then the
//! signed volume list beside it.

use std::io;
use std::path::{Path, PathBuf};

use airlock_bundle::volumes::{signature_path, volume_list_path, VolumeList, VolumeWriter, VOLUME_LIST_VERSION};
use airlock_bundle::BundleManifest;
use airlock_oci::Digest;

use crate::pack::{self, PackError, PackOptions, Plan};

pub struct PackedVolumes {
    pub manifest: BundleManifest,
    pub list: VolumeList,
    pub list_path: PathBuf,
    pub manifest_copy_path: PathBuf,
}

/// Signs the bundle and writes it as volumes of `volume_size` bytes, then the signed volume
/// list. Nothing is renamed into place until every volume is written and synced.
pub fn write_volumes(plan: &Plan, options: &PackOptions, bundle: &Path, volume_size: u64) -> Result<PackedVolumes, PackError> {
    let signed = pack::sign(plan, options)?;
    let write_err = |source| PackError::Write { path: bundle.to_path_buf(), source };
    let writer = VolumeWriter::new(bundle, volume_size);
    let writer = pack::write_archive(plan, options, &signed, io::BufWriter::with_capacity(1 << 20, writer), bundle)?;
    let writer = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    let volumes = writer.persist().map_err(write_err)?;
    let m = &signed.manifest;
    let list = VolumeList {
        format_version: VOLUME_LIST_VERSION,
        bundle_id: m.bundle_id.clone(),
        name: m.name.clone(),
        channel: m.channel.clone(),
        sequence: m.sequence,
        manifest_digest: Digest::of(&signed.manifest_bytes),
        volume_size,
        total_size: volumes.iter().map(|v| v.size).sum(),
        volumes,
    };
    let mut list_bytes = serde_json::to_vec_pretty(&list).expect("the list serializes");
    list_bytes.push(b'\n');
    let list_path = volume_list_path(bundle);
    let comment = format!("airlock volumes {} name={} channel={} sequence={} volumes={}", m.bundle_id, m.name, m.channel, m.sequence, list.volumes.len());
    for (i, key) in options.keys.iter().enumerate() {
        let signature = key.sign(&list_bytes, &comment, &format!("signature from airlock secret key {}", key.id));
        let path = signature_path(&list_path, i + 1);
        std::fs::write(&path, signature.text.as_bytes()).map_err(|source| PackError::Write { path, source })?;
    }
    std::fs::write(&list_path, &list_bytes).map_err(|source| PackError::Write { path: list_path.clone(), source })?;
    let manifest_copy_path = pack::manifest_copy_path(bundle);
    std::fs::write(&manifest_copy_path, &signed.manifest_bytes)
        .map_err(|source| PackError::Write { path: manifest_copy_path.clone(), source })?;
    Ok(PackedVolumes { manifest: signed.manifest, list, list_path, manifest_copy_path })
}

