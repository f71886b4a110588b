//! The embedded database (sled) behind the control plane's and the mirror's metadata.
//!
//! sled takes an exclusive `flock` on `<folder>/db` when it opens and lets go only when the
//! last of its internal handles is dropped, some of which live on in its background threads
//! for a moment after the `Db` itself is gone. Code that closes a database and opens it again
//! in the same process (first-start initialisation, then the server; an offline import, then
//! the mirror) must therefore [`close`] it and wait for the lock, not just drop it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use sled;

/// How long [`close`] waits for sled's background threads to let go of the folder.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Another process, or a handle still open in this one, holds the folder.
    #[error("the database folder {0} is in use by another airlock process")]
    Locked(PathBuf),
    #[error("cannot open the database folder {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("cannot flush the database in {path}: {source}")]
    Flush { path: PathBuf, source: sled::Error },
    #[error("the database folder {path} was still locked {waited:?} after it was closed")]
    StillLocked { path: PathBuf, waited: Duration },
}

/// How the database is tuned for its use.
#[derive(Clone, Copy, Debug, Default)]
pub enum Profile {
    /// sled's defaults: small on disk.
    #[default]
    Compact,
    /// Many small writes (the control plane).
    HighThroughput,
}

/// An open database and the folder it lives in.
pub struct Db {
    db: sled::Db,
    path: PathBuf,
}

/// Opens (creating when missing) the database in `path`. Every write is flushed by its
/// caller before it is acknowledged, so sled's periodic background flush is off.
pub fn open(path: &Path, profile: Profile) -> Result<Db, DbError> {
    let mode = match profile {
        Profile::Compact => sled::Mode::LowSpace,
        Profile::HighThroughput => sled::Mode::HighThroughput,
    };
    let db = sled::Config::new().path(path).mode(mode).flush_every_ms(None).open().map_err(|source| {
        if is_lock_conflict(&source) {
            DbError::Locked(path.to_path_buf())
        } else {
            DbError::Open { path: path.to_path_buf(), source }
        }
    })?;
    Ok(Db { db, path: path.to_path_buf() })
}

impl Db {
    pub fn sled(&self) -> &sled::Db {
        &self.db
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, closes, and waits until the folder can be opened again.
    pub fn close(self) -> Result<(), DbError> {
        let Db { db, path } = self;
        db.flush().map_err(|source| DbError::Flush { path: path.clone(), source })?;
        drop(db);
        wait_unlocked(&path, CLOSE_TIMEOUT)
    }
}

/// Whether opening failed because the folder's lock is held.
fn is_lock_conflict(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock"))
}

/// Waits until nothing holds the lock on `path/db` (sled's lock file), up to `timeout`.
fn wait_unlocked(path: &Path, timeout: Duration) -> Result<(), DbError> {
    let lock_file = path.join("db");
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match try_lock(&lock_file) {
            // Taken and, as the file is dropped, released again at once.
            Ok(true) => return Ok(()),
            // No lock file: nothing can hold it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Ok(false) | Err(_) if started.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(false) | Err(_) => return Err(DbError::StillLocked { path: path.to_path_buf(), waited: started.elapsed() }),
        }
    }
}

/// Tries sled's kind of lock (an exclusive `flock`, which conflicts between open files even
/// within one process) on `file`: true when it could be taken.
fn try_lock(file: &Path) -> io::Result<bool> {
    let file = File::open(file)?;
    // SAFETY: a plain descriptor we own for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_as_locked_and_a_closed_folder_opens_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let first = open(&path, Profile::HighThroughput).unwrap();
        first.sled().insert("k", "v").unwrap();
        assert!(matches!(open(&path, Profile::HighThroughput), Err(DbError::Locked(p)) if p == path));
        assert!(!try_lock(&path.join("db")).unwrap(), "sled holds the lock while open");
        first.close().unwrap();
        // Repeatedly, so a close that returned before the lock was free would show.
        for round in 0..20 {
            let again = open(&path, Profile::HighThroughput).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(again.sled().get("k").unwrap().as_deref(), Some(&b"v"[..]));
            again.sled().insert(format!("round-{round}"), "x").unwrap();
            again.close().unwrap();
        }
    }

    #[test]
    fn waiting_for_a_lock_held_elsewhere_ends_at_the_deadline_with_the_folder_named() {
        let dir = tempfile::tempdir().unwrap();
        let holder = open(dir.path(), Profile::Compact).unwrap();
        match wait_unlocked(dir.path(), Duration::from_millis(100)) {
            Err(DbError::StillLocked { path, waited }) => {
                assert_eq!(path, dir.path());
                assert!(waited >= Duration::from_millis(100));
            }
            other => panic!("expected StillLocked, got {other:?}"),
        }
        holder.close().unwrap();
    }
}
