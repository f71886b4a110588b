//! `bundle verify`: signatures, then every entry, in one streaming pass, writing nothing.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::format::BundleManifest;
use crate::progress::Progress;
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
    let mut reader = BundleReader::open(file)?;
    // Signatures first: nothing past the head is read for an untrusted bundle.
    let signers = reader.check_signatures(policy, detached)?;
    let manifest = reader.manifest().clone();
    progress.start(manifest.total_blob_bytes());
    let mut sink = ProgressSink { progress };
    while reader.next_entry()?.is_some() {
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
