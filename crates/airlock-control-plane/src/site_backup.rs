//! Site backups (`airlock admin backup`, `airlock admin restore`).
//!
//! A backup is one file: a JSON document (the control plane's store at one instant and the
//! site's airlock.toml) encrypted with age to the site's backup key (an X25519 recipient,
//! `age1…`; the private identity stays with the site's key custodians, the stock `age` tool
//! opens the file), plus `FILE.minisig`, a minisign signature over the encrypted bytes by
//! the site signing key. Restore checks the signature first, then decrypts: an altered
//! file, another signer or another backup key is refused before anything is written.
//!
//! The store holds secrets only sealed under the key-encryption key, so the KEK is never in a
//! backup; the restored site needs the KEK files it had (kept apart, like the identity).

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use airlock_api::StoreSnapshot;
use airlock_bundle::{PublicKey, SecretKey, SignatureFile};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::store::{Store, StoreError};

pub const FORMAT: &str = "airlock-site-backup/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteBackup {
    pub format: String,
    pub control_plane: StoreSnapshot,
    /// The site's airlock.toml as it was, when the backup was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("`{value}` is not an age X25519 recipient (age1…): {reason}; `age-keygen -y IDENTITY` prints the site's")]
    Recipient { value: String, reason: String },
    #[error("cannot read the backup identity {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("cannot encrypt the backup: {0}")]
    Encrypt(String),
    #[error(
        "the signature does not verify the backup with the trusted key {key}: {reason}. \
         The file was altered after it was signed, or signed by another key; nothing was restored"
    )]
    Signature { key: String, reason: String },
    #[error(
        "cannot decrypt the backup with the identity {identity}: {reason}. It was encrypted to \
         another backup key, or is damaged; nothing was restored"
    )]
    Decrypt { identity: PathBuf, reason: String },
    #[error("the decrypted backup is not an {FORMAT} document: {0}; nothing was restored")]
    Format(String),
    #[error(
        "{0} already exists and is not empty: restore into a fresh folder (or move it away first)"
    )]
    TargetNotEmpty(PathBuf),
    #[error("the restored audit chain does not verify ({0}); nothing was restored")]
    Chain(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BackupError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
        let path = path.to_path_buf();
        move |source| BackupError::Io { what, path, source }
    }
}

/// Encrypts `backup` to `recipient` and signs the result: (file bytes, signature).
pub fn seal(
    backup: &SiteBackup,
    recipient: &str,
    signer: &SecretKey,
) -> Result<(Vec<u8>, SignatureFile), BackupError> {
    let to = age::x25519::Recipient::from_str(recipient.trim()).map_err(|reason| {
        BackupError::Recipient {
            value: recipient.trim().to_string(),
            reason: reason.to_string(),
        }
    })?;
    let plain = serde_json::to_vec(backup).expect("a backup serializes");
    let sealed = age::encrypt(&to, &plain).map_err(|e| BackupError::Encrypt(e.to_string()))?;
    let snapshot = &backup.control_plane;
    let trusted = format!(
        "airlock site backup taken {} audit_seq {} audit_head {}",
        snapshot.taken_at, snapshot.audit_seq, snapshot.audit_head
    );
    let signature = signer.sign(&sealed, &trusted, "airlock site backup");
    Ok((sealed, signature))
}

/// Reads an age identity file (as `age-keygen` writes it: comments and one
/// `AGE-SECRET-KEY-1…` line).
pub fn read_identity(path: &Path) -> Result<age::x25519::Identity, BackupError> {
    let bad = |reason: String| BackupError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    let text = fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| {
            bad("no AGE-SECRET-KEY-1… line (make one with `age-keygen -o FILE`)".into())
        })?;
    age::x25519::Identity::from_str(line).map_err(|e| bad(e.to_string()))
}

/// Checks the signature over `sealed`, then decrypts and parses it.
pub fn open(
    sealed: &[u8],
    signature: &SignatureFile,
    trusted: &PublicKey,
    identity: &age::x25519::Identity,
    identity_path: &Path,
) -> Result<SiteBackup, BackupError> {
    trusted
        .verify(sealed, signature)
        .map_err(|e| BackupError::Signature {
            key: trusted.id.to_string(),
            reason: e.to_string(),
        })?;
    let plain = age::decrypt(identity, sealed).map_err(|e| BackupError::Decrypt {
        identity: identity_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let backup: SiteBackup =
        serde_json::from_slice(&plain).map_err(|e| BackupError::Format(e.to_string()))?;
    if backup.format != FORMAT {
        return Err(BackupError::Format(format!("format `{}`", backup.format)));
    }
    Ok(backup)
}

/// What a restore wrote.
#[derive(Debug)]
pub struct Restored {
    pub entries: usize,
    pub audit_records: u64,
}

/// Rebuilds the control plane's data folder `target` (which must be missing or empty) from
/// the backup: written next to it first, the audit chain verified against the snapshot's
/// head, then moved into place, so a failure leaves no half-restored folder behind.
pub fn restore_control_plane(backup: &SiteBackup, target: &Path) -> Result<Restored, BackupError> {
    if fs::read_dir(target).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::TargetNotEmpty(target.to_path_buf()));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let snapshot = &backup.control_plane;
    let entries = snapshot
        .entries
        .iter()
        .map(|[key, value]| {
            b64.decode(value)
                .map(|bytes| (key.clone(), bytes))
                .map_err(|e| {
                    BackupError::Format(format!("the value of `{key}` is not base64: {e}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let staging = target.with_extension("restoring");
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(BackupError::io("cannot remove the leftover", &staging))?;
    }
    let written = write_and_verify(&staging, &entries, snapshot);
    let result = written.and_then(|audit_records| {
        if target.exists() {
            fs::remove_dir(target)
                .map_err(BackupError::io("cannot replace the empty folder", target))?;
        }
        fs::rename(&staging, target).map_err(BackupError::io(
            "cannot move the restored store into",
            target,
        ))?;
        Ok(Restored {
            entries: entries.len(),
            audit_records,
        })
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn write_and_verify(
    dir: &Path,
    entries: &[(String, Vec<u8>)],
    snapshot: &StoreSnapshot,
) -> Result<u64, BackupError> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(BackupError::io("cannot create", parent))?;
    }
    let store = Store::open(dir)?;
    store.load_snapshot(entries)?;
    let report = audit::verify(&store, Some(&snapshot.audit_head))?;
    let head = audit::head(&store)?;
    store.close()?;
    if !report.ok {
        let problems: Vec<String> = report.problems.iter().map(|p| p.message.clone()).collect();
        return Err(BackupError::Chain(problems.join("; ")));
    }
    if head.seq != snapshot.audit_seq || head.hash != snapshot.audit_head {
        return Err(BackupError::Chain(format!(
            "the chain ends at record {} ({}), the snapshot says {} ({})",
            head.seq, head.hash, snapshot.audit_seq, snapshot.audit_head
        )));
    }
    Ok(head.seq)
}
