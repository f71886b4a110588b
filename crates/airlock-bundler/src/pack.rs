//! Packing: offline manifest → plan of blobs → signed, deterministic `.tar.zst`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airlock_bundle::format::{self, Layout, Tool};
use airlock_bundle::volumes::parent_dir;
use airlock_bundle::{annotation, file_artifact_manifest, guess_media_type, tag_for, ustar};
use airlock_bundle::{Artifact, ArtifactKind, BlobRecord, BundleManifest, FileRecord, Progress, SecretKey, WritebackFile};
use airlock_oci::{hash_reader, Descriptor, Digest, Hasher, ImageIndex};
use airlock_oci::{EMPTY_JSON, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST, OCI_LAYOUT_FILE};

use crate::fetch::Fetched;
use crate::layout::{Blob, BlobSet, BlobSource, LayoutError, OciLayout};
use crate::offline_manifest::{ManifestError, OfflineManifest, Source};
use crate::read_ahead::{Piece, ReadAhead};

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot read {path} ({what}): {source}")]
    ReadInput { path: PathBuf, what: String, source: io::Error },
    #[error("{path} does not hold the content it should: expected {expected_digest} ({expected_size} bytes), read {actual_digest} ({actual_size} bytes); the input is damaged or changed while it was packed, and no bundle was written")]
    ContentMismatch {
        path: PathBuf,
        expected_digest: Digest,
        expected_size: u64,
        actual_digest: Digest,
        actual_size: u64,
    },
    #[error("{repository}:{tag} is listed twice in the offline manifest")]
    DuplicateArtifact { repository: String, tag: String },
    #[error("the offline manifest lists no artifacts")]
    Empty,
    #[error("cannot write the bundle {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("no signing key given: a bundle must be signed")]
    NoKey,
    #[error("zstd level {level} is outside 1 to {MAX_COMPRESSION_LEVEL}: higher levels use a window the bundle reader refuses")]
    CompressionLevel { level: i32 },
}

/// Highest zstd level a bundle is written at. Levels above it use windows of 32 MiB and more,
/// beyond [`crate::read::MAX_WINDOW_LOG`], so the mirror would refuse what they make.
pub const MAX_COMPRESSION_LEVEL: i32 = 19;

/// Everything a bundle will contain, before it is signed and written.
pub struct Plan {
    pub artifacts: Vec<Artifact>,
    pub blobs: BlobSet,
    pub index_json: Vec<u8>,
    /// Set by [`crate::delta::apply`]: the base bundle and the blobs left out because it carried them.
    pub delta: Option<crate::delta::Delta>,
}

/// Resolves every artifact of an offline manifest to local content. Network sources
/// (`registry:` images and the fetcher tables) are left out: they come from
/// [`plan_with_fetched`].
pub fn plan(manifest: &OfflineManifest, base_dir: &Path) -> Result<Plan, PackError> {
    plan_with_fetched(manifest, base_dir, None)
}

/// Like [`plan`], adding what the fetcher put in the content cache.
pub fn plan_with_fetched(manifest: &OfflineManifest, base_dir: &Path, fetched: Option<&Fetched>) -> Result<Plan, PackError> {
    let mut builder = PlanBuilder::default();
    let mut layouts: HashMap<PathBuf, OciLayout> = HashMap::new();

    for image in &manifest.images {
        let Ok(Source::OciLayout { dir, reference }) = image.kind_source(base_dir) else {
            continue; // registry images come from the fetcher
        };
        if !layouts.contains_key(&dir) {
            layouts.insert(dir.clone(), OciLayout::open(&dir)?);
        }
        let layout = &layouts[&dir];
        let root = layout.resolve(reference.as_deref())?.clone();
        layout.collect(&root, &mut builder.blobs)?;
        builder.add_image(ArtifactKind::Image, root, &image.name, &image.tag, image.platform.clone(), &image.source);
    }

    let files = hash_files(manifest, base_dir)?;
    for (file, (path, digest, size)) in manifest.files.iter().zip(files) {
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let media_type = file
            .media_type
            .clone()
            .unwrap_or_else(|| guess_media_type(&file_name).to_string());
        builder.add_file(FileArtifact {
            kind: file.kind,
            name: &file.name,
            version: &file.version,
            platform: file.platform.as_deref(),
            upstream: &file.source,
            file_name,
            media_type,
            path,
            digest,
            size,
            extra_annotations: &BTreeMap::new(),
        });
    }

    if let Some(fetched) = fetched {
        for image in &fetched.images {
            for (digest, blob) in &image.blobs {
                builder.blobs.entry(*digest).or_insert_with(|| blob.clone());
            }
            let platform = (!image.locked.platforms.is_empty()).then(|| image.locked.platforms.join(","));
            builder.add_image(image.locked.kind, image.root.clone(), &image.locked.name, &image.locked.tag, platform, &image.locked.source);
        }
        for file in &fetched.files {
            let locked = &file.locked;
            builder.add_file(FileArtifact {
                kind: locked.kind,
                name: &locked.name,
                version: &locked.version,
                platform: locked.platform.as_deref(),
                upstream: &locked.url,
                file_name: locked.file_name.clone(),
                media_type: locked.media_type.clone(),
                path: file.path.clone(),
                digest: locked.sha256,
                size: file.size,
                extra_annotations: &locked.annotations,
            });
        }
    }
    builder.finish()
}

/// One file to carry as an OCI artifact.
pub struct FileArtifact<'a> {
    pub kind: ArtifactKind,
    pub name: &'a str,
    pub version: &'a str,
    pub platform: Option<&'a str>,
    pub upstream: &'a str,
    pub file_name: String,
    pub media_type: String,
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
    pub extra_annotations: &'a BTreeMap<String, String>,
}

/// Collects artifacts and their blobs, then names them in a sorted `index.json`.
#[derive(Default)]
pub struct PlanBuilder {
    pub blobs: BlobSet,
    artifacts: Vec<Artifact>,
    index_entries: Vec<Descriptor>,
}

impl PlanBuilder {
    /// Adds an image (or another artifact carried as its upstream manifest, such as a
    /// devcontainer feature) whose root and everything it references are already in `blobs`.
    pub fn add_image(&mut self, kind: ArtifactKind, root: Descriptor, name: &str, tag: &str, platform: Option<String>, upstream: &str) {
        let artifact = Artifact {
            kind,
            name: name.to_string(),
            version: tag.to_string(),
            platform,
            upstream: upstream.to_string(),
            repository: name.to_string(),
            tag: tag.to_string(),
            media_type: root.media_type.clone(),
            artifact_type: root.artifact_type.clone(),
            digest: root.digest,
            size: root.size,
        };
        self.index_entries.push(index_descriptor(root, &artifact));
        self.artifacts.push(artifact);
    }

    /// Adds a file as an artifact manifest with one layer.
    pub fn add_file(&mut self, file: FileArtifact) {
        let layer = Descriptor {
            media_type: file.media_type,
            digest: file.digest,
            size: file.size,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::from([(annotation::TITLE.to_string(), file.file_name)]),
            urls: None,
            data: None,
        };
        let mut annotations = file.extra_annotations.clone();
        annotations.extend([
            (annotation::KIND.to_string(), file.kind.to_string()),
            (annotation::NAME.to_string(), file.name.to_string()),
            (annotation::VERSION.to_string(), file.version.to_string()),
            (annotation::UPSTREAM.to_string(), file.upstream.to_string()),
        ]);
        if let Some(platform) = file.platform {
            annotations.insert(annotation::PLATFORM.to_string(), platform.to_string());
        }
        let manifest_bytes = file_artifact_manifest(file.kind, layer, annotations);
        let manifest_digest = Digest::of(&manifest_bytes);
        let manifest_size = manifest_bytes.len() as u64;
        self.blobs.entry(file.digest).or_insert(Blob { size: file.size, source: BlobSource::File(file.path), media_type: None });
        let empty = EMPTY_JSON.to_vec();
        self.blobs.entry(Digest::of(&empty)).or_insert(Blob {
            size: empty.len() as u64,
            source: BlobSource::Bytes(Arc::new(empty)),
            media_type: None,
        });
        self.blobs.insert(manifest_digest, Blob {
            size: manifest_size,
            source: BlobSource::Bytes(Arc::new(manifest_bytes)),
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_string()),
        });
        let artifact = Artifact {
            kind: file.kind,
            name: file.name.to_string(),
            version: file.version.to_string(),
            platform: file.platform.map(str::to_string),
            upstream: file.upstream.to_string(),
            repository: format!("{}/{}", file.kind, file.name),
            tag: tag_for(file.version, file.platform),
            media_type: MEDIA_TYPE_IMAGE_MANIFEST.to_string(),
            artifact_type: file.kind.artifact_type(),
            digest: manifest_digest,
            size: manifest_size,
        };
        let root = Descriptor {
            media_type: artifact.media_type.clone(),
            digest: manifest_digest,
            size: manifest_size,
            artifact_type: artifact.artifact_type.clone(),
            platform: None,
            annotations: BTreeMap::new(),
            urls: None,
            data: None,
        };
        self.index_entries.push(index_descriptor(root, &artifact));
        self.artifacts.push(artifact);
    }

    pub fn finish(self) -> Result<Plan, PackError> {
        let PlanBuilder { blobs, mut artifacts, mut index_entries } = self;
        if artifacts.is_empty() {
            return Err(PackError::Empty);
        }
        artifacts.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
        for pair in artifacts.windows(2) {
            if (&pair[0].repository, &pair[0].tag) == (&pair[1].repository, &pair[1].tag) {
                return Err(PackError::DuplicateArtifact {
                    repository: pair[0].repository.clone(),
                    tag: pair[0].tag.clone(),
                });
            }
        }
        index_entries.sort_by(|a, b| a.annotations[annotation::REF_NAME].cmp(&b.annotations[annotation::REF_NAME]));
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_INDEX.to_string()),
            manifests: index_entries,
        };
        let index_json = serde_json::to_vec(&index).expect("index serializes");
        Ok(Plan { artifacts, blobs, index_json, delta: None })
    }
}

/// The descriptor `index.json` lists for an artifact, named so that `skopeo` and `oras`
/// can address it as `oci:DIR:REPOSITORY:TAG` and the mirror knows where to serve it.
fn index_descriptor(mut root: Descriptor, artifact: &Artifact) -> Descriptor {
    root.annotations = BTreeMap::from([
        (annotation::REF_NAME.to_string(), format!("{}:{}", artifact.repository, artifact.tag)),
        (annotation::KIND.to_string(), artifact.kind.to_string()),
        (annotation::REPOSITORY.to_string(), artifact.repository.clone()),
        (annotation::TAG.to_string(), artifact.tag.clone()),
    ]);
    root.platform = None;
    root
}

/// Hashes the plain files of the manifest, two at a time: their digests name them in the
/// manifest that must be written before their bytes.
fn hash_files(manifest: &OfflineManifest, base_dir: &Path) -> Result<Vec<(PathBuf, Digest, u64)>, PackError> {
    let paths: Vec<PathBuf> = manifest
        .files
        .iter()
        .map(|f| match f.kind_source(base_dir) {
            Source::File { path } => path,
            _ => unreachable!("file entries have file sources"),
        })
        .collect();
    let hash_one = |path: &PathBuf| -> Result<(PathBuf, Digest, u64), PackError> {
        let err = |source| PackError::ReadInput { path: path.clone(), what: "a [[file]] source".into(), source };
        let file = fs::File::open(path).map_err(err)?;
        if !file.metadata().map_err(err)?.is_file() {
            return Err(err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
        }
        let (digest, size) = hash_reader(file).map_err(err)?;
        Ok((path.clone(), digest, size))
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(paths.len().max(1));
    let chunk = paths.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(hash_one).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut out = Vec::with_capacity(paths.len());
        for handle in handles {
            out.extend(handle.join().expect("hashing thread panicked")?);
        }
        Ok(out)
    })
}

pub struct PackOptions<'a> {
    pub keys: &'a [SecretKey],
    pub channel: String,
    pub sequence: u64,
    pub name: String,
    pub created: SystemTime,
    pub expires_in: Duration,
    pub compression_level: i32,
    pub threads: u32,
    pub progress: &'a dyn Progress,
}

pub struct Packed {
    pub manifest: BundleManifest,
    pub manifest_bytes: Vec<u8>,
    pub bundle_path: PathBuf,
    /// Copy of `airlock-bundle.json` kept beside the bundle (the base of a later delta).
    pub manifest_copy_path: PathBuf,
    pub compressed_size: u64,
}

/// Builds the signed manifest for a plan.
pub fn build_manifest(plan: &Plan, options: &PackOptions) -> BundleManifest {
    let oci_layout = FileRecord { digest: Digest::of(OCI_LAYOUT_FILE), size: OCI_LAYOUT_FILE.len() as u64 };
    let index = FileRecord { digest: Digest::of(&plan.index_json), size: plan.index_json.len() as u64 };
    let created = format::format_time(options.created);
    let blobs: Vec<BlobRecord> = plan
        .blobs
        .iter()
        .map(|(digest, blob)| BlobRecord { digest: *digest, size: blob.size, media_type: blob.media_type.clone() })
        .collect();
    // The id is derived from what the bundle says, so a rebuild of the same inputs and
    // metadata gets the same id and the same bytes.
    let mut id_hasher = Hasher::new();
    for part in [options.name.as_str(), options.channel.as_str(), &options.sequence.to_string(), &created] {
        id_hasher.update(part.as_bytes());
        id_hasher.update(b"\0");
    }
    id_hasher.update(index.digest.to_string().as_bytes());
    if let Some(delta) = &plan.delta {
        id_hasher.update(delta.base.manifest_digest.to_string().as_bytes());
    }
    for blob in &blobs {
        id_hasher.update(blob.digest.to_string().as_bytes());
    }
    let bundle_id = id_hasher.finish().0.hex()[..32].to_string();
    BundleManifest {
        format_version: format::FORMAT_VERSION,
        bundle_id,
        name: options.name.clone(),
        channel: options.channel.clone(),
        sequence: options.sequence,
        created,
        expires: format::format_time(options.created + options.expires_in),
        base: plan.delta.as_ref().map(|d| d.base.clone()),
        tool: Tool { name: "airlock".into(), version: env!("CARGO_PKG_VERSION").into() },
        layout: Layout { oci_layout, index },
        artifacts: plan.artifacts.clone(),
        blobs,
        base_blobs: plan.delta.as_ref().map(|d| d.base_blobs.clone()).unwrap_or_default(),
    }
}

/// Trusted comment of airlock's signatures: what the signer vouches for, readable by people.
pub fn trusted_comment(manifest: &BundleManifest) -> String {
    format!(
        "airlock bundle {} name={} channel={} sequence={} created={}",
        manifest.bundle_id, manifest.name, manifest.channel, manifest.sequence, manifest.created
    )
}

/// The signed manifest and its signatures, ready to write.
pub struct Signed {
    pub manifest: BundleManifest,
    pub manifest_bytes: Vec<u8>,
    pub signatures: Vec<String>,
}

/// Builds and signs the manifest of a plan.
pub fn sign(plan: &Plan, options: &PackOptions) -> Result<Signed, PackError> {
    if options.keys.is_empty() {
        return Err(PackError::NoKey);
    }
    let manifest = build_manifest(plan, options);
    let manifest_bytes = manifest.to_bytes();
    let comment = trusted_comment(&manifest);
    let signatures: Vec<String> = options
        .keys
        .iter()
        .map(|k| k.sign(&manifest_bytes, &comment, &format!("signature from airlock secret key {}", k.id)).text)
        .collect();
    Ok(Signed { manifest, manifest_bytes, signatures })
}

/// Signs and writes the bundle to `out`, atomically: a temporary file in the same folder is
/// renamed into place only when every byte is written, checked and synced.
pub fn write_bundle(plan: &Plan, options: &PackOptions, out: &Path) -> Result<Packed, PackError> {
    let signed = sign(plan, options)?;
    let dir = parent_dir(out);
    let write_err = |source| PackError::Write { path: out.to_path_buf(), source };
    let temp = tempfile::Builder::new()
        .prefix(".airlock-partial-")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    let writer = write_archive(plan, options, &signed, BufWriter::with_capacity(1 << 20, WritebackFile::new(temp.as_file())), out)?;
    writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    temp.as_file().sync_all().map_err(write_err)?;
    let compressed_size = temp.as_file().metadata().map_err(write_err)?.len();
    temp.persist(out).map_err(|e| write_err(e.error))?;
    sync_dir(&dir);

    let manifest_copy_path = manifest_copy_path(out);
    fs::write(&manifest_copy_path, &signed.manifest_bytes)
        .map_err(|source| PackError::Write { path: manifest_copy_path.clone(), source })?;
    Ok(Packed { manifest: signed.manifest, manifest_bytes: signed.manifest_bytes, bundle_path: out.to_path_buf(), manifest_copy_path, compressed_size })
}

/// Writes the compressed archive (manifest, signatures, layout, blobs) into `sink`;
/// `out` names the destination in errors.
pub fn write_archive<W: Write>(plan: &Plan, options: &PackOptions, signed: &Signed, sink: W, out: &Path) -> Result<W, PackError> {
    let write_err = |source| PackError::Write { path: out.to_path_buf(), source };
    if !(1..=MAX_COMPRESSION_LEVEL).contains(&options.compression_level) {
        return Err(PackError::CompressionLevel { level: options.compression_level });
    }
    let mtime = options.created.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut encoder = zstd::stream::write::Encoder::new(sink, options.compression_level).map_err(write_err)?;
    if options.threads > 1 {
        encoder.multithread(options.threads).map_err(write_err)?;
    }
    encoder.include_checksum(true).map_err(write_err)?;

    options.progress.start(signed.manifest.total_blob_bytes());
    let write_small = |encoder: &mut zstd::stream::write::Encoder<_>, name: &str, bytes: &[u8]| -> io::Result<()> {
        ustar::write_header(encoder, name, bytes.len() as u64, mtime)?;
        encoder.write_all(bytes)?;
        ustar::write_padding(encoder, bytes.len() as u64)
    };
    write_small(&mut encoder, format::MANIFEST_ENTRY, &signed.manifest_bytes).map_err(write_err)?;
    for (i, signature) in signed.signatures.iter().enumerate() {
        write_small(&mut encoder, &format::signature_entry(i + 1), signature.as_bytes()).map_err(write_err)?;
    }
    write_small(&mut encoder, format::OCI_LAYOUT_ENTRY, OCI_LAYOUT_FILE).map_err(write_err)?;
    write_small(&mut encoder, format::INDEX_ENTRY, &plan.index_json).map_err(write_err)?;

    let files: Vec<(&Path, u64)> = plan
        .blobs
        .values()
        .filter_map(|blob| match &blob.source {
            BlobSource::File(path) => Some((path.as_path(), blob.size)),
            BlobSource::Bytes(_) => None,
        })
        .collect();
    std::thread::scope(|scope| {
        let ahead = ReadAhead::start(scope, files);
        for (digest, blob) in &plan.blobs {
            ustar::write_header(&mut encoder, &digest.layout_path(), blob.size, mtime).map_err(write_err)?;
            match &blob.source {
                BlobSource::Bytes(bytes) => {
                    encoder.write_all(bytes).map_err(write_err)?;
                    options.progress.advance(blob.size);
                }
                BlobSource::File(path) => copy_checked(&ahead, path, *digest, blob.size, &mut encoder, out, options.progress)?,
            }
            ustar::write_padding(&mut encoder, blob.size).map_err(write_err)?;
        }
        Ok::<(), PackError>(())
    })?;
    ustar::write_end(&mut encoder).map_err(write_err)?;
    let writer = encoder.finish().map_err(write_err)?;
    options.progress.finish();
    Ok(writer)
}

/// `NAME.airlock.tar.zst` → `NAME.airlock-bundle.json`.
pub fn manifest_copy_path(bundle: &Path) -> PathBuf {
    let name = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(format::BUNDLE_SUFFIX).unwrap_or(&name);
    bundle.with_file_name(format!("{stem}.airlock-bundle.json"))
}

/// Writes one file's bytes as the read-ahead thread delivers them, and checks what they
/// hashed to: the bytes packed are the bytes checked.
fn copy_checked(
    ahead: &ReadAhead,
    path: &Path,
    digest: Digest,
    size: u64,
    out: &mut impl Write,
    bundle: &Path,
    progress: &dyn Progress,
) -> Result<(), PackError> {
    loop {
        match ahead.next() {
            Some(Piece::Chunk(chunk)) => {
                out.write_all(&chunk).map_err(|source| PackError::Write { path: bundle.to_path_buf(), source })?;
                progress.advance(chunk.len() as u64);
                ahead.recycle(chunk);
            }
            Some(Piece::End { digest: actual_digest, size: actual_size }) => {
                if actual_digest != digest || actual_size != size {
                    return Err(PackError::ContentMismatch {
                        path: path.to_path_buf(),
                        expected_digest: digest,
                        expected_size: size,
                        actual_digest,
                        actual_size,
                    });
                }
                return Ok(());
            }
            Some(Piece::Failed { path, error }) => {
                return Err(PackError::ReadInput { path, what: "a blob".into(), source: error })
            }
            None => {
                return Err(PackError::ReadInput {
                    path: path.to_path_buf(),
                    what: "a blob".into(),
                    source: io::Error::other("the reading thread stopped"),
                })
            }
        }
    }
}

fn sync_dir(dir: &Path) {
    // Best effort: the rename is durable once the folder is synced; failure here only
    // weakens durability after a power cut, not correctness.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
