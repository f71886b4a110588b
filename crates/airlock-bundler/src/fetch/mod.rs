//! The connected side's fetchers: resolve an offline manifest's network sources into a
//! [`Lock`], then fetch exactly what the lock names into the content cache.
//!
//! The API is blocking; inside, a small tokio runtime runs the downloads in parallel
//! (`jobs` at a time). Every upstream is reached through one reqwest client (rustls, the
//! `HTTPS_PROXY`/`NO_PROXY` environment, plus an optional extra CA bundle) or, for
//! registries, `oci-client` configured the same way.

mod ami;
mod cargo;
mod devcontainer;
pub(crate) mod http;
mod https;
mod jetbrains;
mod npm;
mod openvsx;
pub mod python;
mod registry;
mod vscode;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use crate::cache::{CacheError, ContentCache};
use airlock_oci::{Descriptor, Digest};
use crate::lock::{Lock, LockedFile, LockedImage, LockedPackageLock};
use crate::layout::BlobSet;
use crate::offline_manifest::OfflineManifest;

pub use registry::RegistryAuthSource;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch {url} after {attempts} attempts: {reason} (check the address, the network path and HTTPS_PROXY/NO_PROXY, then run again: finished downloads are kept)")]
    Unreachable { url: String, attempts: u32, reason: String },
    #[error("{url} answered HTTP {status}{detail}")]
    Status { url: String, status: u16, detail: String },
    #[error("{artifact}: {url} served content with digest {actual} ({actual_size} bytes) but the lock expects {expected}; nothing was packed (if the upstream changed on purpose, run `airlock bundle lock` again; otherwise something altered the bytes on the way)")]
    Mismatch { artifact: String, url: String, expected: Digest, actual: Digest, actual_size: u64 },
    #[error("{artifact}: {url} served more than the {expected_size} bytes the lock expects; nothing was packed")]
    Oversize { artifact: String, url: String, expected_size: u64 },
    #[error("{what}: {message}")]
    Upstream { what: String, message: String },
    #[error("{what} is refused: {message}")]
    Refused { what: String, message: String },
    #[error("{what}: {message}")]
    Config { what: String, message: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    LockFile(#[from] airlock_packages::LockFileError),
}

#[derive(Clone, Debug)]
pub struct FetchOptions {
    pub cache_dir: PathBuf,
    /// Downloads at once.
    pub jobs: usize,
    /// Further attempts after a failed one (connection errors, 5xx, broken transfers).
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub retry_delay: Duration,
    /// PEM certificates to trust besides the built-in roots (a TLS-inspecting proxy's CA).
    pub ca_bundle: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// A transfer that delivers nothing for this long is broken off and retried.
    pub read_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            cache_dir: ContentCache::default_root(),
            jobs: 4,
            retries: 4,
            retry_delay: Duration::from_millis(500),
            ca_bundle: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What went over the network.
#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchStats {
    pub requests: u64,
    pub bytes: u64,
    pub cached_blobs: u64,
    pub fetched_blobs: u64,
}

/// An image whose every blob is in the cache.
pub struct FetchedImage {
    pub locked: LockedImage,
    /// The root the bundle carries: the upstream manifest or index, or the index filtered
    /// to the locked platforms.
    pub root: Descriptor,
    pub blobs: BlobSet,
}

/// A file in the cache.
pub struct FetchedFile {
    pub locked: LockedFile,
    pub path: PathBuf,
    pub size: u64,
}

pub struct Fetched {
    pub images: Vec<FetchedImage>,
    pub files: Vec<FetchedFile>,
}

pub(crate) struct Ctx {
    pub http: http::Http,
    pub cache: ContentCache,
    pub extra_roots: Vec<Vec<u8>>,
    pub options: FetchOptions,
    pub registries: Mutex<HashMap<String, oci_client::Client>>,
    pub auth: RegistryAuthSource,
    pub cached_blobs: AtomicU64,
    pub fetched_blobs: AtomicU64,
}

pub struct Fetcher {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
}

impl Fetcher {
    pub fn new(options: FetchOptions) -> Result<Self, FetchError> {
        let cache = ContentCache::open(&options.cache_dir)?;
        let extra_roots = match &options.ca_bundle {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10));
        for pem in &extra_roots {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| FetchError::Config {
                what: format!("CA bundle {}", options.ca_bundle.as_ref().expect("roots come from a bundle").display()),
                message: e.to_string(),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| FetchError::Config { what: "HTTP client".into(), message: http::describe(&e) })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.jobs.clamp(1, 4))
            .enable_all()
            .thread_name("airlock-fetch")
            .build()
            .map_err(|e| FetchError::Config { what: "async runtime".into(), message: e.to_string() })?;
        let http = http::Http {
            client,
            retries: options.retries,
            delay: options.retry_delay,
            stats: Arc::new(Stats::default()),
            permits: Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1))),
        };
        let ctx = Ctx {
            http,
            cache,
            extra_roots,
            options,
            registries: Mutex::new(HashMap::new()),
            auth: RegistryAuthSource::from_environment(),
            cached_blobs: AtomicU64::new(0),
            fetched_blobs: AtomicU64::new(0),
        };
        Ok(Fetcher { runtime, ctx: Arc::new(ctx) })
    }

    pub fn cache(&self) -> &ContentCache {
        &self.ctx.cache
    }

    pub fn stats(&self) -> FetchStats {
        FetchStats {
            requests: self.ctx.http.stats.requests.load(Ordering::Relaxed),
            bytes: self.ctx.http.stats.bytes.load(Ordering::Relaxed),
            cached_blobs: self.ctx.cached_blobs.load(Ordering::Relaxed),
            fetched_blobs: self.ctx.fetched_blobs.load(Ordering::Relaxed),
        }
    }

    /// Resolves every network source of `manifest` to exact versions and digests.
    pub fn resolve(&self, manifest: &OfflineManifest, manifest_digest: Digest) -> Result<Lock, FetchError> {
        let ctx = &*self.ctx;
        self.runtime.block_on(async {
            let mut lock = Lock::new(manifest_digest);
            let images = futures_util::stream::iter(
                manifest.images.iter().filter(|i| i.source.starts_with("registry:")),
            )
            .map(|image| registry::resolve(ctx, image))
            .buffered(ctx.options.jobs.max(1))
            .try_collect::<Vec<_>>();
            let files = async {
                let mut files = Vec::new();
                for source in &manifest.vscode_server {
                    files.extend(vscode::resolve(ctx, source).await?);
                }
                for source in &manifest.openvsx {
                    files.extend(openvsx::resolve(ctx, source).await?);
                }
                for source in &manifest.jetbrains {
                    files.extend(jetbrains::resolve(ctx, source).await?);
                }
                let https = futures_util::stream::iter(&manifest.https)
                    .map(|source| https::resolve(ctx, source))
                    .buffered(ctx.options.jobs.max(1))
                    .try_collect::<Vec<_>>()
                    .await?;
                files.extend(https);
                if let Some(ami) = &manifest.ami {
                    files.extend(ami::resolve(ctx, ami).await?);
                }
                let mut package_locks = Vec::new();
                for source in &manifest.python {
                    let (text, locked) = read_package_lock(manifest, &source.lock)?;
                    files.extend(python::resolve(ctx, source, &manifest.package_lock_path(&source.lock), &text).await?);
                    package_locks.push(locked);
                }
                for source in &manifest.npm {
                    let (text, locked) = read_package_lock(manifest, &source.lock)?;
                    files.extend(npm::resolve(ctx, source, &manifest.package_lock_path(&source.lock), &text).await?);
                    package_locks.push(locked);
                }
                for source in &manifest.cargo {
                    let (text, locked) = read_package_lock(manifest, &source.lock)?;
                    files.extend(cargo::resolve(ctx, source, &manifest.package_lock_path(&source.lock), &text).await?);
                    package_locks.push(locked);
                }
                Ok::<_, FetchError>((files, package_locks))
            };
            let devcontainers = async {
                let (mut images, mut locked) = (Vec::new(), Vec::new());
                for entry in &manifest.devcontainers {
                    let (found, file) = devcontainer::resolve(ctx, entry, &manifest.base_dir).await?;
                    images.extend(found);
                    locked.push(file);
                }
                Ok::<_, FetchError>((images, locked))
            };
            let (mut images, (files, package_locks), (devcontainer_images, devcontainers)) =
                futures_util::try_join!(images, files, devcontainers)?;
            images.extend(devcontainer_images);
            lock.images = images;
            lock.devcontainers = devcontainers;
            lock.files = files;
            lock.package_locks = package_locks;
            lock.normalize();
            Ok(lock)
        })
    }

    /// Fetches everything the lock names into the cache, checking every byte against it.
    /// Content already in the cache is not fetched again.
    pub fn fetch(&self, lock: &Lock) -> Result<Fetched, FetchError> {
        let ctx = &*self.ctx;
        self.runtime.block_on(async {
            let jobs = ctx.options.jobs.max(1);
            // Manifests first (small, and they name the blobs), then every blob once.
            let walked = futures_util::stream::iter(&lock.images)
                .map(|image| registry::walk(ctx, image))
                .buffered(jobs)
                .try_collect::<Vec<_>>()
                .await?;
            let mut wanted: BTreeMap<Digest, (u64, usize)> = BTreeMap::new();
            for (i, walk) in walked.iter().enumerate() {
                for (digest, size) in &walk.needed {
                    wanted.entry(*digest).or_insert((*size, i));
                }
            }
            let fetch_blobs = futures_util::stream::iter(wanted)
                .map(|(digest, (size, i))| registry::ensure_blob(ctx, &lock.images[i], digest, size))
                .buffer_unordered(jobs)
                .try_collect::<Vec<_>>();
            let fetch_files = futures_util::stream::iter(&lock.files)
                .map(|file| ensure_file(ctx, file))
                .buffer_unordered(jobs)
                .try_collect::<Vec<_>>();
            let (_, mut files) = futures_util::try_join!(fetch_blobs, fetch_files)?;
            files.sort_by(|a: &FetchedFile, b| (a.locked.kind, &a.locked.name, &a.locked.version, &a.locked.platform).cmp(&(b.locked.kind, &b.locked.name, &b.locked.version, &b.locked.platform)));
            let images = walked.into_iter().map(|w| w.into_fetched(&ctx.cache)).collect();
            Ok(Fetched { images, files })
        })
    }
}

/// Puts one locked file in the cache (or finds it there).
async fn ensure_file(ctx: &Ctx, file: &LockedFile) -> Result<FetchedFile, FetchError> {
    let label = format!("{} {} {}{}", file.kind, file.name, file.version, file.platform.as_ref().map(|p| format!(" ({p})")).unwrap_or_default());
    if let Some(size) = ctx.cache.has(&file.sha256, file.size) {
        ctx.cached_blobs.fetch_add(1, Ordering::Relaxed);
        return Ok(FetchedFile { locked: file.clone(), path: ctx.cache.blob_path(&file.sha256), size });
    }
    if let Some(text) = &file.inline {
        let digest = Digest::of(text.as_bytes());
        if digest != file.sha256 {
            return Err(FetchError::Mismatch {
                artifact: label,
                url: "the lock's inline content".into(),
                expected: file.sha256,
                actual: digest,
                actual_size: text.len() as u64,
            });
        }
        ctx.cache.put_bytes(text.as_bytes())?;
        return Ok(FetchedFile { locked: file.clone(), path: ctx.cache.blob_path(&digest), size: text.len() as u64 });
    }
    let done = ctx.http.download(&file.url, &label, Some((file.sha256, file.size)), &ctx.cache).await?;
    ctx.fetched_blobs.fetch_add(1, Ordering::Relaxed);
    tracing::info!(artifact = %label, bytes = done.size, "fetched");
    Ok(FetchedFile { locked: file.clone(), path: done.path, size: done.size })
}

/// A package lock's text and digest (the lock records the digest, so a changed package lock
/// makes it stale).
fn read_package_lock(manifest: &OfflineManifest, lock: &str) -> Result<(String, LockedPackageLock), FetchError> {
    let path = manifest.package_lock_path(lock);
    let bytes = std::fs::read(&path).map_err(|e| airlock_packages::LockFileError::new(&path, None, format!("cannot read it: {e}")))?;
    let sha256 = Digest::of(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| airlock_packages::LockFileError::new(&path, None, "is not UTF-8 text"))?;
    Ok((text, LockedPackageLock { path: lock.to_string(), sha256 }))
}

/// Splits a PEM bundle into its certificates.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<Vec<u8>>, FetchError> {
    let text = std::fs::read_to_string(path).map_err(|e| FetchError::Config {
        what: format!("CA bundle {}", path.display()),
        message: e.to_string(),
    })?;
    let mut certs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END CERTIFICATE-----") {
            certs.push(current.as_bytes().to_vec());
            current.clear();
        }
    }
    if certs.is_empty() {
        return Err(FetchError::Config {
            what: format!("CA bundle {}", path.display()),
            message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

/// The label errors use for a file artifact.
pub(crate) fn file_name_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("").to_string();
    if name.is_empty() { "download".into() } else { name }
}
