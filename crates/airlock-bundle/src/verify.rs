//! `bundle verify`: signatures, then every entry, in one streaming pass, writing nothing.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::format::BundleManifest;
use crate::progress::{EntryLabels, Progress};
use crate::read::{BundleError, BundleReader, Summary};
use crate::signing::SignatureFile;
use crate::trust::{Signer, TrustPolicy};

pub struct Report {
    pub manifest: BundleManifest,
    pub signers: Vec<Signer>,
    pub summary: Summary,
    pub expired: bool,
}

pub fn verify_file(
    path: &Path,
    policy: &TrustPolicy,
    detached: &[(SignatureFile, String)],
    progress: &dyn Progress,
) -> Result<Report, BundleError> {
    let file = File::open(path).map_err(|source| BundleError::Read { offset: 0, source })?;
    check_stream(BundleReader::open(file)?, policy, detached, progress)
}

/// Signatures first (nothing past the head is read for an untrusted bundle), then every
/// entry, into nothing.
fn check_stream<R: std::io::Read>(
    mut reader: BundleReader<R>,
    policy: &TrustPolicy,
    detached: &[(SignatureFile, String)],
    progress: &dyn Progress,
) -> Result<Report, BundleError> {
    let signers = reader.check_signatures(policy, detached)?;
    let manifest = reader.manifest().clone();
    progress.start(manifest.total_blob_bytes());
    let mut sink = ProgressSink { progress };
    let labels = EntryLabels::new(&manifest);
    while let Some(entry) = reader.next_entry()? {
        progress.entry(&labels.label(&entry));
        reader.copy_entry(&mut sink)?;
    }
    let summary = reader.finish()?;
    progress.finish();
    let expired = manifest.expires_time()? <= SystemTime::now();
    Ok(Report { manifest, signers, summary, expired })
}

/// Discards bytes, counting them for the progress bar.
struct ProgressSink<'a> {
    progress: &'a dyn Progress,
}

impl Write for ProgressSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.progress.advance(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VolumesError {
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error("the volume list {path}: {source}")]
    ListTrust { path: std::path::PathBuf, source: crate::trust::TrustError },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the volumes hold bundle {found} but the signed volume list names {listed}")]
    WrongBundle { listed: String, found: String },
}

/// Verifies a bundle cut into volumes: the volume list's signatures first, then every volume
/// streamed in order through the bundle reader (never joined on disk), each volume checked
/// against the list as it ends. A damaged or missing volume is named.
pub fn verify_volumes(
    list_path: &Path,
    policy: &TrustPolicy,
    detached: &[(SignatureFile, String)],
    progress: &dyn Progress,
) -> Result<(Report, crate::volumes::VolumeList), VolumesError> {
    use crate::volumes::{load_list, VolumeChain};
    let loaded = load_list(list_path)?;
    let mut signatures = loaded.signatures.clone();
    signatures.extend(detached.iter().cloned());
    policy
        .check(&loaded.bytes, &signatures)
        .map_err(|source| VolumesError::ListTrust { path: list_path.to_path_buf(), source })?;
    let mut chain = VolumeChain::new(list_path, &loaded.list.volumes);
    let result = (|| {
        let reader = BundleReader::open(&mut chain)?;
        let found = airlock_oci::Digest::of(reader.manifest_bytes());
        if found != loaded.list.manifest_digest {
            return Err(VolumesError::WrongBundle { listed: loaded.list.manifest_digest.to_string(), found: found.to_string() });
        }
        Ok(check_stream(reader, policy, detached, progress)?)
    })();
    // A volume that failed its check is the cause to name; otherwise read what is left of the
    // volumes, since a damaged volume may be what the decompressor tripped on.
    match result {
        Err(VolumesError::Bundle(BundleError::Read { source, .. }))
            if source.get_ref().is_some_and(|e| e.is::<crate::volumes::VolumeError>()) =>
        {
            let inner = source.into_inner().expect("checked above").downcast::<crate::volumes::VolumeError>().expect("checked above");
            Err(VolumesError::Volume(*inner))
        }
        Ok(report) => match chain.find_bad_volume() {
            Some(bad) => Err(bad.into()),
            None => Ok((report, loaded.list)),
        },
        Err(e) => Err(chain.find_bad_volume().map(VolumesError::from).unwrap_or(e)),
    }
}
