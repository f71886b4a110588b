//! Progress reporting for long work. The library reports; the CLI decides how to show it.

use std::collections::HashMap;

use airlock_oci::Digest;

use crate::format::BundleManifest;
use crate::read::{EntryInfo, EntryKind};

pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    /// The entry now being read, as [`EntryLabels`] names it.
    fn entry(&self, _label: &str) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// Names a bundle's entries for a person watching an import or a verify: the artifact whose
/// manifest a blob is, else the blob's short digest and size (layers come in digest order,
/// before the manifests that would tie them to an artifact).
pub struct EntryLabels {
    artifacts: HashMap<Digest, String>,
}

impl EntryLabels {
    pub fn new(manifest: &BundleManifest) -> EntryLabels {
        let artifacts = manifest
            .artifacts
            .iter()
            .map(|a| (a.digest, format!("{} {}:{}", a.kind.as_str(), a.name, a.version)))
            .collect();
        EntryLabels { artifacts }
    }

    pub fn label(&self, entry: &EntryInfo) -> String {
        match entry.kind {
            EntryKind::Blob => match self.artifacts.get(&entry.digest) {
                Some(artifact) => artifact.clone(),
                None => {
                    let hex = entry.digest.to_string();
                    let short = hex.split_once(':').map_or(hex.as_str(), |(_, h)| h);
                    format!("blob {}… ({})", &short[..12.min(short.len())], human_bytes(entry.size))
                }
            },
            EntryKind::OciLayout | EntryKind::Index => entry.name.clone(),
        }
    }
}

/// `1.5 GiB`, `320 KiB`, `12 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
