//! Mirror operations (import, gc, verify, ls, history, tokens), run either directly on the
//! data folder or, while `mirror serve` holds it (sled allows one process), through the
//! server's admin socket `DATA/admin/admin.sock`. The socket is bound inside `DATA/admin/`,
//! a directory of mode 0700 created so before the socket exists: no other user can reach
//! it at any moment (a socket bound in a shared folder and chmod'ed afterwards could be
//! connected to in between).
//! Requests and answers are one JSON line each; before the answer, an import sends progress
//! lines (`{"progress": …}`, at most five a second) that the client shows as it would its own.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_bundle::{ArtifactKind, Progress, SignatureFile};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::anchor::{self, KeyRequirement};
use crate::import::{self, ImportOptions, ImportOutcome};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use airlock_egress::{EgressAudit, EgressGuard, JsonLinesAudit, ObservedAudit};

use crate::{maintenance, replicate, tokens};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Import {
        bundle: PathBuf,
        /// Requirements the importer adds (its --trusted-key, its own configuration). The
        /// side that holds the store adds the pinned site anchor; nothing here can relax it.
        requirements: Vec<KeyRequirement>,
        /// Detached signatures' text, with the file name.
        signatures: Vec<(String, String)>,
        allow_downgrade: bool,
        allow_expired: bool,
        actor: String,
    },
    Gc { dry_run: bool },
    /// The pinned trust anchor (read-only).
    TrustAnchor,
    Verify,
    Ls { kind: Option<ArtifactKind> },
    History,
    TokenCreate { name: String },
    Push {
        url: String,
        credentials: Option<(String, String)>,
        /// PEM text of an extra CA to trust for the target.
        extra_ca: Option<String>,
        /// A kind, or a repository name.
        only: Option<String>,
        /// The site's `egress.allow`: the target and every redirect must be in it.
        egress_allow: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
    #[error("cannot talk to the running mirror through {path}: {message}")]
    Socket { path: PathBuf, message: String },
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin").join("admin.sock")
}

/// Runs a request: through the running server when there is one, else on the folder.
pub fn run(data_dir: &Path, request: Request, progress: &dyn Progress) -> Result<Value, AdminError> {
    let socket = socket_path(data_dir);
    if let Ok(stream) = UnixStream::connect(&socket) {
        return send(stream, &socket, &request, progress);
    }
    let store = Store::open(data_dir)?;
    store.blobs.clear_staging().map_err(StoreError::from)?;
    let answer = execute(&store, None, request, progress).map_err(AdminError::Failed);
    // The same process may serve this folder next (`airlock demo`): release it fully.
    let closed = store.close();
    let answer = answer?;
    closed?;
    Ok(answer)
}

fn send(mut stream: UnixStream, socket: &Path, request: &Request, progress: &dyn Progress) -> Result<Value, AdminError> {
    let fail = |message: String| AdminError::Socket { path: socket.to_path_buf(), message };
    let mut line = serde_json::to_vec(request).expect("requests serialize");
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| fail(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut answer = String::new();
        let n = reader.read_line(&mut answer).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            return Err(fail("the server closed the connection without an answer".into()));
        }
        let answer: Value = serde_json::from_str(&answer).map_err(|e| fail(format!("unreadable answer: {e}")))?;
        if let Some(update) = answer.get("progress") {
            ProgressLine::show(update, progress);
            continue;
        }
        progress.finish();
        return match answer.get("error").and_then(Value::as_str) {
            Some(error) => Err(AdminError::Failed(error.to_string())),
            None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
        };
    }
}

/// One progress line of the admin socket.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProgressLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    advance: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    finish: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ProgressLine {
    fn show(update: &Value, progress: &dyn Progress) {
        let Ok(line) = ProgressLine::deserialize(update) else { return };
        if let Some(total) = line.start {
            progress.start(total);
        }
        if let Some(entry) = &line.entry {
            progress.entry(entry);
        }
        if line.advance > 0 {
            progress.advance(line.advance);
        }
        if line.finish {
            progress.finish();
        }
    }
}

/// Sends a running import's progress to the socket client, a line at most every
/// [`SOCKET_PROGRESS_EVERY`]: bytes and the latest entry are gathered in between.
struct SocketProgress {
    lines: tokio::sync::mpsc::UnboundedSender<ProgressLine>,
    pending: Mutex<(ProgressLine, Instant)>,
}

const SOCKET_PROGRESS_EVERY: Duration = Duration::from_millis(200);

impl SocketProgress {
    fn send_now(&self, pending: &mut (ProgressLine, Instant)) {
        let line = std::mem::take(&mut pending.0);
        pending.1 = Instant::now();
        // The client may have gone; the import carries on regardless.
        let _ = self.lines.send(line);
    }

    fn update(&self, now: bool, change: impl FnOnce(&mut ProgressLine)) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut pending.0);
        if now || pending.1.elapsed() >= SOCKET_PROGRESS_EVERY {
            self.send_now(&mut pending);
        }
    }
}

impl Progress for SocketProgress {
    fn start(&self, total_bytes: u64) {
        self.update(true, |line| line.start = Some(total_bytes));
    }

    fn entry(&self, label: &str) {
        self.update(false, |line| line.entry = Some(label.to_string()));
    }

    fn advance(&self, bytes: u64) {
        self.update(false, |line| line.advance += bytes);
    }

    fn finish(&self) {
        self.update(true, |line| line.finish = true);
    }
}

/// Carries out one request on an open store.
pub fn execute(store: &Store, metrics: Option<&Metrics>, request: Request, progress: &dyn Progress) -> Result<Value, String> {
    match request {
        Request::Import { bundle, requirements, signatures, allow_downgrade, allow_expired, actor } => {
            // Here, on the side that holds the store: a socket client cannot leave it out.
            let trust = anchor::requirements(store, &requirements).map_err(|e| e.to_string())?;
            let detached = signatures
                .iter()
                .map(|(text, origin)| SignatureFile::decode(text, origin).map(|s| (s, origin.clone())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let options = ImportOptions { trust: &trust, detached: &detached, allow_downgrade, allow_expired, actor, progress };
            let outcome = import::import_file(store, &bundle, &options);
            if let Some(metrics) = metrics {
                metrics.import_result(match &outcome {
                    Ok(ImportOutcome::Imported { .. }) => "imported",
                    Ok(ImportOutcome::AlreadyImported { .. }) => "already-imported",
                    Err(_) => "refused",
                });
            }
            match outcome.map_err(|e| e.to_string())? {
                ImportOutcome::Imported { record, written_bytes, reused_blobs } => Ok(json!({
                    "status": "imported", "record": record, "writtenBytes": written_bytes, "reusedBlobs": reused_blobs,
                })),
                ImportOutcome::AlreadyImported { record } => Ok(json!({ "status": "already-imported", "record": record })),
            }
        }
        Request::Gc { dry_run } => {
            let report = maintenance::gc(store, dry_run).map_err(|e| e.to_string())?;
            Ok(json!({
                "dryRun": dry_run,
                "removed": report.removed.iter().map(|(d, s)| json!({ "digest": d, "size": s })).collect::<Vec<_>>(),
                "kept": report.kept,
            }))
        }
        Request::Verify => {
            let report = maintenance::verify(store).map_err(|e| e.to_string())?;
            Ok(json!({
                "checked": report.checked,
                "bytes": report.bytes,
                "corrupt": report.corrupt.iter().map(|(d, why)| json!({ "digest": d, "problem": why })).collect::<Vec<_>>(),
            }))
        }
        Request::TrustAnchor => Ok(json!(store.trust_anchor().map_err(|e| e.to_string())?)),
        Request::Ls { kind } => Ok(json!(store.artifacts(kind).map_err(|e| e.to_string())?)),
        Request::History => Ok(json!(store.history().map_err(|e| e.to_string())?)),
        Request::Push { url, credentials, extra_ca, only, egress_allow } => {
            let only = only.map(|o| match o.parse::<ArtifactKind>() {
                Ok(kind) => replicate::Only::Kind(kind),
                Err(_) => replicate::Only::Repository(o),
            });
            let file: std::sync::Arc<dyn EgressAudit> =
                std::sync::Arc::new(JsonLinesAudit::in_data_dir(store.data_dir()).map_err(|e| e.to_string())?);
            let audit = match metrics {
                Some(metrics) => {
                    let refusals = metrics.egress_refusals();
                    std::sync::Arc::new(ObservedAudit::new(file, move |_| {
                        refusals.inc();
                    }))
                }
                None => file,
            };
            let egress = EgressGuard::from_allow_list(&egress_allow, audit).map_err(|e| e.to_string())?.with_component("mirror");
            let target = replicate::Target { url, credentials, extra_ca: extra_ca.map(String::into_bytes), egress };
            let report = replicate::replicate(store, &target, only.as_ref()).map_err(|e| e.to_string())?;
            Ok(json!(report))
        }
        Request::TokenCreate { name } => Ok(json!({ "name": name, "token": tokens::create(store, &name).map_err(|e| e.to_string())? })),
    }
}

/// Binds the admin socket at `path` (from [`socket_path`]) inside its private directory:
/// created with mode 0700, or, if it already exists, checked to be a real directory of this
/// process's user and tightened to 0700 before the socket is bound in it.
pub fn bind_socket(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let private = |message: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, message);
    let dir = path.parent().expect("the admin socket is inside a directory");
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new().mode(0o700).create(dir)?,
        Err(e) => return Err(e),
        Ok(meta) if !meta.file_type().is_dir() => {
            return Err(private(format!("{} must be a directory for the admin socket; remove it and start again", dir.display())));
        }
        // SAFETY: geteuid has no preconditions.
        Ok(meta) if meta.uid() != unsafe { libc::geteuid() } => {
            return Err(private(format!(
                "{} belongs to uid {}, not to the user running the mirror; remove it and start again",
                dir.display(),
                meta.uid()
            )));
        }
        Ok(_) => {}
    }
    // Also when the umask stripped bits from a new directory, or an old one was wider.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    // The directory already keeps others out; the socket's own mode says the same.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the admin socket until the task is dropped.
pub async fn serve_socket(listener: tokio::net::UnixListener, store: Arc<crate::serve::AppState>) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    loop {
        let (stream, _) = listener.accept().await?;
        let state = store.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if tokio::io::BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match serde_json::from_str::<Request>(&line) {
                Err(e) => json!({ "error": format!("bad request: {e}") }),
                Ok(request) => {
                    let state = state.clone();
                    let (lines, mut updates) = tokio::sync::mpsc::unbounded_channel();
                    let progress = SocketProgress { lines, pending: Mutex::new((ProgressLine::default(), Instant::now())) };
                    let work = tokio::task::spawn_blocking(move || execute(&state.store, Some(&state.metrics), request, &progress));
                    // Progress lines go out while the work runs; the channel closes when it ends.
                    while let Some(update) = updates.recv().await {
                        let mut bytes = serde_json::to_vec(&json!({ "progress": update })).expect("json");
                        bytes.push(b'\n');
                        let _ = write.write_all(&bytes).await;
                    }
                    match work.await.unwrap_or_else(|e| Err(e.to_string())) {
                        Ok(value) => json!({ "result": value }),
                        Err(error) => json!({ "error": error }),
                    }
                }
            };
            let mut bytes = serde_json::to_vec(&answer).expect("json");
            bytes.push(b'\n');
            let _ = write.write_all(&bytes).await;
        });
    }
}
