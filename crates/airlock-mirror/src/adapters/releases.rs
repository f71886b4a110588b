//! Release files under stable paths, from stored `release-file` artifacts:
//!
//! - `/releases/{channel}/manifest.json`: the newest version of every release file on the
//!   channel, regenerated from the store on every request;
//! - `/releases/{channel}/{name}/{version}/{platform}/{file}`: one exact file (immutable);
//! - `/releases/{channel}/{name}/latest/{platform}/{file}`: the newest (a stable URL);
//! - `….sha256` beside each file: `<sha256>  <filename>`, as `sha256sum` writes it;
//! - `/releases/` lists the channels.
//!
//! The channel is the one of the bundle that carried the file; `any` stands for no platform.

use std::collections::BTreeMap;

use airlock_bundle::ArtifactKind;
use serde_json::{json, Value};

use super::catalog::{self, Channels, StoredFile};
use super::http::{compare_versions, seg, AdapterError, Origin, Reply, Req, Result};
use crate::serve::AppState;

pub const NO_PLATFORM: &str = "any";

struct Release {
    file: StoredFile,
    channel: String,
}

impl Release {
    fn platform(&self) -> &str {
        self.file.platform.as_deref().filter(|p| !p.is_empty()).unwrap_or(NO_PLATFORM)
    }

    fn path(&self, version: &str) -> String {
        format!(
            "/releases/{}/{}/{}/{}/{}",
            seg(&self.channel),
            seg(&self.file.name),
            seg(version),
            seg(self.platform()),
            seg(&self.file.file_name)
        )
    }
}

fn load(state: &AppState) -> Result<Vec<Release>> {
    let mut channels = Channels::default();
    let mut releases = Vec::new();
    for file in catalog::files(state, ArtifactKind::ReleaseFile)? {
        let Some(channel) = channels.of(state, &file.bundle_id)? else {
            tracing::warn!(artifact = %file.reference(), bundle = %file.bundle_id, "release file whose bundle has no channel left out");
            continue;
        };
        releases.push(Release { file, channel });
    }
    // Newest version first within each name and platform.
    releases.sort_by(|a, b| {
        (a.channel.as_str(), a.file.name.as_str(), a.platform())
            .cmp(&(b.channel.as_str(), b.file.name.as_str(), b.platform()))
            .then_with(|| compare_versions(&b.file.version, &a.file.version))
            .then_with(|| b.file.imported.cmp(&a.file.imported))
    });
    Ok(releases)
}

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    if !(req.path == "/releases" || req.path.starts_with("/releases/")) {
        return Ok(None);
    }
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed("release files are read-only".into()));
    }
    let releases = load(state)?;
    let segments = req.segments();
    let s: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    let reply = match s.as_slice() {
        [] => {
            let mut channels: Vec<&str> = releases.iter().map(|r| r.channel.as_str()).collect();
            channels.dedup();
            let list: Vec<Value> = channels
                .into_iter()
                .map(|c| json!({ "channel": c, "manifest": req.origin.link(&format!("/releases/{}/manifest.json", seg(c))) }))
                .collect();
            Reply::json(json!({ "channels": list }))
        }
        [channel, "manifest.json"] => manifest(state, &req.origin, &releases, channel)?,
        [channel, name, version, platform, file_name] => {
            let (wanted, sidecar) = match file_name.strip_suffix(".sha256") {
                Some(file) => (file, true),
                None => (*file_name, false),
            };
            let candidates = releases.iter().filter(|r| r.channel == *channel && r.file.name == *name && r.platform() == *platform);
            let release = if *version == "latest" {
                candidates.into_iter().next().filter(|r| r.file.file_name == wanted)
            } else {
                candidates.into_iter().find(|r| r.file.version == *version && r.file.file_name == wanted)
            }
            .ok_or_else(|| AdapterError::not_found(format!("channel {channel} has no release file {name} {version} {platform} {wanted}")))?;
            if sidecar {
                sidecar_reply(&release.file)
            } else {
                Reply::file(release.file.clone())
            }
        }
        _ => return Err(AdapterError::not_found(format!("no release file at {}", req.path))),
    };
    Ok(Some(reply))
}

/// The channel manifest: the newest version of each release file, each entry naming the
/// exact (versioned) URL, its size and sha256, so a reader gets what the manifest describes
/// even if a newer bundle is imported meanwhile.
fn manifest(state: &AppState, origin: &Origin, releases: &[Release], channel: &str) -> Result<Reply> {
    let mut newest: BTreeMap<(&str, &str), &Release> = BTreeMap::new();
    for release in releases.iter().filter(|r| r.channel == channel) {
        newest.entry((release.file.name.as_str(), release.platform())).or_insert(release);
    }
    if newest.is_empty() {
        return Err(AdapterError::not_found(format!("no release files on channel {channel}")));
    }
    let files: Vec<Value> = newest
        .values()
        .map(|r| {
            let path = r.path(&r.file.version);
            json!({
                "name": r.file.name,
                "version": r.file.version,
                "platform": r.file.platform,
                "fileName": r.file.file_name,
                "mediaType": r.file.media_type,
                "size": r.file.size,
                "sha256": r.file.layer.hex(),
                "url": origin.link(&path),
                "sha256Url": origin.link(&format!("{path}.sha256")),
                "latestUrl": origin.link(&r.path("latest")),
                "upstream": r.file.upstream,
                "bundleId": r.file.bundle_id,
                "imported": r.file.imported,
            })
        })
        .collect();
    let updated = newest.values().map(|r| r.file.imported.as_str()).max().unwrap_or_default();
    Ok(Reply::json(json!({
        "channel": channel,
        "sequence": state.store.channel_sequence(channel)?,
        "updated": updated,
        "files": files,
    })))
}

/// `<sha256>  <filename>`: what `sha256sum` writes and `sha256sum -c` reads.
pub fn sidecar_reply(file: &StoredFile) -> Reply {
    Reply::Text { content_type: "text/plain; charset=utf-8", body: format!("{}  {}\n", file.layer.hex(), file.file_name) }
}
