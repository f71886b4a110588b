//! Workspace snapshots. A runner uploads the tar + zstd of an environment's workspace when it
//! stops it; whichever runner starts the environment next downloads it and restores it. The
//! archives are content addressed under the backup folder (`DATA/backups/sha256/<hex>`); the
//! environment records the latest one.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::context::{Query, RunnerCaller};
use super::runner_api::{hosted, runner_view};
use airlock_api::RunnerEnvironment;
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::model::{Environment, WorkspaceBackup};
use crate::store::keys;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `sha256:<hex>` of the body; the upload is refused if the bytes do not match.
    pub digest: String,
}

fn backup_dir(app: &App) -> Result<PathBuf, ApiError> {
    app.config.backup_dir.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "this control plane keeps no workspace backups (it was started without a data folder)"
                .into(),
        )
    })
}

fn hex_of(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

pub async fn upload(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<axum::Json<RunnerEnvironment>, ApiError> {
    hosted(&app, &caller, &id)?;
    let want = hex_of(&q.digest)
        .ok_or_else(|| ApiError::invalid("digest", "expected sha256: and 64 lowercase hex digits"))?
        .to_string();
    let dir = backup_dir(&app)?;
    let blobs = dir.join("sha256");
    tokio::fs::create_dir_all(&blobs).await.map_err(io)?;
    let partial = dir.join(format!("upload-{id}-{}.partial", std::process::id()));
    let size = match receive(body, &partial, &want).await {
        Ok(size) => size,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&partial, blobs.join(&want)).await.map_err(io)?;
    let now = app.now();
    let env = app
        .write(|tx| {
            let key = keys::obj(&caller.runner.org_id, "env", &id);
            let mut env: Environment = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("environment", &id))?;
            env.backup = Some(WorkspaceBackup {
                digest: q.digest.clone(),
                size,
                created_at: now,
                runner_id: caller.runner.id.clone(),
            });
            env.updated_at = now;
            tx.put(&key, &env);
            tx.audit(caller.event(
                "environment.backup",
                &format!("environment/{id}"),
                Outcome::Success,
                Some(format!("workspace snapshot {} ({size} bytes)", q.digest)),
            ));
            Ok(env)
        })
        .await?;
    Ok(axum::Json(runner_view(&app, env)?))
}

/// Streams the body to `partial`, hashing as it goes, and checks the digest; fsyncs before
/// returning so the snapshot survives a crash once it is recorded.
async fn receive(body: Body, partial: &std::path::Path, want: &str) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(partial).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid("body", format!("upload broke off: {e}")))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    let got = hex::encode(hasher.finalize());
    if got != want {
        return Err(ApiError::invalid(
            "digest",
            format!("the body hashes to sha256:{got}, not sha256:{want}; upload it again"),
        ));
    }
    Ok(size)
}

pub async fn download(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let env = hosted(&app, &caller, &id)?;
    let backup = env
        .backup
        .ok_or_else(|| ApiError::not_found("workspace backup of environment", &id))?;
    let hex = hex_of(&backup.digest)
        .ok_or_else(|| ApiError::Internal(format!("stored backup digest {} is malformed", backup.digest)))?;
    let path = backup_dir(&app)?.join("sha256").join(hex);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::Internal(format!("workspace backup {} is missing from {}: {e}", backup.digest, path.display()))
    })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_string()),
            (header::CONTENT_LENGTH, backup.size.to_string()),
            (header::HeaderName::from_static("docker-content-digest"), backup.digest.clone()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn io(e: std::io::Error) -> ApiError {
    ApiError::Internal(format!("backup store: {e}"))
}
