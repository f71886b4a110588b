//! Where refusals are recorded: a JSON-lines file in the data folder, or the log alone.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::EgressError;

/// File name of the refusal log inside the data folder: `DATA/egress-audit.jsonl`.
pub const AUDIT_FILE_NAME: &str = "egress-audit.jsonl";

/// One refused outbound connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The component that tried to connect (`runner`, `mirror`, …).
    pub component: String,
    /// `host:port`, or the host alone when the port is not known.
    pub destination: String,
    pub reason: String,
}

impl EgressRecord {
    pub fn now(component: &str, destination: &str, reason: &str) -> EgressRecord {
        EgressRecord {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            component: component.to_string(),
            destination: destination.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Receives every refusal. Implementations must not fail the refusal itself: the connection
/// is refused whether or not the record could be written (a write failure is logged).
pub trait EgressAudit: Send + Sync {
    fn refused(&self, record: &EgressRecord);
}

/// Appends one JSON object per line to a file and fsyncs it, so a record survives a crash
/// right after the refusal. Each refusal is also logged as a warning.
#[derive(Debug)]
pub struct JsonLinesAudit {
    path: PathBuf,
    file: Mutex<File>,
}

impl JsonLinesAudit {
    /// Opens (creating it and its folder if needed) the log at `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<JsonLinesAudit, EgressError> {
        let path = path.into();
        let error = |source| EgressError::AuditLog { path: path.clone(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(error)?;
        Ok(JsonLinesAudit { file: Mutex::new(file), path })
    }

    /// `DATA/egress-audit.jsonl`.
    pub fn in_data_dir(data_dir: &Path) -> Result<JsonLinesAudit, EgressError> {
        JsonLinesAudit::open(data_dir.join(AUDIT_FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one record as one line and syncs it to disk.
    pub fn append(&self, record: &EgressRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // One write call per line: with O_APPEND, lines from several processes do not interleave.
        file.write_all(&line)?;
        file.sync_data()
    }
}

impl EgressAudit for JsonLinesAudit {
    fn refused(&self, record: &EgressRecord) {
        log(record);
        if let Err(e) = self.append(record) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the egress audit record");
        }
    }
}

/// Logs refusals only (for tools that have no data folder).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingAudit;

impl EgressAudit for TracingAudit {
    fn refused(&self, record: &EgressRecord) {
        log(record);
    }
}

/// Hands every refusal to another sink, then to a hook: how a component counts refusals for
/// its metrics without the guard knowing about metrics.
pub struct ObservedAudit {
    inner: std::sync::Arc<dyn EgressAudit>,
    hook: Box<dyn Fn(&EgressRecord) + Send + Sync>,
}

impl ObservedAudit {
    pub fn new(inner: std::sync::Arc<dyn EgressAudit>, hook: impl Fn(&EgressRecord) + Send + Sync + 'static) -> ObservedAudit {
        ObservedAudit { inner, hook: Box::new(hook) }
    }
}

impl EgressAudit for ObservedAudit {
    fn refused(&self, record: &EgressRecord) {
        self.inner.refused(record);
        (self.hook)(record);
    }
}

fn log(record: &EgressRecord) {
    tracing::warn!(
        component = %record.component,
        destination = %record.destination,
        reason = %record.reason,
        "refused outbound connection"
    );
}
