//! The one door to the `sled` database.
//!
//! Everything lives in one tree under string keys (see [`keys`]). Writes go through
//! [`Store::commit`]: one writer at a time reads what it needs, stages puts, deletes and audit
//! events, and the whole set (state change plus its hash-chained audit records) is applied
//! as one atomic batch. Callers then [`Store::flush`] before acknowledging, so an
//! acknowledged write and its audit record survive a crash together.
//!
//! sled applies a batch in memory before the flush makes it durable, and cannot take it
//! back. So a failed flush poisons the store: from then on every read and write is refused
//! ([`StoreError::Poisoned`], 503 to clients) until the process restarts and reopens the
//! folder, and nobody sees a write that was never acknowledged.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::audit::{self, AuditEvent};
use crate::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {path} is in use by another control plane \
         (stop it first, or give this one another data directory)"
    )]
    InUse { path: String },
    #[error("cannot open the data directory {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("cannot close the data directory: {0}")]
    Close(airlock_db::DbError),
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the data directory could not be written ({reason}); the control plane refuses every \
         request that needs its database until it is restarted: free disk space or fix the \
         disk under the data directory, then restart it"
    )]
    Poisoned { reason: String },
    #[error("the store already holds {entries} entries: a snapshot is restored only into an empty data directory")]
    NotEmpty { entries: usize },
    #[error("stored record `{key}` cannot be read ({source}); the data directory may be damaged")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

/// Store key layout. Org-owned objects sit under their org so a lookup with the caller's org
/// cannot reach another org's object.
pub mod keys {
    pub fn org(id: &str) -> String {
        format!("org/{id}")
    }
    pub fn obj(org: &str, kind: &str, id: &str) -> String {
        format!("o/{org}/{kind}/{id}")
    }
    pub fn obj_prefix(org: &str, kind: &str) -> String {
        format!("o/{org}/{kind}/")
    }
    /// Lower-cased email → `<org id>/<user id>`.
    pub fn email(email: &str) -> String {
        format!("email/{}", email.to_lowercase())
    }
    pub fn password(user: &str) -> String {
        format!("pw/{user}")
    }
    /// Token record by the hash of the token.
    pub fn token(hash: &str) -> String {
        format!("tok/{hash}")
    }
    /// Token hash by subject (user or runner) and token id, for listing and revoking.
    pub fn subject_token(subject: &str, token_id: &str) -> String {
        format!("subj/{subject}/{token_id}")
    }
    pub fn subject_token_prefix(subject: &str) -> String {
        format!("subj/{subject}/")
    }
    pub fn sealed(secret: &str) -> String {
        format!("sealed/{secret}")
    }
    /// Environments assigned to a runner.
    pub fn runner_env(runner: &str, env: &str) -> String {
        format!("renv/{runner}/{env}")
    }
    pub fn runner_env_prefix(runner: &str) -> String {
        format!("renv/{runner}/")
    }
    /// Environments of an org waiting for a runner with a free place, oldest first.
    pub fn queued(org: &str, env: &str) -> String {
        format!("queue/{org}/{env}")
    }
    pub fn queued_prefix(org: &str) -> String {
        format!("queue/{org}/")
    }
    pub fn event_prefix(env: &str) -> String {
        format!("evt/{env}/")
    }
    /// Environments a runner hosts that are not deleted (capacity accounting).
    pub fn runner_load(runner: &str) -> String {
        format!("cnt/runner/{runner}")
    }
    /// A user's environments that are creating, starting or running (org policy).
    pub fn user_running(user: &str) -> String {
        format!("cnt/running/{user}")
    }
    pub const AUDIT_PREFIX: &str = "audit/";
    pub fn audit(seq: u64) -> String {
        format!("audit/{seq:020}")
    }
    pub const AUDIT_HEAD: &str = "meta/audit_head";
    pub const INITIALIZED: &str = "meta/initialized";
}

pub struct Store {
    /// `None` for a temporary store, whose files vanish with it.
    db: Option<airlock_db::Db>,
    tree: sled::Tree,
    /// Held to apply a batch, and to flush: sled 0.34 can deadlock when a flush overlaps an
    /// `apply_batch`, or when many flushes run at once (they fill its I/O thread pool).
    writer: Mutex<()>,
    /// One flush at a time; the others wait and usually find their writes already durable.
    flusher: Mutex<()>,
    /// Batches applied, and how many of them are known durable (group commit).
    applied: AtomicU64,
    durable: AtomicU64,
    /// Why a flush failed, once one has: what is in memory may differ from the disk.
    poisoned: OnceLock<String>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = airlock_db::open(dir, airlock_db::Profile::HighThroughput).map_err(|e| {
            let path = dir.display().to_string();
            match e {
                airlock_db::DbError::Locked(_) => StoreError::InUse { path },
                airlock_db::DbError::Open { source, .. } => StoreError::Open { path, source },
                other => StoreError::Close(other),
            }
        })?;
        let tree = db.sled().open_tree("airlock")?;
        Ok(Self::with_tree(Some(db), tree))
    }

    /// A throw-away in-memory store for tests.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let tree = db.open_tree("airlock")?;
        Ok(Self::with_tree(None, tree))
    }

    fn with_tree(db: Option<airlock_db::Db>, tree: sled::Tree) -> Store {
        Store {
            db,
            tree,
            writer: Mutex::new(()),
            flusher: Mutex::new(()),
            applied: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            poisoned: OnceLock::new(),
        }
    }

    /// Makes everything durable, closes the database and waits until its folder can be
    /// opened again: what a process that reopens the same folder must do instead of
    /// dropping the store.
    pub fn close(self) -> Result<(), StoreError> {
        self.flush_blocking()?;
        let Store { db, tree, .. } = self;
        drop(tree);
        match db {
            Some(db) => db.close().map_err(StoreError::Close),
            None => Ok(()),
        }
    }

    /// Refuses once a flush failed (see the module docs).
    fn usable(&self) -> Result<(), StoreError> {
        match self.poisoned.get() {
            Some(reason) => Err(StoreError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether a failed flush has poisoned the store (it then refuses everything).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.get().is_some()
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.usable()?;
        match self.tree.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn contains(&self, key: &str) -> Result<bool, StoreError> {
        self.usable()?;
        Ok(self.tree.contains_key(key)?)
    }

    /// Records under `prefix`, in key order, starting after the key `prefix + after`, that
    /// `keep` accepts; at most `limit`. Also returns whether more would follow.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Result<(Vec<(String, T)>, bool), StoreError> {
        self.usable()?;
        let start = match after {
            Some(after) => Bound::Excluded(format!("{prefix}{after}").into_bytes()),
            None => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut out = Vec::new();
        for entry in self.tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, value) = entry?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8_lossy(&key).into_owned();
            let item: T = decode(&key, &value)?;
            if keep(&item) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push((key, item));
            }
        }
        Ok((out, false))
    }

    /// Every record under `prefix`.
    pub fn scan_all<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        Ok(self.scan(prefix, None, usize::MAX, |_| true)?.0)
    }

    /// Every key and value, read as the only writer: one instant of the store, with no write
    /// half-applied (what a site backup copies while the control plane keeps serving).
    pub fn snapshot(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.scan_raw("")
    }

    /// Writes a [`Store::snapshot`] into this store, which must be empty, as one batch, and
    /// makes it durable.
    pub fn load_snapshot(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        {
            let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.usable()?;
            if !self.tree.is_empty() {
                return Err(StoreError::NotEmpty { entries: self.tree.len() });
            }
            let mut batch = sled::Batch::default();
            for (key, value) in entries {
                batch.insert(key.as_bytes(), value.as_slice());
            }
            self.tree.apply_batch(batch)?;
            self.applied.fetch_add(1, Ordering::SeqCst);
        }
        self.flush_blocking()
    }

    /// Raw keys and values under a prefix (audit verification reads bytes as stored).
    pub fn scan_raw(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.usable()?;
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    /// Runs `stage` as the only writer and applies what it staged, with its audit records,
    /// as one atomic batch. Nothing is applied if `stage` fails.
    pub fn commit<R, E: From<StoreError>>(
        &self,
        now: Timestamp,
        stage: impl FnOnce(&mut Txn<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.usable()?;
        let mut txn = Txn {
            store: self,
            writes: BTreeMap::new(),
            events: Vec::new(),
        };
        let result = stage(&mut txn)?;
        let Txn {
            mut writes, events, ..
        } = txn;
        if !events.is_empty() {
            audit::chain(self, now, events, &mut writes)?;
        }
        if !writes.is_empty() {
            let mut batch = sled::Batch::default();
            for (key, value) in writes {
                match value {
                    Some(bytes) => batch.insert(key.as_bytes(), bytes),
                    None => batch.remove(key.as_bytes()),
                }
            }
            if let Err(e) = self.tree.apply_batch(batch) {
                // sled fails a write after an I/O error of its own: the disk and memory may
                // already differ, so stop here as after a failed flush.
                if matches!(e, sled::Error::Io(_)) {
                    tracing::error!(error = %e, "writing failed; the store refuses every request until restarted");
                    let _ = self.poisoned.set(format!("writing failed: {e}"));
                    return Err(self.usable().expect_err("just poisoned").into());
                }
                return Err(StoreError::from(e).into());
            }
            self.applied.fetch_add(1, Ordering::SeqCst);
        }
        Ok(result)
    }

    /// Makes every write applied so far durable (fsync). Concurrent callers share flushes:
    /// whoever flushes covers every batch applied before it started.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let wanted = self.applied.load(Ordering::SeqCst);
        if self.durable.load(Ordering::SeqCst) >= wanted {
            return Ok(());
        }
        let _flusher = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        if self.durable.load(Ordering::SeqCst) >= wanted {
            return Ok(());
        }
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.usable()?;
        let covered = self.applied.load(Ordering::SeqCst);
        if let Err(e) = self.tree.flush() {
            let reason = format!("flushing to disk failed: {e}");
            tracing::error!(error = %e, "flush failed; the store refuses every request until restarted");
            let _ = self.poisoned.set(reason);
            return self.usable();
        }
        self.durable.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// [`Store::flush_blocking`] from async code, without stalling other tasks on the
    /// worker thread while the disk syncs.
    pub async fn flush(&self) -> Result<(), StoreError> {
        blocking(|| self.flush_blocking())
    }

    /// Writes raw bytes outside any transaction. Only for tests that play an attacker
    /// editing the data directory.
    #[doc(hidden)]
    pub fn raw_put(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.tree.insert(key, v)?,
            None => self.tree.remove(key)?,
        };
        self.tree.flush()?;
        Ok(())
    }

    #[doc(hidden)]
    pub fn raw_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }
}

/// Staged changes of one [`Store::commit`]. Reads see the staged writes.
pub struct Txn<'a> {
    store: &'a Store,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    events: Vec<AuditEvent>,
}

impl Txn<'_> {
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.writes.get(key) {
            Some(Some(bytes)) => decode(key, bytes).map(Some),
            Some(None) => Ok(None),
            None => self.store.get(key),
        }
    }

    pub fn contains(&self, key: &str) -> Result<bool, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.is_some()),
            None => self.store.contains(key),
        }
    }

    /// Every record under `prefix`, staged writes included.
    pub fn scan_all<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut merged: BTreeMap<String, T> = self.store.scan_all(prefix)?.into_iter().collect();
        for (key, value) in self.writes.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match value {
                Some(bytes) => {
                    merged.insert(key.clone(), decode(key, bytes)?);
                }
                None => {
                    merged.remove(key);
                }
            }
        }
        Ok(merged.into_iter().collect())
    }

    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) {
        let bytes = serde_json::to_vec(value).expect("records always serialize");
        self.writes.insert(key.to_string(), Some(bytes));
    }

    pub fn delete(&mut self, key: &str) {
        self.writes.insert(key.to_string(), None);
    }

    /// A counter stored under `key`, moved by `delta` (never below zero).
    pub fn add_to_counter(&mut self, key: &str, delta: i64) -> Result<u64, StoreError> {
        let current: u64 = self.get(key)?.unwrap_or(0);
        let next = (current as i64 + delta).max(0) as u64;
        if next == 0 {
            self.delete(key);
        } else {
            self.put(key, &next);
        }
        Ok(next)
    }

    pub fn audit(&mut self, event: AuditEvent) {
        self.events.push(event);
    }
}

/// Runs blocking work from async code: on a multi-threaded runtime the worker hands its
/// other tasks to another thread first; elsewhere (single-threaded tests) it just runs.
pub fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}
