//! Envelope encryption of secret values with AES-256-GCM.
//!
//! Each secret value is encrypted with its own random data key; the data key is encrypted
//! ("wrapped") with the site's key-encryption key (KEK) from `--kek-file`. Both use a fresh
//! 96-bit nonce and bind the secret id as associated data, so a ciphertext copied onto another
//! secret does not decrypt. Rotating the KEK re-wraps data keys only; values stay as they are.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::SealedValue;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read the key-encryption key file {path}: {source}")]
    ReadKek {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the key-encryption key file {path} must hold exactly 32 bytes, raw or as 64 hex \
         digits; it holds {found}. Create one with `airlock control-plane gen-kek --out {path}`"
    )]
    BadKek { path: String, found: String },
    #[error("cannot write {path}: {source}")]
    WriteKek {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "secret {secret} is wrapped by key-encryption key {kek_id}, which is not loaded; \
         start the server with that key as an extra --kek-file"
    )]
    MissingKek { secret: String, kek_id: String },
    #[error("secret {secret} cannot be decrypted: the stored value or key was altered, or the wrong key file was given")]
    Decrypt { secret: String },
    #[error("secret {secret} has a malformed stored value")]
    Malformed { secret: String },
}

pub struct Kek {
    id: String,
    cipher: Aes256Gcm,
}

impl Kek {
    pub fn from_bytes(key: [u8; 32]) -> Kek {
        let mut h = Sha256::new();
        h.update(b"airlock-kek-id-v1\n");
        h.update(key);
        let id = format!("kek-{}", &hex::encode(h.finalize())[..16]);
        Kek {
            id,
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// Reads 32 raw bytes, or 64 hex digits with optional surrounding whitespace.
    pub fn from_file(path: &Path) -> Result<Kek, SecretsError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SecretsError::ReadKek {
            path: shown.clone(),
            source,
        })?;
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Kek::from_bytes(raw));
        }
        let text = String::from_utf8_lossy(&bytes);
        let decoded = hex::decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok());
        decoded.map(Kek::from_bytes).ok_or(SecretsError::BadKek {
            path: shown,
            found: format!(
                "{} bytes that are neither raw key bytes nor 64 hex digits",
                bytes.len()
            ),
        })
    }

    /// Writes a new random key as hex, readable by the owner only; refuses to overwrite.
    pub fn generate_file(path: &Path) -> Result<Kek, SecretsError> {
        use std::io::Write;
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let shown = path.display().to_string();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .map_err(|source| SecretsError::WriteKek {
                path: shown.clone(),
                source,
            })?;
        writeln!(file, "{}", hex::encode(key))
            .and_then(|_| file.sync_all())
            .map_err(|source| SecretsError::WriteKek {
                path: shown,
                source,
            })?;
        Ok(Kek::from_bytes(key))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The current KEK (wraps new data keys) and older ones kept only to unwrap until rotated.
pub struct Keyring {
    current: Kek,
    previous: Vec<Kek>,
}

impl Keyring {
    pub fn new(current: Kek, previous: Vec<Kek>) -> Keyring {
        Keyring { current, previous }
    }

    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    fn find(&self, secret: &str, kek_id: &str) -> Result<&Kek, SecretsError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == kek_id)
            .ok_or_else(|| SecretsError::MissingKek {
                secret: secret.into(),
                kek_id: kek_id.into(),
            })
    }

    pub fn seal(&self, secret: &str, value: &[u8]) -> SealedValue {
        let mut data_key = [0u8; 32];
        OsRng.fill_bytes(&mut data_key);
        let ciphertext = encrypt(&Aes256Gcm::new(&data_key.into()), value, secret.as_bytes());
        let wrapped_key = encrypt(
            &self.current.cipher,
            &data_key,
            wrap_aad(secret, &self.current.id).as_bytes(),
        );
        SealedValue {
            kek_id: self.current.id.clone(),
            wrapped_key,
            ciphertext,
        }
    }

    pub fn open(&self, secret: &str, sealed: &SealedValue) -> Result<Vec<u8>, SecretsError> {
        let data_key = self.unwrap_key(secret, sealed)?;
        decrypt(
            &Aes256Gcm::new(&data_key.into()),
            &sealed.ciphertext,
            secret.as_bytes(),
            secret,
        )
    }

    /// The same value with its data key wrapped by the current KEK.
    pub fn rewrap(&self, secret: &str, sealed: &SealedValue) -> Result<SealedValue, SecretsError> {
        let data_key = self.unwrap_key(secret, sealed)?;
        let wrapped_key = encrypt(
            &self.current.cipher,
            &data_key,
            wrap_aad(secret, &self.current.id).as_bytes(),
        );
        Ok(SealedValue {
            kek_id: self.current.id.clone(),
            wrapped_key,
            ciphertext: sealed.ciphertext.clone(),
        })
    }

    fn unwrap_key(&self, secret: &str, sealed: &SealedValue) -> Result<[u8; 32], SecretsError> {
        let kek = self.find(secret, &sealed.kek_id)?;
        let key = decrypt(
            &kek.cipher,
            &sealed.wrapped_key,
            wrap_aad(secret, &kek.id).as_bytes(),
            secret,
        )?;
        <[u8; 32]>::try_from(key).map_err(|_| SecretsError::Malformed {
            secret: secret.into(),
        })
    }
}

fn wrap_aad(secret: &str, kek_id: &str) -> String {
    format!("airlock-data-key:{secret}:{kek_id}")
}

fn encrypt(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> String {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    B64.encode(out)
}

fn decrypt(
    cipher: &Aes256Gcm,
    encoded: &str,
    aad: &[u8],
    secret: &str,
) -> Result<Vec<u8>, SecretsError> {
    let bytes = B64.decode(encoded).map_err(|_| SecretsError::Malformed {
        secret: secret.into(),
    })?;
    if bytes.len() < 12 + 16 {
        return Err(SecretsError::Malformed {
            secret: secret.into(),
        });
    }
    let (nonce, body) = bytes.split_at(12);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| SecretsError::Decrypt {
            secret: secret.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_rewrap_round_trip() {
        let old = Keyring::new(Kek::from_bytes([1; 32]), vec![]);
        let sealed = old.seal("sec_1", b"hunter2-value");
        assert_eq!(old.open("sec_1", &sealed).unwrap(), b"hunter2-value");
        assert!(!sealed.ciphertext.contains("hunter2"));
        // Bound to its secret id.
        assert!(matches!(
            old.open("sec_2", &sealed),
            Err(SecretsError::Decrypt { .. })
        ));

        let rotated = Keyring::new(Kek::from_bytes([2; 32]), vec![Kek::from_bytes([1; 32])]);
        let rewrapped = rotated.rewrap("sec_1", &sealed).unwrap();
        assert_eq!(rewrapped.kek_id, rotated.current_id());
        assert_ne!(rewrapped.kek_id, sealed.kek_id);
        let only_new = Keyring::new(Kek::from_bytes([2; 32]), vec![]);
        assert_eq!(
            only_new.open("sec_1", &rewrapped).unwrap(),
            b"hunter2-value"
        );
        assert!(matches!(
            only_new.open("sec_1", &sealed),
            Err(SecretsError::MissingKek { .. })
        ));
    }
}
