//! The image cache: blobs pulled once into `DATA/images/blobs/sha256/<hex>` (verified while
//! downloaded, then fsync + rename), and each image unpacked once into
//! `DATA/images/rootfs/<manifest-hex>/`, completed in a temporary folder and renamed, so a
//! half-unpacked image is never used. Environments share that folder read-only (see
//! `rootfs.rs`); nothing is copied per environment.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use airlock_oci::{platform_matches, Descriptor, Digest, Hasher, HashingReader, ManifestLinks, Reference};
use airlock_oci::{MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_IMAGE_CONFIG};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::locks::KeyedLocks;
use crate::progress::EngineEvent;
use crate::registry::{RegistryClient, RegistryOptions};
use crate::unpack::{self, Compression};

/// An image ready to be used by environments.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The reference as asked.
    pub reference: String,
    /// The digest of the platform image manifest that was unpacked (`sha256:…`).
    pub digest: String,
    pub config: ImageConfig,
    /// The unpacked root filesystem (shared, never written by environments).
    pub rootfs: PathBuf,
}

/// The parts of the image configuration the runner uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `KEY=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    /// `name`, `uid`, `name:group` or `uid:gid`; empty means root.
    #[serde(default)]
    pub user: String,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RawConfig>,
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

const MAX_CONFIG: u64 = 8 << 20;
const CONFIG_TYPES: &[&str] = &[MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG];
const PROGRESS_STEP: u64 = 8 << 20;

pub(crate) struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) client: RegistryClient,
    pub(crate) locks: KeyedLocks,
    pub(crate) max_unpacked: u64,
}

impl ImageStore {
    /// `root` is `DATA/images`, already created.
    pub(crate) fn open(root: PathBuf, registry: RegistryOptions, max_unpacked: u64) -> Result<ImageStore, EngineError> {
        for dir in ["blobs/sha256", "rootfs", "manifests", "tmp", "ide"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(EngineError::io("create", &path))?;
        }
        // Left by a runner killed mid-pull; this process holds the data dir lock.
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(EngineError::io("list", &tmp))?.flatten() {
            let path = entry.path();
            let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(EngineError::io("remove leftover", &path))?;
        }
        Ok(ImageStore { root, client: RegistryClient::new(registry)?, locks: KeyedLocks::default(), max_unpacked })
    }

    /// Resolves, downloads (what is not cached yet) and unpacks (once) an image.
    pub(crate) fn pull(&self, reference: &str, progress: &mut dyn FnMut(EngineEvent)) -> Result<PulledImage, EngineError> {
        let r = Reference::parse(reference)?;
        self.client.check_allowed(&r)?;
        if let Some(digest) = &r.digest {
            // Pinned and already here: no registry round trip (the registry may be down).
            if let Some(image) = self.cached(reference, &digest.to_string())? {
                progress(EngineEvent::ImageReady { digest: image.digest.clone(), rootfs: image.rootfs.clone() });
                return Ok(image);
            }
        }
        let (manifest, digest) = self.resolve(&r)?;
        progress(EngineEvent::ManifestResolved { reference: reference.to_string(), digest: digest.clone() });
        let image = self.locks.with(&format!("image:{digest}"), || self.materialize(&r, reference, &digest, &manifest, progress))?;
        progress(EngineEvent::ImageReady { digest: image.digest.clone(), rootfs: image.rootfs.clone() });
        Ok(image)
    }

    /// The unpacked image `digest`, if it is complete in the cache.
    pub(crate) fn cached(&self, reference: &str, digest: &str) -> Result<Option<PulledImage>, EngineError> {
        let hex = digest
            .parse::<Digest>()
            .map_err(|e| EngineError::InvalidReference { reference: reference.to_string(), reason: e.to_string() })?
            .hex();
        let rootfs = self.root.join("rootfs").join(&hex);
        let manifest_path = self.root.join("manifests").join(format!("{hex}.json"));
        if !rootfs.is_dir() || !manifest_path.is_file() {
            return Ok(None);
        }
        let bytes = fs::read(&manifest_path).map_err(EngineError::io("read cached manifest", &manifest_path))?;
        let manifest: ManifestLinks = serde_json::from_slice(&bytes).map_err(|e| EngineError::State {
            path: manifest_path.clone(),
            reason: format!("not a manifest: {e}"),
        })?;
        let config_desc = manifest.config.as_ref().ok_or_else(|| EngineError::State {
            path: manifest_path.clone(),
            reason: "the manifest has no config".into(),
        })?;
        let (config, _) = self.read_config(reference, config_desc)?;
        Ok(Some(PulledImage { reference: reference.to_string(), digest: digest.to_string(), config, rootfs }))
    }

    /// The platform image manifest (bytes, digest) a reference names, following an index.
    fn resolve(&self, r: &Reference) -> Result<(Vec<u8>, String), EngineError> {
        let reference = r.to_string();
        let pinned = r.digest.map(|d| d.to_string());
        let (body, digest) = self.fetch_manifest(r, &r.manifest_ref(), pinned.as_deref())?;
        let parsed: ManifestLinks = serde_json::from_slice(&body)
            .map_err(|e| EngineError::Manifest { reference: reference.clone(), reason: format!("the manifest is not valid JSON: {e}") })?;
        if parsed.manifests.is_empty() {
            return Ok((body, digest));
        }
        let entries = &parsed.manifests;
        let wanted = format!("linux/{}", host_arch());
        let chosen = entries
            .iter()
            .find(|m| m.platform_name().is_some_and(|have| platform_matches(&wanted, &have)))
            .ok_or_else(|| {
                let offered: Vec<String> = entries.iter().filter_map(Descriptor::platform_name).collect();
                EngineError::Manifest {
                    reference: reference.clone(),
                    reason: format!("the index has no {wanted} image (it offers: {}); mirror the image for this platform", offered.join(", ")),
                }
            })?;
        let chosen_digest = chosen.digest.to_string();
        let (body, digest) = self.fetch_manifest(r, &chosen_digest, Some(&chosen_digest))?;
        if body.len() as u64 != chosen.size {
            return Err(EngineError::Verification {
                what: "manifest size".into(),
                digest,
                registry: r.registry.clone(),
                expected: format!("{} bytes", chosen.size),
                actual: format!("{} bytes", body.len()),
            });
        }
        Ok((body, digest))
    }

    /// Fetches a manifest and verifies it against `expected` and the registry's digest header.
    pub(crate) fn fetch_manifest(&self, r: &Reference, manifest_ref: &str, expected: Option<&str>) -> Result<(Vec<u8>, String), EngineError> {
        let fetched = self.client.manifest(r, manifest_ref)?;
        let actual = Digest::of(&fetched.body).to_string();
        let mismatch = |expected: &str, what: &str| EngineError::Verification {
            what: what.to_string(),
            digest: manifest_ref.to_string(),
            registry: r.registry.clone(),
            expected: expected.to_string(),
            actual: actual.clone(),
        };
        if let Some(expected) = expected {
            if expected != actual {
                return Err(mismatch(expected, "manifest"));
            }
        }
        if let Some(header) = fetched.header_digest.as_deref().filter(|h| h.starts_with("sha256:")) {
            if header != actual {
                return Err(mismatch(header, "manifest (against the registry's Docker-Content-Digest)"));
            }
        }
        Ok((fetched.body, actual))
    }

    fn materialize(
        &self,
        r: &Reference,
        reference: &str,
        digest: &str,
        manifest_bytes: &[u8],
        progress: &mut dyn FnMut(EngineEvent),
    ) -> Result<PulledImage, EngineError> {
        if let Some(image) = self.cached(reference, digest)? {
            return Ok(image);
        }
        let bad = |reason: String| EngineError::Manifest { reference: reference.to_string(), reason };
        let manifest: ManifestLinks = serde_json::from_slice(manifest_bytes).map_err(|e| bad(format!("the manifest is not valid JSON: {e}")))?;
        if let Some(t) = manifest.media_type.as_deref().filter(|t| !t.contains("manifest")) {
            return Err(bad(format!("media type `{t}` is not an image manifest")));
        }
        let config_desc = manifest.config.as_ref().ok_or_else(|| bad("the manifest has no config".into()))?;
        if !CONFIG_TYPES.contains(&config_desc.media_type.as_str()) {
            return Err(bad(format!("it is not a container image (config type `{}`)", config_desc.media_type)));
        }
        self.ensure_blob(r, config_desc, progress)?;
        let (config, diff_ids) = self.read_config(reference, config_desc)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(bad(format!("the config lists {} layers, the manifest {}", diff_ids.len(), manifest.layers.len())));
        }
        for layer in &manifest.layers {
            unpack::compression_of(&layer.media_type)
                .map_err(|source| EngineError::Layer { image: reference.to_string(), layer: layer.digest.to_string(), source })?;
            self.ensure_blob(r, layer, progress)?;
        }
        let hex = &digest["sha256:".len()..];
        let rootfs = self.root.join("rootfs").join(hex);
        let tmp = TempPath(self.root.join("tmp").join(format!("rootfs-{hex}-{}", unique())));
        fs::create_dir(&tmp.0).map_err(EngineError::io("create", &tmp.0))?;
        let mut budget = self.max_unpacked;
        for (index, (layer, diff_id)) in manifest.layers.iter().zip(&diff_ids).enumerate() {
            progress(EngineEvent::LayerUnpacking { digest: layer.digest.to_string(), index, count: manifest.layers.len() });
            self.apply(reference, r, &tmp.0, layer, diff_id, &mut budget, progress)?;
        }
        // One flush for the whole tree: after the rename it is used without question.
        let dir = File::open(&tmp.0).map_err(EngineError::io("open", &tmp.0))?;
        rustix::fs::syncfs(&dir).map_err(|e| EngineError::io("sync", &tmp.0)(e.into()))?;
        write_atomic(&self.root.join("manifests").join(format!("{hex}.json")), manifest_bytes)?;
        fs::rename(&tmp.0, &rootfs).map_err(EngineError::io(format!("rename {} to", tmp.0.display()), &rootfs))?;
        std::mem::forget(tmp);
        sync_dir(&self.root.join("rootfs"))?;
        tracing::info!(image = reference, digest, "image unpacked");
        Ok(PulledImage { reference: reference.to_string(), digest: digest.to_string(), config, rootfs })
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        reference: &str,
        r: &Reference,
        root: &Path,
        layer: &Descriptor,
        diff_id: &str,
        budget: &mut u64,
        progress: &mut dyn FnMut(EngineEvent),
    ) -> Result<(), EngineError> {
        let refused = |source| EngineError::Layer { image: reference.to_string(), layer: layer.digest.to_string(), source };
        let blob = self.blob_path(&layer.digest);
        let file = io::BufReader::with_capacity(256 << 10, File::open(&blob).map_err(EngineError::io("open layer", &blob))?);
        // Decompressed here (not by apply_layer) to hash the tar stream against the diff_id.
        let decoded: Box<dyn Read> = match unpack::compression_of(&layer.media_type).map_err(refused)? {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(|e| refused(unpack::UnpackError::Archive(e)))?),
        };
        let mut tar = HashingReader::new(Budgeted { inner: decoded, count: 0, limit: *budget });
        let applied = unpack::apply_layer(root, &mut tar, Compression::None).map_err(refused)?;
        // The tar reader stops at the end-of-archive blocks; hash what follows too.
        io::copy(&mut tar, &mut io::sink()).map_err(|e| refused(unpack::UnpackError::Archive(e)))?;
        let (_, actual, unpacked) = tar.finish();
        *budget -= unpacked;
        let actual = actual.to_string();
        if actual != diff_id {
            return Err(EngineError::Verification {
                what: format!("uncompressed layer (diff_id) of image {reference}, layer"),
                digest: layer.digest.to_string(),
                registry: r.registry.clone(),
                expected: diff_id.to_string(),
                actual,
            });
        }
        if applied.skipped_devices > 0 {
            // Never created: the runtime provides /dev. Said, not silently dropped.
            tracing::warn!(image = reference, layer = %layer.digest, count = applied.skipped_devices, "device nodes in the layer were left out");
            progress(EngineEvent::DevicesSkipped { layer: layer.digest.to_string(), count: applied.skipped_devices });
        }
        Ok(())
    }

    /// Makes sure a blob is in the cache, downloading and verifying it if not.
    pub(crate) fn ensure_blob(&self, r: &Reference, desc: &Descriptor, progress: &mut dyn FnMut(EngineEvent)) -> Result<(), EngineError> {
        self.locks.with(&format!("blob:{}", desc.digest), || {
            let path = self.blob_path(&desc.digest);
            if path.is_file() {
                progress(EngineEvent::BlobCached { digest: desc.digest.to_string(), size: desc.size });
                return Ok(());
            }
            progress(EngineEvent::BlobDownloading { digest: desc.digest.to_string(), size: desc.size });
            self.download(r, desc, &path, progress)?;
            progress(EngineEvent::BlobDownloaded { digest: desc.digest.to_string(), size: desc.size });
            Ok(())
        })
    }

    fn download(&self, r: &Reference, desc: &Descriptor, dest: &Path, progress: &mut dyn FnMut(EngineEvent)) -> Result<(), EngineError> {
        let (mut response, url) = self.client.blob(r, &desc.digest.to_string())?;
        let verification = |what: &str, expected: String, actual: String| EngineError::Verification {
            what: what.to_string(),
            digest: desc.digest.to_string(),
            registry: r.registry.clone(),
            expected,
            actual,
        };
        if let Some(length) = response.content_length().filter(|&n| n != desc.size) {
            return Err(verification("blob size", format!("{} bytes", desc.size), format!("{length} bytes announced")));
        }
        let tmp = TempPath(self.root.join("tmp").join(format!("blob-{}-{}", desc.digest.hex(), unique())));
        let mut file = File::create(&tmp.0).map_err(EngineError::io("create", &tmp.0))?;
        let mut hasher = Hasher::new();
        let mut received: u64 = 0;
        let mut next_report = PROGRESS_STEP;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = response.read(&mut buf).map_err(|e| self.client.error(r, &url, format!("download interrupted after {received} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            received += n as u64;
            if received > desc.size {
                return Err(verification("blob size", format!("{} bytes", desc.size), format!("more than {} bytes", desc.size)));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(EngineError::io("write", &tmp.0))?;
            if received >= next_report {
                progress(EngineEvent::BlobProgress { digest: desc.digest.to_string(), received, size: desc.size });
                next_report += PROGRESS_STEP;
            }
        }
        if received != desc.size {
            return Err(verification("blob size", format!("{} bytes", desc.size), format!("{received} bytes")));
        }
        let actual = hasher.finish().0;
        if actual != desc.digest {
            return Err(verification("blob", desc.digest.to_string(), actual.to_string()));
        }
        file.sync_all().map_err(EngineError::io("sync", &tmp.0))?;
        fs::rename(&tmp.0, dest).map_err(EngineError::io(format!("rename {} to", tmp.0.display()), dest))?;
        std::mem::forget(tmp);
        sync_dir(dest.parent().expect("blob paths have a parent"))
    }

    fn read_config(&self, reference: &str, desc: &Descriptor) -> Result<(ImageConfig, Vec<String>), EngineError> {
        if desc.size > MAX_CONFIG {
            return Err(EngineError::Manifest { reference: reference.into(), reason: format!("the config is {} bytes, more than {MAX_CONFIG}", desc.size) });
        }
        let path = self.blob_path(&desc.digest);
        let bytes = fs::read(&path).map_err(EngineError::io("read image config", &path))?;
        let file: ConfigFile = serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Manifest { reference: reference.into(), reason: format!("the config {} is not valid: {e}", desc.digest) })?;
        let raw = file.config.unwrap_or_default();
        let config = ImageConfig {
            env: raw.env.unwrap_or_default(),
            entrypoint: raw.entrypoint.unwrap_or_default(),
            cmd: raw.cmd.unwrap_or_default(),
            working_dir: raw.working_dir.unwrap_or_default(),
            user: raw.user.unwrap_or_default(),
        };
        Ok((config, file.rootfs.map(|r| r.diff_ids).unwrap_or_default()))
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }
}

/// Counts what passes through and stops at the unpacked-size budget.
pub(crate) struct Budgeted<R> {
    pub(crate) inner: R,
    pub(crate) count: u64,
    pub(crate) limit: u64,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(format!(
                "the image unpacks to more than {} bytes (EngineOptions::max_unpacked_bytes); refused as a decompression bomb",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// Removes a temporary file or folder unless forgotten.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = if self.0.is_dir() { fs::remove_dir_all(&self.0) } else { fs::remove_file(&self.0) };
    }
}

pub(crate) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Writes via a temporary file, fsync and rename, then syncs the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let dir = path.parent().expect("written paths have a parent");
    let tmp = TempPath(dir.join(format!(".{}.tmp-{}", path.file_name().unwrap_or_default().to_string_lossy(), unique())));
    let mut file = File::create(&tmp.0).map_err(EngineError::io("create", &tmp.0))?;
    file.write_all(bytes).map_err(EngineError::io("write", &tmp.0))?;
    file.sync_all().map_err(EngineError::io("sync", &tmp.0))?;
    fs::rename(&tmp.0, path).map_err(EngineError::io(format!("rename {} to", tmp.0.display()), path))?;
    std::mem::forget(tmp);
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(EngineError::io("sync folder", dir))
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
