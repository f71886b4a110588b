//! `mirror verify` and `mirror gc`.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::time::{Duration, SystemTime};

use airlock_oci::{hash_reader, Digest};

use crate::store::{Changes, Store, StoreError};

/// Blobs younger than this are kept by gc even if nothing references them yet: a client
/// pushing an image uploads its blobs before the manifest that references them.
pub const GC_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub bytes: u64,
    /// Blobs whose content does not match their name, or that are missing.
    pub corrupt: Vec<(Digest, String)>,
}

/// Re-hashes every blob clients can fetch.
pub fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    for (digest, size) in store.visible_blobs()? {
        report.checked += 1;
        let path = store.blobs.path(&digest);
        let problem = match File::open(&path).and_then(hash_reader) {
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
            Ok((actual, len)) if actual != digest || len != size => {
                Some(format!("content hashes to {actual} ({len} bytes; {size} expected)"))
            }
            Ok(_) => None,
        };
        report.bytes += size;
        if let Some(problem) = problem {
            report.corrupt.push((digest, problem));
        }
    }
    Ok(report)
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: Vec<(Digest, u64)>,
    pub kept: usize,
}

/// Every manifest and blob reachable from a manifest some repository holds, with one
/// repository that reaches it (what gc keeps, and what a pushed blob delete must not remove).
pub fn reachable(store: &Store) -> Result<HashMap<Digest, String>, StoreError> {
    let manifests = store.all_manifests()?;
    let by_digest: HashMap<Digest, &crate::store::ManifestRecord> = manifests.iter().map(|(d, r)| (*d, r)).collect();
    let mut live = HashMap::new();
    let mut stack = Vec::new();
    for repo in store.repositories()? {
        for (digest, _) in &manifests {
            if store.repo_has_manifest(&repo, digest)? {
                stack.push((*digest, repo.clone()));
            }
        }
    }
    while let Some((digest, repo)) = stack.pop() {
        if live.contains_key(&digest) {
            continue;
        }
        if let Some(record) = by_digest.get(&digest) {
            stack.extend(record.children.iter().map(|child| (*child, repo.clone())));
        }
        live.insert(digest, repo);
    }
    Ok(live)
}

/// Removes blobs that no manifest in any repository references. Safe while serving:
/// imports wait, and a download already under way keeps its open file.
pub fn gc(store: &Store, dry_run: bool) -> Result<GcReport, StoreError> {
    let _exclusive = store.exclusive.lock().unwrap_or_else(|p| p.into_inner());
    let live = reachable(store)?;
    let manifests: BTreeSet<Digest> = store.all_manifests()?.into_iter().map(|(d, _)| d).collect();
    let now = SystemTime::now();
    let mut report = GcReport::default();
    let mut changes = Changes::default();
    for (digest, size) in store.blobs.list()? {
        if live.contains_key(&digest) {
            report.kept += 1;
            continue;
        }
        let young = std::fs::metadata(store.blobs.path(&digest))
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < GC_GRACE);
        if young && store.visible_blob(&digest)?.is_some() && !manifests.contains(&digest) {
            report.kept += 1;
            continue;
        }
        report.removed.push((digest, size));
        changes.remove_blob(&digest);
        for repo in store.blob_links(&digest)? {
            changes.unlink_blob(&digest, &repo);
        }
        if manifests.contains(&digest) {
            changes.remove_manifest_record(&digest);
        }
    }
    if !dry_run {
        // Metadata first: once a blob is invisible, deleting its file cannot break a client.
        store.commit(changes)?;
        for (digest, _) in &report.removed {
            store.blobs.remove(digest)?;
        }
    }
    Ok(report)
}
