//! `registry:` images through `oci-client`: tags resolve to digests in the lock (manifests
//! only, no layers), multi-arch indexes are filtered to the wanted platforms, and blobs are
//! fetched by digest with ranged resume.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine as _;
use futures_util::StreamExt;
use oci_client::client::{BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use serde_json::Value;

use super::http::{Attempt, Opened};
use super::{Ctx, FetchError, FetchedImage};
use crate::cache::ContentCache;
use airlock_oci::{is_index_media_type, is_manifest_media_type, platform_matches, Descriptor, Digest, ManifestLinks, MAX_MANIFEST_SIZE};
use airlock_oci::{MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};

use crate::lock::{LockedImage, LockedPlatformManifest};
use crate::layout::{Blob, BlobSet, BlobSource};
use crate::offline_manifest::{ImageEntry, Source};

const ACCEPT: &[&str] = &[
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
];

/// Registry credentials, from the docker/podman auth file: `REGISTRY_AUTH_FILE`, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; or, for one registry,
/// `AIRLOCK_REGISTRY_USERNAME`/`AIRLOCK_REGISTRY_PASSWORD` with `AIRLOCK_REGISTRY_HOST`.
#[derive(Clone, Debug, Default)]
pub struct RegistryAuthSource {
    basic: BTreeMap<String, (String, String)>,
}

impl RegistryAuthSource {
    pub fn from_environment() -> Self {
        let file = std::env::var_os("REGISTRY_AUTH_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("DOCKER_CONFIG").map(|d| std::path::PathBuf::from(d).join("config.json")))
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker/config.json")));
        let mut source = file
            .and_then(|f| std::fs::read(f).ok())
            .map(|bytes| Self::from_config_json(&bytes))
            .unwrap_or_default();
        if let (Ok(host), Ok(user), Ok(password)) = (
            std::env::var("AIRLOCK_REGISTRY_HOST"),
            std::env::var("AIRLOCK_REGISTRY_USERNAME"),
            std::env::var("AIRLOCK_REGISTRY_PASSWORD"),
        ) {
            source.basic.insert(host, (user, password));
        }
        source
    }

    /// Reads `auths` from a docker `config.json` (credential helpers are not run).
    pub fn from_config_json(bytes: &[u8]) -> Self {
        let mut basic = BTreeMap::new();
        let Ok(config) = serde_json::from_slice::<Value>(bytes) else {
            tracing::warn!("the registry auth file is not JSON; using no credentials");
            return Self::default();
        };
        for (host, entry) in config.get("auths").and_then(Value::as_object).into_iter().flatten() {
            let host = host.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches("/v1/").trim_end_matches('/');
            let host = if host == "index.docker.io" { "docker.io" } else { host };
            let pair = entry
                .get("auth")
                .and_then(Value::as_str)
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|text| text.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
                .or_else(|| {
                    let user = entry.get("username")?.as_str()?;
                    let password = entry.get("password")?.as_str()?;
                    Some((user.to_string(), password.to_string()))
                });
            if let Some(pair) = pair {
                basic.insert(host.to_string(), pair);
            }
        }
        RegistryAuthSource { basic }
    }

    pub fn for_host(&self, host: &str) -> RegistryAuth {
        match self.basic.get(host) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// Where to connect for an image: `base_url`, else the host in the source.
fn endpoint(image: &ImageEntry, reference: &airlock_oci::Reference) -> String {
    match &image.base_url {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => format!("https://{}", reference.registry),
    }
}

/// `https://host:port` → (`host:port`, plain HTTP?).
fn split_endpoint(endpoint: &str) -> (String, bool) {
    match endpoint.strip_prefix("http://") {
        Some(rest) => (rest.trim_end_matches('/').to_string(), true),
        None => (endpoint.trim_start_matches("https://").trim_end_matches('/').to_string(), false),
    }
}

fn client_for(ctx: &Ctx, endpoint: &str) -> oci_client::Client {
    let mut clients = ctx.registries.lock().expect("the registry client map is never poisoned");
    clients
        .entry(endpoint.to_string())
        .or_insert_with(|| {
            let (host, plain) = split_endpoint(endpoint);
            let config = ClientConfig {
                protocol: if plain { ClientProtocol::HttpsExcept(vec![host]) } else { ClientProtocol::Https },
                extra_root_certificates: ctx
                    .extra_roots
                    .iter()
                    .map(|pem| Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() })
                    .collect(),
                platform_resolver: None,
                connect_timeout: Some(ctx.options.connect_timeout),
                read_timeout: Some(ctx.options.read_timeout),
                user_agent: concat!("airlock/", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            };
            oci_client::Client::new(config)
        })
        .clone()
}

fn classify(e: OciDistributionError, what: &str) -> Attempt {
    match e {
        OciDistributionError::RequestError(e) => Attempt::Retry(super::http::describe(&e)),
        OciDistributionError::ServerError { code, .. } if code >= 500 || code == 429 => {
            Attempt::Retry(format!("HTTP {code}"))
        }
        OciDistributionError::IoError(e) => Attempt::Retry(e.to_string()),
        other => Attempt::Fatal(FetchError::Upstream { what: what.to_string(), message: other.to_string() }),
    }
}

struct Target {
    client: oci_client::Client,
    registry: String,
    repository: String,
    auth: RegistryAuth,
    url: String,
}

impl Target {
    fn new(ctx: &Ctx, endpoint: &str, registry_host: &str, repository: &str) -> Self {
        let (host, _) = split_endpoint(endpoint);
        Target {
            client: client_for(ctx, endpoint),
            registry: host,
            repository: repository.to_string(),
            auth: ctx.auth.for_host(registry_host),
            url: format!("{endpoint}/v2/{repository}"),
        }
    }

    fn by_digest(&self, digest: &Digest) -> Reference {
        Reference::with_digest(self.registry.clone(), self.repository.clone(), digest.to_string())
    }

    /// Fetches a manifest or index by tag or digest; returns its bytes and digest.
    async fn manifest(&self, ctx: &Ctx, reference: &Reference) -> Result<(Vec<u8>, Digest), FetchError> {
        let what = format!("{}:{}", self.url, reference.tag().or(reference.digest()).unwrap_or(""));
        let (bytes, digest) = ctx
            .http
            .with_retries(&what, || async {
                self.client.pull_manifest_raw(reference, &self.auth, ACCEPT).await.map_err(|e| classify(e, &what))
            })
            .await?;
        let digest: Digest = digest.parse().map_err(|e| FetchError::Upstream { what: what.clone(), message: format!("{e}") })?;
        let actual = Digest::of(&bytes);
        if actual != digest || bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(FetchError::Mismatch { artifact: what.clone(), url: what, expected: digest, actual, actual_size: bytes.len() as u64 });
        }
        ctx.http.stats.requests.fetch_add(1, Ordering::Relaxed);
        Ok((bytes, digest))
    }

    /// A manifest by digest, from the cache when it is there.
    async fn manifest_cached(&self, ctx: &Ctx, digest: &Digest) -> Result<Vec<u8>, FetchError> {
        if let Some(bytes) = ctx.cache.read_small(digest, MAX_MANIFEST_SIZE)? {
            return Ok(bytes);
        }
        let (bytes, actual) = self.manifest(ctx, &self.by_digest(digest)).await?;
        if actual != *digest {
            return Err(FetchError::Mismatch { artifact: self.url.clone(), url: self.url.clone(), expected: *digest, actual, actual_size: bytes.len() as u64 });
        }
        ctx.cache.put_bytes(&bytes)?;
        Ok(bytes)
    }
}

fn media_type_of(bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match value.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None if value.get("manifests").is_some() => MEDIA_TYPE_IMAGE_INDEX.to_string(),
        None => MEDIA_TYPE_IMAGE_MANIFEST.to_string(),
    }
}

/// Resolves an `[[image]]` with a `registry:` source to a digest, caching its manifests.
pub(super) async fn resolve(ctx: &Ctx, image: &ImageEntry) -> Result<LockedImage, FetchError> {
    let Ok(Source::Registry(reference)) = image.kind_source(std::path::Path::new("")) else {
        unreachable!("only registry images are resolved")
    };
    let endpoint = endpoint(image, &reference);
    let target = Target::new(ctx, &endpoint, &reference.registry, &reference.repository);
    let oci_ref = match (&reference.digest, &reference.tag) {
        (Some(d), _) => target.by_digest(d),
        (None, Some(tag)) => Reference::with_tag(target.registry.clone(), reference.repository.clone(), tag.clone()),
        (None, None) => unreachable!("references are validated"),
    };
    let (bytes, digest) = target.manifest(ctx, &oci_ref).await.map_err(|e| in_image(e, image))?;
    if let Some(pinned) = reference.digest {
        if pinned != digest {
            return Err(FetchError::Mismatch { artifact: image.source.clone(), url: target.url.clone(), expected: pinned, actual: digest, actual_size: bytes.len() as u64 });
        }
    }
    ctx.cache.put_bytes(&bytes)?;
    let media_type = media_type_of(&bytes);
    let mut manifests = Vec::new();
    if !image.platforms.is_empty() {
        if !is_index_media_type(&media_type) {
            return Err(FetchError::Upstream {
                what: image.source.clone(),
                message: format!("`platforms` filters a multi-arch index, but this is a single manifest ({media_type}); remove `platforms`"),
            });
        }
        let index: Value = serde_json::from_slice(&bytes).map_err(|e| FetchError::Upstream { what: image.source.clone(), message: e.to_string() })?;
        let entries: Vec<Descriptor> = serde_json::from_value(index["manifests"].clone()).unwrap_or_default();
        for wanted in &image.platforms {
            let found: Vec<&Descriptor> = entries
                .iter()
                .filter(|d| d.platform_name().is_some_and(|p| platform_matches(wanted, &p)))
                .collect();
            if found.is_empty() {
                let have: Vec<String> = entries.iter().filter_map(Descriptor::platform_name).collect();
                return Err(FetchError::Upstream {
                    what: image.source.clone(),
                    message: format!("no manifest for platform `{wanted}` in the index (it has: {})", have.join(", ")),
                });
            }
            for d in found {
                manifests.push(LockedPlatformManifest {
                    platform: d.platform_name().expect("filtered on platform"),
                    media_type: d.media_type.clone(),
                    digest: d.digest,
                    size: d.size,
                });
            }
        }
        manifests.dedup_by(|a, b| a.digest == b.digest);
    }
    tracing::info!(image = %image.source, %digest, "resolved");
    Ok(LockedImage {
        name: image.name.clone(),
        tag: image.tag.clone(),
        source: image.source.clone(),
        endpoint,
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        media_type,
        digest,
        size: bytes.len() as u64,
        platforms: image.platforms.clone(),
        manifests,
        kind: airlock_bundle::ArtifactKind::Image,
    })
}

fn in_image(e: FetchError, image: &ImageEntry) -> FetchError {
    match e {
        FetchError::Upstream { what, message } => FetchError::Upstream { what: format!("image {} ({what})", image.source), message },
        other => other,
    }
}

/// An image's manifests, fetched, and the blobs they need.
pub(super) struct Walk {
    locked: LockedImage,
    root: Descriptor,
    manifests: Vec<(Digest, String, Arc<Vec<u8>>)>,
    pub needed: Vec<(Digest, u64)>,
}

impl Walk {
    pub fn into_fetched(self, cache: &ContentCache) -> FetchedImage {
        let mut blobs = BlobSet::new();
        for (digest, media_type, bytes) in self.manifests {
            blobs.insert(digest, Blob { size: bytes.len() as u64, source: BlobSource::Bytes(bytes), media_type: Some(media_type) });
        }
        for (digest, size) in self.needed {
            blobs.entry(digest).or_insert(Blob { size, source: BlobSource::File(cache.blob_path(&digest)), media_type: None });
        }
        FetchedImage { locked: self.locked, root: self.root, blobs }
    }
}

/// Fetches (or reads from the cache) every manifest of a locked image, filtering the index
/// to the locked platforms.
pub(super) async fn walk(ctx: &Ctx, locked: &LockedImage) -> Result<Walk, FetchError> {
    let target = Target::new(ctx, &locked.endpoint, &locked.registry, &locked.repository);
    let root_bytes = target.manifest_cached(ctx, &locked.digest).await?;
    let mut manifests = Vec::new();
    let mut needed = Vec::new();
    let mut stack: Vec<Descriptor> = Vec::new();
    let root = if locked.manifests.is_empty() {
        stack.push(descriptor(&locked.media_type, locked.digest, locked.size));
        descriptor(&locked.media_type, locked.digest, locked.size)
    } else {
        // Keep only the locked platforms' entries; the filtered index is a new document.
        let mut index: Value = serde_json::from_slice(&root_bytes).map_err(|e| FetchError::Upstream { what: locked.source.clone(), message: e.to_string() })?;
        let keep: Vec<Digest> = locked.manifests.iter().map(|m| m.digest).collect();
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let kept: Vec<Value> = entries
            .into_iter()
            .filter(|e| e["digest"].as_str().and_then(|d| d.parse::<Digest>().ok()).is_some_and(|d| keep.contains(&d)))
            .collect();
        if kept.len() != keep.len() {
            return Err(FetchError::Upstream { what: locked.source.clone(), message: "the index no longer lists the locked platform manifests".into() });
        }
        index["manifests"] = Value::Array(kept);
        let bytes = serde_json::to_vec(&index).expect("JSON serializes");
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        manifests.push((digest, locked.media_type.clone(), Arc::new(bytes)));
        for m in &locked.manifests {
            stack.push(descriptor(&m.media_type, m.digest, m.size));
        }
        descriptor(&locked.media_type, digest, size)
    };
    while let Some(desc) = stack.pop() {
        if manifests.iter().any(|(d, _, _)| *d == desc.digest) {
            continue;
        }
        let bytes = if desc.digest == locked.digest { root_bytes.clone() } else { target.manifest_cached(ctx, &desc.digest).await? };
        let links: ManifestLinks = serde_json::from_slice(&bytes).map_err(|e| FetchError::Upstream { what: format!("{} manifest {}", locked.source, desc.digest), message: e.to_string() })?;
        for child in links.children() {
            if is_manifest_media_type(&child.media_type) {
                stack.push(child.clone());
            } else if !needed.iter().any(|(d, _)| *d == child.digest) {
                needed.push((child.digest, child.size));
            }
        }
        manifests.push((desc.digest, desc.media_type.clone(), Arc::new(bytes)));
    }
    Ok(Walk { locked: locked.clone(), root, manifests, needed })
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor { media_type: media_type.to_string(), digest, size, artifact_type: None, platform: None, annotations: Default::default(), urls: None, data: None }
}

/// Puts one blob in the cache, resuming a partial download with a range request.
pub(super) async fn ensure_blob(ctx: &Ctx, locked: &LockedImage, digest: Digest, size: u64) -> Result<(), FetchError> {
    if ctx.cache.has(&digest, Some(size)).is_some() {
        ctx.cached_blobs.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let target = Target::new(ctx, &locked.endpoint, &locked.registry, &locked.repository);
    let reference = target.by_digest(&digest);
    target.client.store_auth_if_needed(reference.resolve_registry(), &target.auth).await;
    let url = format!("{}/blobs/{digest}", target.url);
    let digest_text = digest.to_string();
    let open = |offset: u64| {
        let client = target.client.clone();
        let reference = reference.clone();
        let digest_text = digest_text.clone();
        let url = url.clone();
        async move {
            let response = client
                .pull_blob_stream_partial(&reference, &digest_text.as_str(), offset, None)
                .await
                .map_err(|e| classify(e, &url))?;
            let (from, stream) = match response {
                BlobResponse::Partial(s) => (offset, s),
                BlobResponse::Full(s) => (0, s),
            };
            Ok(Opened { from, stream: stream.map(|r| r.map_err(|e| e.to_string())).boxed() })
        }
    };
    let label = format!("image {} blob {digest}", locked.source);
    ctx.http.download_with(&url, &label, Some((digest, Some(size))), &ctx.cache, open).await?;
    ctx.fetched_blobs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auths_are_read() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:secret");
        let json = format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"ghcr.io":{{"username":"u","password":"p"}}}}}}"#);
        let source = RegistryAuthSource::from_config_json(json.as_bytes());
        assert!(matches!(source.for_host("docker.io"), RegistryAuth::Basic(u, p) if u == "me" && p == "secret"));
        assert!(matches!(source.for_host("ghcr.io"), RegistryAuth::Basic(u, _) if u == "u"));
        assert!(matches!(source.for_host("quay.io"), RegistryAuth::Anonymous));
    }
}
