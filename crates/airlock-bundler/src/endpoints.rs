//! `bundle endpoints`: the host:port list the connected side must reach for a manifest, for
//! the low-side firewall. Derived from the sources' base URLs and the registries of the
//! devcontainer.json files' images and features, plus the download hosts the well-known
//! upstreams redirect to, plus (given a lock) the host of every locked URL and image, which
//! includes the features the named ones depend on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_bundle::ArtifactKind;

use crate::lock::Lock;
use crate::offline_manifest::{OfflineManifest, Source};

/// A `[[devcontainer]]` file that cannot be read for its registries.
#[derive(Debug, thiserror::Error)]
#[error("devcontainer {path}: {message}")]
pub struct EndpointsError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`; a leading `*.` stands for any subdomain (CDN hosts).
    pub address: String,
    /// Why it is needed.
    pub reasons: Vec<String>,
}

/// Where the public upstreams send the actual bytes (302s to CDNs and storage).
fn redirect_hosts(host: &str) -> &'static [&'static str] {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => &["registry-1.docker.io:443", "auth.docker.io:443", "production.cloudflare.docker.com:443"],
        "mcr.microsoft.com" => &["*.data.mcr.microsoft.com:443"],
        "ghcr.io" => &["pkg-containers.githubusercontent.com:443"],
        "public.ecr.aws" => &["*.cloudfront.net:443"],
        "update.code.visualstudio.com" => &["vscode.download.prss.microsoft.com:443"],
        "open-vsx.org" => &["openvsxorg.blob.core.windows.net:443"],
        "data.services.jetbrains.com" => &["download.jetbrains.com:443", "download-cdn.jetbrains.com:443"],
        "pypi.org" => &["files.pythonhosted.org:443"],
        _ => &[],
    }
}

fn host_port(url: &str) -> Option<(String, String)> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?.to_string();
    let port = url.port_or_known_default()?;
    Some((format!("{host}:{port}"), host))
}

/// Where a registry is reached: the configured base URL, else the registry over HTTPS
/// (Docker Hub's API host for `docker.io`).
fn registry_base(registry: &str, base_url: Option<&String>) -> String {
    match base_url {
        Some(base) => base.clone(),
        None if registry == "docker.io" => "https://registry-1.docker.io".to_string(),
        None => format!("https://{registry}"),
    }
}

/// The image and the features a devcontainer.json names, as `(reference, what)`.
fn devcontainer_references(path: &Path) -> Result<Vec<(String, String)>, EndpointsError> {
    let fail = |message: String| EndpointsError { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let parsed = airlock_devcontainer::parse(&text, &path.display().to_string()).map_err(|e| fail(e.to_string()))?;
    let mut found: Vec<(String, String)> = parsed.config.image.iter().map(|image| (image.clone(), format!("devcontainer image {image}"))).collect();
    for (feature, _) in &parsed.config.features {
        found.push((feature.to_string(), format!("devcontainer feature {feature}")));
    }
    Ok(found)
}

/// `base_dir` is the manifest's folder, which `[[devcontainer]]` paths are relative to.
pub fn endpoints(manifest: &OfflineManifest, lock: Option<&Lock>, base_dir: &Path) -> Result<Vec<Endpoint>, EndpointsError> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |address: String, reason: String| {
        let reasons = found.entry(address).or_default();
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    };
    let add_url = |url: &str, reason: String, add: &mut dyn FnMut(String, String)| {
        if let Some((address, host)) = host_port(url) {
            add(address, reason.clone());
            for extra in redirect_hosts(&host) {
                add(extra.to_string(), format!("{reason}: downloads redirect here"));
            }
        }
    };
    for image in &manifest.images {
        if let Ok(Source::Registry(r)) = image.kind_source(std::path::Path::new("")) {
            let base = registry_base(&r.registry, image.base_url.as_ref());
            add_url(&base, format!("registry image {}", image.source.trim_start_matches("registry:")), &mut add);
        }
    }
    for entry in &manifest.devcontainers {
        for (reference, what) in devcontainer_references(&base_dir.join(&entry.path))? {
            // A malformed reference is `bundle lock`'s to explain; here it has no host to list.
            if let Ok(r) = airlock_oci::Reference::parse(&reference) {
                add_url(&registry_base(&r.registry, entry.base_urls.get(&r.registry)), what, &mut add);
            }
        }
    }
    for s in &manifest.vscode_server {
        add_url(&s.base_url, "VS Code update service".into(), &mut add);
    }
    for s in &manifest.openvsx {
        add_url(&s.base_url, "Open VSX registry".into(), &mut add);
    }
    for s in &manifest.jetbrains {
        add_url(&s.base_url, "JetBrains products API".into(), &mut add);
    }
    for s in &manifest.https {
        add_url(&s.url, format!("{} {}", s.kind, s.name), &mut add);
    }
    if let Some(ami) = &manifest.ami {
        for url in &ami.descriptor_urls {
            add_url(url, "AMI descriptors".into(), &mut add);
        }
    }
    for s in &manifest.python {
        add_url(&s.index_url, format!("Python index for {}", s.lock), &mut add);
    }
    for s in &manifest.npm {
        add_url(&s.registry, format!("npm registry for {}", s.lock), &mut add);
    }
    for s in &manifest.cargo {
        add_url(&s.download_url, format!("crate downloads for {}", s.lock), &mut add);
    }
    if let Some(lock) = lock {
        for image in &lock.images {
            let what = match image.kind {
                ArtifactKind::DevcontainerFeature => "devcontainer feature",
                _ => "registry image",
            };
            add_url(&image.endpoint, format!("{what} {} (locked)", image.source.trim_start_matches("registry:")), &mut add);
        }
        for file in lock.files.iter().filter(|f| f.inline.is_none()) {
            add_url(&file.url, format!("{} {} (locked download)", file.kind, file.name), &mut add);
        }
    }
    Ok(found.into_iter().map(|(address, reasons)| Endpoint { address, reasons }).collect())
}
