//! Import: one streaming pass from a signed bundle into the store, committed atomically.
//!
//! Order matters. The head (manifest and signatures) is read and judged first: trust,
//! replay (an import already done), expiry, rollback, a delta's base, and free space; a
//! refusal reads nothing more. Then every entry is verified while it is written into
//! staging inside the store and renamed into place only once its digest matched. The
//! metadata that makes content visible to clients is written last, in one atomic batch,
//! after the whole stream checked out. A failure or a kill at any point leaves what clients
//! see exactly as it was; blobs already published are reused by the next attempt.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use airlock_bundle::format::{self, BundleManifest};
use airlock_bundle::volumes;
use airlock_bundle::{BundleError, BundleReader, EntryKind, EntryLabels, Progress, SignatureFile, Trust, WritebackFile};
use airlock_oci::{is_index_media_type, Digest, ManifestLinks, MAX_MANIFEST_SIZE, MEDIA_TYPE_EMPTY};
use serde::Deserialize;

use crate::store::{ArtifactRecord, Changes, HistoryRecord, ManifestRecord, Owner, Store, StoreError};

/// Space kept free beyond the blobs themselves, for metadata and the filesystem's own needs.
const FREE_SPACE_MARGIN: u64 = 64 << 20;

pub struct ImportOptions<'a> {
    /// The pinned site anchor and whatever the importer added (see `anchor::requirements`).
    pub trust: &'a dyn Trust,
    pub detached: &'a [(SignatureFile, String)],
    pub allow_downgrade: bool,
    pub allow_expired: bool,
    pub actor: String,
    pub progress: &'a dyn Progress,
}

#[derive(Debug)]
pub enum ImportOutcome {
    Imported { record: HistoryRecord, written_bytes: u64, reused_blobs: usize },
    AlreadyImported { record: HistoryRecord },
}

/// A tag an import would move away from the channel that owns it.
#[derive(Debug, thiserror::Error)]
#[error("bundle {bundle_id} (channel `{channel}`, sequence {sequence}) would move {repository}:{tag} to {digest}, but that tag belongs to channel `{owner_channel}` (sequence {owner_sequence}{owner_bundle}); a tag moves only forward on the channel that brought it. Import it through its own channel, or pass --allow-downgrade to move it anyway (recorded)")]
pub struct TagMove {
    pub bundle_id: String,
    pub channel: String,
    pub sequence: u64,
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    pub owner_channel: String,
    pub owner_sequence: u64,
    /// `, bundle ID` when known.
    pub owner_bundle: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the bundle {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("bundle {bundle_id} has sequence {sequence} on channel `{channel}`, older than sequence {highest} already imported there (rollback); pass --allow-downgrade to import it anyway (recorded)")]
    Downgrade { bundle_id: String, channel: String, sequence: u64, highest: u64 },
    #[error("bundle {bundle_id} has sequence {sequence} on channel `{channel}`, the sequence of bundle {other} already imported there; a sequence names one bundle per channel, so this is a different bundle claiming it (replay or rollback): ask the connected side for a bundle with a higher sequence, or pass --allow-downgrade to import it anyway (recorded)")]
    SameSequence { bundle_id: String, channel: String, sequence: u64, other: String },
    #[error("{0}")]
    TagOwned(Box<TagMove>),
    #[error("bundle {bundle_id} expired at {expires}; ask the connected side for a fresh bundle, or pass --allow-expired to import it anyway (recorded)")]
    Expired { bundle_id: String, expires: String },
    #[error("delta bundle {bundle_id} needs {count} blobs from its base bundle {base_id} (sequence {base_sequence}) that this mirror does not have, the first being {first}; import the base bundle first")]
    MissingBase { bundle_id: String, base_id: String, base_sequence: u64, count: usize, first: Digest },
    #[error("not enough free space for bundle {bundle_id}: it needs {needed} bytes (with a margin) and the store has {free} free")]
    NoSpace { bundle_id: String, needed: u64, free: u64 },
    #[error("cannot write into the content store: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Volumes(volumes::VolumeError),
    #[error("the volume list {path} is not trusted: {source}")]
    VolumeList { path: String, source: airlock_bundle::TrustError },
    #[error("the volumes hold bundle manifest {found}, but the signed volume list names {listed}")]
    WrongBundle { listed: Digest, found: Digest },
}

pub fn import_file(store: &Store, path: &Path, options: &ImportOptions) -> Result<ImportOutcome, ImportError> {
    let source = path.display().to_string();
    if path.to_string_lossy().ends_with(volumes::VOLUMES_SUFFIX) {
        // Volumes are streamed in order, each checked against the signed list as it ends.
        return import_from(store, &source, options, || {
            let loaded = volumes::load_list(path).map_err(ImportError::Volumes)?;
            let mut signatures = loaded.signatures.clone();
            signatures.extend(options.detached.iter().cloned());
            options.trust.check(&loaded.bytes, &signatures).map_err(|e| ImportError::VolumeList { path: source.clone(), source: e })?;
            Ok((volumes::VolumeChain::new(path, &loaded.list.volumes), Some(loaded.list.manifest_digest)))
        });
    }
    import_from(store, &source, options, || {
        let file = File::open(path).map_err(|e| ImportError::Open { path: source.clone(), source: e })?;
        Ok((file, None))
    })
}

/// Imports a bundle read from `input`; `source` names it in history and messages.
pub fn import(store: &Store, input: impl io::Read, source: &str, options: &ImportOptions) -> Result<ImportOutcome, ImportError> {
    import_from(store, source, options, || Ok((input, None)))
}

/// Runs an import and records its outcome; `open` yields the stream and, for volumes, the
/// digest the signed volume list gives the bundle manifest.
fn import_from<R: io::Read>(
    store: &Store,
    source: &str,
    options: &ImportOptions,
    open: impl FnOnce() -> Result<(R, Option<Digest>), ImportError>,
) -> Result<ImportOutcome, ImportError> {
    let _exclusive = store.exclusive.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut record = HistoryRecord {
        id: store.next_id()?,
        time: format::format_time(SystemTime::now()),
        actor: options.actor.clone(),
        action: "import".into(),
        result: "refused".into(),
        bundle_id: None,
        channel: None,
        sequence: None,
        signers: Vec::new(),
        overrides: Vec::new(),
        source: Some(source.to_string()),
        message: None,
    };
    let result = open().and_then(|(input, listed)| run(store, input, listed, options, &mut record));
    if let Err(error) = &result {
        // The refusal itself is history: who tried to bring what in, and why it failed.
        record.message = Some(error.to_string());
        if let Err(e) = store.record(&record) {
            tracing::error!(error = %e, "cannot record the failed import in history");
        }
    }
    result
}

fn run(
    store: &Store,
    input: impl io::Read,
    listed: Option<Digest>,
    options: &ImportOptions,
    record: &mut HistoryRecord,
) -> Result<ImportOutcome, ImportError> {
    let mut reader = BundleReader::open(input)?;
    if let Some(listed) = listed {
        let found = Digest::of(reader.manifest_bytes());
        if found != listed {
            return Err(ImportError::WrongBundle { listed, found });
        }
    }
    let manifest = reader.manifest().clone();
    record.bundle_id = Some(manifest.bundle_id.clone());
    record.channel = Some(manifest.channel.clone());
    record.sequence = Some(manifest.sequence);

    let signers = reader.check_signatures(options.trust, options.detached)?;
    record.signers = signers.iter().map(|s| s.key_id.to_string()).collect();

    if let Some(previous) = store.import_of(&manifest.bundle_id)? {
        record.result = "already-imported".into();
        record.message = Some(format!("already imported at {} by {}", previous.time, previous.actor));
        store.record(record)?;
        return Ok(ImportOutcome::AlreadyImported { record: previous });
    }
    check_freshness(store, &manifest, options, record)?;
    check_base(store, &manifest)?;
    // Saturating: the parsed manifest's sizes fit in a u64, the margin on top may not.
    let needed = manifest
        .blobs
        .iter()
        .filter(|b| !store.blobs.has(&b.digest, b.size))
        .fold(FREE_SPACE_MARGIN, |total, b| total.saturating_add(b.size));
    let free = store.blobs.free_space().map_err(ImportError::Write)?;
    if needed > free {
        return Err(ImportError::NoSpace { bundle_id: manifest.bundle_id.clone(), needed, free });
    }

    record.result = "failed".into();
    let Streamed { manifests, written_bytes, reused_blobs } = stream_entries(store, &mut reader, options.progress)?;
    reader.finish()?;

    record.result = "imported".into();
    record.message = Some(format!(
        "{} artifacts, {} blobs ({} bytes written, {} already present)",
        manifest.artifacts.len(),
        manifest.blobs.len(),
        written_bytes,
        reused_blobs
    ));
    store.commit(changes_for(store, &manifest, &manifests, record)?)?;
    Ok(ImportOutcome::Imported { record: record.clone(), written_bytes, reused_blobs })
}

fn check_freshness(store: &Store, manifest: &BundleManifest, options: &ImportOptions, record: &mut HistoryRecord) -> Result<(), ImportError> {
    if manifest.expires_time().map_err(BundleError::from)? <= SystemTime::now() {
        if !options.allow_expired {
            return Err(ImportError::Expired { bundle_id: manifest.bundle_id.clone(), expires: manifest.expires.clone() });
        }
        record.overrides.push(format!("expired at {}", manifest.expires));
    }
    let mut refuse = |error: ImportError, overridden: String| {
        if !options.allow_downgrade {
            return Err(error);
        }
        tracing::warn!(bundle = %manifest.bundle_id, actor = %options.actor, "override: {overridden}");
        record.overrides.push(overridden);
        Ok(())
    };
    if let Some(head) = store.channel_head(&manifest.channel)? {
        // The bundle that set the head is caught earlier as already imported, so an equal
        // sequence here is always another bundle.
        if manifest.sequence <= head.sequence {
            let (error, overridden) = if manifest.sequence < head.sequence {
                let error = ImportError::Downgrade {
                    bundle_id: manifest.bundle_id.clone(),
                    channel: manifest.channel.clone(),
                    sequence: manifest.sequence,
                    highest: head.sequence,
                };
                (error, format!("downgrade from sequence {} to {}", head.sequence, manifest.sequence))
            } else {
                let other = head.bundle_id.clone().unwrap_or_else(|| "(recorded before bundle ids were)".into());
                let overridden = format!("second bundle at sequence {} (first: {other})", manifest.sequence);
                let error = ImportError::SameSequence {
                    bundle_id: manifest.bundle_id.clone(),
                    channel: manifest.channel.clone(),
                    sequence: manifest.sequence,
                    other,
                };
                (error, overridden)
            };
            refuse(error, overridden)?;
        }
    }
    // Tags are shared between channels: a tag moves only on the channel that set it, and
    // only forward (the channel check above cannot see another channel's tags).
    for artifact in &manifest.artifacts {
        let current = store.resolve_tag(&artifact.repository, &artifact.tag)?;
        if current.is_none() || current == Some(artifact.digest) {
            continue;
        }
        let Some(owner) = store.tag_owner(artifact.kind, &artifact.repository, &artifact.tag)? else { continue };
        if owner.channel == manifest.channel && owner.sequence < manifest.sequence {
            continue;
        }
        let owner_bundle = owner.bundle_id.as_ref().map(|id| format!(", bundle {id}")).unwrap_or_default();
        let overridden = format!(
            "moved {}:{} from channel `{}` sequence {} to channel `{}` sequence {}",
            artifact.repository, artifact.tag, owner.channel, owner.sequence, manifest.channel, manifest.sequence
        );
        let error = ImportError::TagOwned(Box::new(TagMove {
            bundle_id: manifest.bundle_id.clone(),
            channel: manifest.channel.clone(),
            sequence: manifest.sequence,
            repository: artifact.repository.clone(),
            tag: artifact.tag.clone(),
            digest: artifact.digest,
            owner_channel: owner.channel,
            owner_sequence: owner.sequence,
            owner_bundle,
        }));
        refuse(error, overridden)?;
    }
    Ok(())
}

fn check_base(store: &Store, manifest: &BundleManifest) -> Result<(), ImportError> {
    let Some(base) = &manifest.base else { return Ok(()) };
    let mut missing = Vec::new();
    for blob in &manifest.base_blobs {
        if store.visible_blob(&blob.digest)?.is_none() || !store.blobs.has(&blob.digest, blob.size) {
            missing.push(blob.digest);
        }
    }
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(ImportError::MissingBase {
            bundle_id: manifest.bundle_id.clone(),
            base_id: base.bundle_id.clone(),
            base_sequence: base.sequence,
            count: missing.len(),
            first: *first,
        }),
    }
}

/// What streaming a bundle's entries produced.
struct Streamed {
    /// The bytes of every manifest seen, to index them.
    manifests: HashMap<Digest, Vec<u8>>,
    written_bytes: u64,
    reused_blobs: usize,
}

/// Streams every entry: blobs into staging then into place, everything verified.
fn stream_entries(store: &Store, reader: &mut BundleReader<impl io::Read>, progress: &dyn Progress) -> Result<Streamed, ImportError> {
    let media_types: HashMap<Digest, String> = reader
        .manifest()
        .blobs
        .iter()
        .filter_map(|b| b.media_type.clone().map(|m| (b.digest, m)))
        .collect();
    progress.start(reader.manifest().total_blob_bytes());
    let labels = EntryLabels::new(reader.manifest());
    let mut manifests = HashMap::new();
    let (mut written, mut reused) = (0u64, 0usize);
    while let Some(entry) = reader.next_entry()? {
        progress.entry(&labels.label(&entry));
        let capture = entry.kind == EntryKind::Blob && media_types.contains_key(&entry.digest) && entry.size <= MAX_MANIFEST_SIZE;
        let mut captured = Vec::new();
        if entry.kind != EntryKind::Blob || store.blobs.has(&entry.digest, entry.size) {
            // Still read and checked, but not written twice.
            let mut sink = Tee { file: io::sink(), capture: capture.then_some(&mut captured), progress };
            reader.copy_entry(&mut sink)?;
            if entry.kind == EntryKind::Blob {
                reused += 1;
            }
        } else {
            let staged = store.blobs.staging_file().map_err(ImportError::Write)?;
            let mut sink = Tee { file: WritebackFile::new(staged.as_file()), capture: capture.then_some(&mut captured), progress };
            // The reader checks the digest after the last byte; only then is it published.
            reader.copy_entry(&mut sink)?;
            store.blobs.publish(staged, &entry.digest).map_err(ImportError::Write)?;
            written += entry.size;
        }
        if capture {
            manifests.insert(entry.digest, captured);
        }
    }
    progress.finish();
    Ok(Streamed { manifests, written_bytes: written, reused_blobs: reused })
}

struct Tee<'a, W> {
    file: W,
    capture: Option<&'a mut Vec<u8>>,
    progress: &'a dyn Progress,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(capture) = self.capture.as_mut() {
            capture.extend_from_slice(&buf[..n]);
        }
        self.progress.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestExtras {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Describes a manifest from its bytes, as the store keeps it.
pub fn manifest_record(media_type: &str, bytes: &[u8]) -> Result<ManifestRecord, serde_json::Error> {
    let links: ManifestLinks = serde_json::from_slice(bytes)?;
    let extras: ManifestExtras = serde_json::from_slice(bytes)?;
    let artifact_type = extras
        .artifact_type
        .or_else(|| links.config.as_ref().map(|c| c.media_type.clone()).filter(|m| m != MEDIA_TYPE_EMPTY && !is_index_media_type(media_type)));
    Ok(ManifestRecord {
        media_type: media_type.to_string(),
        size: bytes.len() as u64,
        artifact_type,
        annotations: extras.annotations,
        subject: links.subject.as_ref().map(|s| s.digest),
        children: links.children().map(|d| d.digest).collect(),
    })
}

fn changes_for(
    store: &Store,
    manifest: &BundleManifest,
    captured: &HashMap<Digest, Vec<u8>>,
    record: &HistoryRecord,
) -> Result<Changes, ImportError> {
    let media_types: HashMap<Digest, &str> =
        manifest.blobs.iter().filter_map(|b| b.media_type.as_deref().map(|m| (b.digest, m))).collect();
    let describe = |digest: &Digest| -> Result<Option<ManifestRecord>, ImportError> {
        if let (Some(bytes), Some(media_type)) = (captured.get(digest), media_types.get(digest)) {
            let described = manifest_record(media_type, bytes).map_err(|e| BundleError::Inconsistent {
                what: digest.layout_path(),
                message: e.to_string(),
            })?;
            return Ok(Some(described));
        }
        Ok(store.manifest(digest)?)
    };
    let importer = Owner { channel: manifest.channel.clone(), sequence: manifest.sequence, bundle_id: Some(manifest.bundle_id.clone()) };
    let mut changes = Changes::default();
    for blob in &manifest.blobs {
        changes.blob(&blob.digest, blob.size);
    }
    for artifact in &manifest.artifacts {
        // The root and, for an index, every manifest below it belong to the repository.
        let mut stack = vec![artifact.digest];
        while let Some(digest) = stack.pop() {
            let Some(described) = describe(&digest)? else { continue };
            stack.extend(described.children.iter().filter(|c| media_types.contains_key(c) || captured.contains_key(c)));
            changes.manifest(&artifact.repository, &digest, &described);
        }
        // Re-delivering what a tag already points at does not take it over from its channel.
        let unchanged = store.resolve_tag(&artifact.repository, &artifact.tag)? == Some(artifact.digest);
        let owned_elsewhere = store
            .tag_owner(artifact.kind, &artifact.repository, &artifact.tag)?
            .is_some_and(|owner| owner.channel != manifest.channel);
        if !(unchanged && owned_elsewhere) {
            changes.tag_owner(&artifact.repository, &artifact.tag, &importer);
        }
        changes.tag(&artifact.repository, &artifact.tag, &artifact.digest);
        changes.artifact(&ArtifactRecord {
            artifact: artifact.clone(),
            bundle_id: manifest.bundle_id.clone(),
            imported: record.time.clone(),
        });
    }
    // A downgrade imported by override does not lower the head.
    match store.channel_head(&manifest.channel)? {
        Some(head) if head.sequence >= manifest.sequence => {}
        _ => changes.channel(&importer),
    }
    changes.import(&manifest.bundle_id, record);
    changes.history(record);
    Ok(changes)
}
