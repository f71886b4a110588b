//! `[[vscode_server]]`: server archives from the VS Code update service. The service
//! publishes no digest for a pinned commit, so `bundle lock` downloads each archive (into
//! the cache, so `bundle create` does not download it again) and records its sha256.

use std::collections::BTreeMap;

use super::{Ctx, FetchError};
use airlock_bundle::ArtifactKind;
use crate::lock::LockedFile;
use crate::sources::{is_hex_commit, VscodeServerSource};

pub(super) async fn resolve(ctx: &Ctx, source: &VscodeServerSource) -> Result<Vec<LockedFile>, FetchError> {
    let base = source.base_url.trim_end_matches('/');
    let commit = if source.commit == "latest" {
        // Newest first; the first platform's list decides, as the servers ship together.
        let url = format!("{base}/api/commits/{}/{}", source.quality, source.platforms[0]);
        let commits: Vec<String> = ctx.http.get_json(&url).await?;
        let latest = commits.into_iter().next().ok_or_else(|| FetchError::Upstream {
            what: url.clone(),
            message: "the update service lists no commit".into(),
        })?;
        if !is_hex_commit(&latest) {
            return Err(FetchError::Upstream { what: url, message: format!("`{latest}` is not a commit") });
        }
        latest
    } else {
        source.commit.clone()
    };
    let mut files = Vec::new();
    for platform in &source.platforms {
        let url = format!("{base}/commit:{commit}/{platform}/{}", source.quality);
        let label = format!("vscode-server {commit} ({platform})");
        let done = ctx.http.download(&url, &label, None, &ctx.cache).await?;
        tracing::info!(%platform, %commit, bytes = done.size, "VS Code server resolved");
        files.push(LockedFile {
            kind: ArtifactKind::VscodeServer,
            name: "vscode-server".into(),
            version: commit.clone(),
            platform: Some(platform.clone()),
            url,
            sha256: done.digest,
            size: Some(done.size),
            file_name: format!("vscode-{platform}.tar.gz"),
            media_type: "application/gzip".into(),
            verified_by: "downloaded".into(),
            annotations: BTreeMap::from([("vnd.airlock.vscode.quality".to_string(), source.quality.clone())]),
            inline: None,
        });
    }
    Ok(files)
}
