//! The gateway's ed25519 host key: generated on first start, then reused, so the fingerprint
//! users pinned in their known_hosts stays valid across restarts.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

use crate::error::SshError;

/// Loads the host key at `path`, or creates it (mode 0600, OpenSSH private key format, the
/// same file `ssh-keygen -t ed25519` writes) when the file does not exist.
pub(crate) fn load_or_generate(path: &Path) -> Result<PrivateKey, SshError> {
    match fs::read(path) {
        Ok(bytes) => load(path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => generate(path),
        Err(source) => Err(SshError::HostKeyRead {
            path: path.to_owned(),
            source,
        }),
    }
}

fn load(path: &Path, bytes: &[u8]) -> Result<PrivateKey, SshError> {
    let meta = fs::metadata(path).map_err(|source| SshError::HostKeyRead {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    // Like sshd, refuse a private key others can read: it may already be compromised.
    if mode & 0o077 != 0 {
        return Err(SshError::HostKeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let invalid = |reason: String| SshError::HostKeyInvalid {
        path: path.to_owned(),
        reason,
    };
    let key = PrivateKey::from_openssh(bytes).map_err(|e| invalid(e.to_string()))?;
    if key.is_encrypted() {
        return Err(invalid(
            "it is encrypted; the gateway needs an unencrypted key".into(),
        ));
    }
    if !matches!(key.key_data(), KeypairData::Ed25519(_)) {
        return Err(invalid(format!("it is a {} key", key.algorithm())));
    }
    tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(Default::default()), "loaded SSH host key");
    Ok(key)
}

fn generate(path: &Path) -> Result<PrivateKey, SshError> {
    let write_err = |source: io::Error| SshError::HostKeyWrite {
        path: path.to_owned(),
        source,
    };
    let mut seed = [0u8; 32];
    rustix::rand::getrandom(&mut seed, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| write_err(e.into()))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment("airlock-runner-ssh-gateway");
    let pem = key.to_openssh(LineEnding::LF)?;

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    // Temp file + fsync + rename: a crash never leaves a truncated key that would make the
    // next start fail (or silently regenerate and break every client's known_hosts).
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        // A hard link rather than a rename: it fails if the key appeared meanwhile (another
        // gateway raced us) instead of replacing it, so the first key wins.
        fs::hard_link(&tmp, path)?;
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let bytes = fs::read(path).map_err(|source| SshError::HostKeyRead {
                path: path.to_owned(),
                source,
            })?;
            return load(path, &bytes);
        }
        Err(e) => return Err(write_err(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(Default::default()), "generated a new SSH host key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses_and_refuses_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/host_ed25519");
        let a = load_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_generate(&path).unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_generate(&path),
            Err(SshError::HostKeyPermissions { .. })
        ));

        fs::write(dir.path().join("junk"), "not a key").unwrap();
        fs::set_permissions(dir.path().join("junk"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_or_generate(&dir.path().join("junk")),
            Err(SshError::HostKeyInvalid { .. })
        ));
    }
}
