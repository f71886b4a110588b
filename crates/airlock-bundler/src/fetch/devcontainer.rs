//! `[[devcontainer]]` / `bundle lock --devcontainer`: a devcontainer.json's `image` and every
//! feature it names, with the features' `dependsOn` followed transitively, locked through the
//! same registry path as `[[image]]` sources. Each feature's layer is fetched at lock time to
//! read its `devcontainer-feature.json` (that is where `dependsOn` is written).

use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::path::Path;

use airlock_bundle::ArtifactKind;
use airlock_devcontainer::{FeatureRef, FEATURE_CONFIG_MEDIA_TYPE, FEATURE_LAYER_MEDIA_TYPE, FEATURE_METADATA_FILE, MAX_FILE_BYTES};
use airlock_oci::{Digest, Reference, MAX_MANIFEST_SIZE};
use serde_json::Value;

use super::{registry, Ctx, FetchError};
use crate::lock::{LockedImage, LockedPackageLock};
use crate::offline_manifest::{DevcontainerEntry, ImageEntry};

/// The devcontainer's image and features as locked images, and the file's digest.
pub(super) async fn resolve(ctx: &Ctx, entry: &DevcontainerEntry, base_dir: &Path) -> Result<(Vec<LockedImage>, LockedPackageLock), FetchError> {
    let path = base_dir.join(&entry.path);
    let origin = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|e| FetchError::Config { what: format!("devcontainer {origin}"), message: e.to_string() })?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| FetchError::Config { what: format!("devcontainer {origin}"), message: "is not UTF-8 text".into() })?;
    let parsed = airlock_devcontainer::parse(&text, &origin).map_err(devcontainer_error)?;
    for ignored in &parsed.ignored {
        tracing::info!(devcontainer = %origin, property = %ignored, "not acted on by airlock");
    }
    let image = parsed.config.require_image(&origin).map_err(devcontainer_error)?;
    let reference = Reference::parse(image)
        .map_err(|e| FetchError::Config { what: format!("{origin}: `image`"), message: e.reason })?;
    let mut locked = Vec::new();
    let image_entry = entry_for(entry, &reference, image);
    locked.push(registry::resolve(ctx, &image_entry).await.map_err(|e| within(e, &origin, &format!("image {image}")))?);

    let mut queue: VecDeque<FeatureRef> = parsed.config.features.iter().map(|(f, _)| f.clone()).collect();
    let mut seen = BTreeSet::new();
    while let Some(feature) = queue.pop_front() {
        if !seen.insert(feature.to_string()) {
            continue;
        }
        let what = format!("feature {feature}");
        let (locked_feature, depends_on) = resolve_feature(ctx, entry, &feature).await.map_err(|e| within(e, &origin, &what))?;
        locked.push(locked_feature);
        queue.extend(depends_on);
    }
    Ok((locked, LockedPackageLock { path: entry.path.clone(), sha256: Digest::of(&bytes) }))
}

fn devcontainer_error(e: airlock_devcontainer::DevcontainerError) -> FetchError {
    FetchError::Refused { what: "the devcontainer".into(), message: e.to_string() }
}

/// Names the devcontainer and the feature (or image) in an upstream error.
fn within(e: FetchError, origin: &str, what: &str) -> FetchError {
    match e {
        FetchError::Upstream { what: inner, message } => FetchError::Upstream { what: format!("{origin}: {what} ({inner})"), message },
        other => FetchError::Upstream { what: format!("{origin}: {what}"), message: other.to_string() },
    }
}

/// The `[[image]]` the registry path resolves: mirrored under the repository without its
/// host, with its tag (`sha256-HEX` for a reference pinned by digest only).
fn entry_for(entry: &DevcontainerEntry, reference: &Reference, written: &str) -> ImageEntry {
    let tag = match (&reference.tag, &reference.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(digest)) => format!("sha256-{}", digest.hex()),
        (None, None) => "latest".to_string(),
    };
    ImageEntry {
        name: reference.repository.clone(),
        tag,
        source: format!("registry:{written}"),
        platform: None,
        platforms: Vec::new(),
        base_url: entry.base_urls.get(&reference.registry).cloned(),
    }
}

/// Locks one feature and reads its metadata from its layer: returns the features it depends on.
async fn resolve_feature(ctx: &Ctx, entry: &DevcontainerEntry, feature: &FeatureRef) -> Result<(LockedImage, Vec<FeatureRef>), FetchError> {
    let written = feature.to_string();
    let reference = Reference::parse(&written).map_err(|e| FetchError::Config { what: written.clone(), message: e.reason })?;
    let mut locked = registry::resolve(ctx, &entry_for(entry, &reference, &written)).await?;
    locked.kind = ArtifactKind::DevcontainerFeature;
    let manifest = ctx.cache.read_small(&locked.digest, MAX_MANIFEST_SIZE)?.ok_or_else(|| FetchError::Upstream {
        what: written.clone(),
        message: "its manifest is missing from the cache right after it was fetched".into(),
    })?;
    let not_feature = |message: String| FetchError::Refused { what: format!("feature {written}"), message };
    let manifest: Value = serde_json::from_slice(&manifest).map_err(|e| not_feature(format!("its manifest is not JSON: {e}")))?;
    let config_type = manifest["config"]["mediaType"].as_str().unwrap_or("none");
    if config_type != FEATURE_CONFIG_MEDIA_TYPE {
        return Err(not_feature(format!(
            "it is not a devcontainer feature: its config media type is `{config_type}`, not `{FEATURE_CONFIG_MEDIA_TYPE}` (an image belongs in `image`)"
        )));
    }
    let layer = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["mediaType"].as_str() == Some(FEATURE_LAYER_MEDIA_TYPE))
        .ok_or_else(|| not_feature(format!("its manifest has no `{FEATURE_LAYER_MEDIA_TYPE}` layer")))?;
    let digest: Digest = layer["digest"].as_str().and_then(|d| d.parse().ok()).ok_or_else(|| not_feature("its layer has no valid digest".into()))?;
    let size = layer["size"].as_u64().ok_or_else(|| not_feature("its layer has no size".into()))?;
    registry::ensure_blob(ctx, &locked, digest, size).await?;
    let metadata_text = read_metadata(&ctx.cache.blob_path(&digest)).map_err(|m| not_feature(m))?;
    let metadata = airlock_devcontainer::feature_metadata_at(&metadata_text, &format!("{written} {FEATURE_METADATA_FILE}"))
        .map_err(|e| not_feature(e.to_string()))?;
    tracing::info!(feature = %written, version = %metadata.version, digest = %locked.digest, "resolved devcontainer feature");
    Ok((locked, metadata.depends_on.into_iter().map(|(f, _)| f).collect()))
}

/// `devcontainer-feature.json` from the root of a feature's layer tar.
fn read_metadata(layer: &Path) -> Result<String, String> {
    let file = std::fs::File::open(layer).map_err(|e| format!("cannot open its layer: {e}"))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(|e| format!("its layer is not a tar: {e}"))? {
        let entry = entry.map_err(|e| format!("its layer is not a readable tar: {e}"))?;
        let path = entry.path().map_err(|e| format!("its layer has a bad entry name: {e}"))?.into_owned();
        if path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect::<std::path::PathBuf>() != Path::new(FEATURE_METADATA_FILE) {
            continue;
        }
        let mut text = String::new();
        entry
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("its {FEATURE_METADATA_FILE} is not UTF-8 text: {e}"))?;
        return Ok(text);
    }
    Err(format!("its layer has no {FEATURE_METADATA_FILE} at the root"))
}
