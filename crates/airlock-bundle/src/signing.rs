//! minisign-compatible keys and signatures.
//!
//! Files written here are read by the stock `minisign` tool and the other way round.
//! Signing is done here rather than with the `minisign` crate because that crate adds random
//! noise to every Ed25519 signature, and bundles must be byte-identical when rebuilt from the
//! same inputs; Ed25519 without noise is deterministic by its specification (RFC 8032).
//! Verification uses the independent `minisign-verify` crate. Password-protected secret keys
//! (scrypt) are generated and decrypted with the `minisign` crate.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2b512, Digest as _};

const SIG_ALG: &[u8; 2] = b"Ed";
const SIG_ALG_PREHASHED: &[u8; 2] = b"ED";
const KDF_NONE: [u8; 2] = [0, 0];
const CHK_ALG: &[u8; 2] = b"B2";
const SECRET_KEY_LEN: usize = 158;
const PUBLIC_KEY_LEN: usize = 42;
const SIGNATURE_LEN: usize = 74;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; remove it or pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("{what} is not a minisign {kind}: {reason}")]
    Malformed { what: String, kind: &'static str, reason: String },
    #[error("cannot decrypt the secret key {path}: {reason} (set AIRLOCK_KEY_PASSWORD or type the password when asked)")]
    Decrypt { path: PathBuf, reason: String },
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// A signature that does not verify (or a key or signature `minisign-verify` cannot decode).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignatureError(#[from] minisign_verify::Error);

/// Eight bytes that name a key; shown as 16 uppercase hex digits like the stock tool does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Clone)]
pub struct PublicKey {
    pub id: KeyId,
    key: [u8; 32],
}

pub struct SecretKey {
    pub id: KeyId,
    /// libsodium layout: 32-byte seed followed by the 32-byte public key.
    key: [u8; 64],
}

impl PublicKey {
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path)
            .map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
        Self::decode(&text, &path.display().to_string())
    }

    /// Parses the two-line public key file, or a bare base64 line as `minisign -P` takes.
    pub fn decode(text: &str, what: &str) -> Result<Self, KeyError> {
        let malformed = |reason: &str| KeyError::Malformed {
            what: what.to_string(),
            kind: "public key",
            reason: reason.to_string(),
        };
        let bytes = key_line_bytes(text).map_err(malformed)?;
        if bytes.len() != PUBLIC_KEY_LEN || &bytes[..2] != SIG_ALG {
            return Err(malformed("wrong length or algorithm (expected an Ed25519 key)"));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[10..42]);
        Ok(PublicKey { id: KeyId(id), key })
    }

    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_LEN);
        bytes.extend_from_slice(SIG_ALG);
        bytes.extend_from_slice(&self.id.0);
        bytes.extend_from_slice(&self.key);
        BASE64.encode(bytes)
    }

    pub fn encode(&self) -> String {
        format!("untrusted comment: minisign public key {}\n{}\n", self.id, self.to_base64())
    }

    /// Verifies a minisign signature over `data` with the independent `minisign-verify` crate.
    pub fn verify(&self, data: &[u8], signature: &SignatureFile) -> Result<(), SignatureError> {
        let pk = minisign_verify::PublicKey::from_base64(&self.to_base64())?;
        let sig = minisign_verify::Signature::decode(&signature.text)?;
        Ok(pk.verify(data, &sig, false)?)
    }
}

impl SecretKey {
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Generate(e.to_string()))?;
        getrandom::getrandom(&mut id).map_err(|e| KeyError::Generate(e.to_string()))?;
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
        Ok(SecretKey { id: KeyId(id), key: *pair.sk })
    }

    pub fn public_key(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(&self.key[32..]);
        PublicKey { id: self.id, key }
    }

    /// Loads a secret key file. Unencrypted keys (as `minisign -G -W` writes them) need no
    /// password; encrypted ones take `password`, or ask on the terminal when it is `None`.
    pub fn from_file(path: &Path, password: Option<String>) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path)
            .map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
        let what = path.display().to_string();
        let malformed = |reason: &str| KeyError::Malformed {
            what: what.clone(),
            kind: "secret key",
            reason: reason.to_string(),
        };
        let mut bytes = key_line_bytes(&text).map_err(malformed)?;
        if bytes.len() != SECRET_KEY_LEN || &bytes[..2] != SIG_ALG || &bytes[4..6] != CHK_ALG {
            return Err(malformed("wrong length or algorithm (expected an Ed25519 key)"));
        }
        if bytes[2..4] != KDF_NONE {
            let boxed = minisign::SecretKeyBox::from_string(&text)
                .map_err(|e| malformed(&e.to_string()))?;
            let decrypted = minisign::SecretKey::from_box(boxed, password)
                .map_err(|e| KeyError::Decrypt { path: path.to_path_buf(), reason: e.to_string() })?;
            bytes = decrypted.to_bytes();
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[54..62]);
        let mut key = [0u8; 64];
        key.copy_from_slice(&bytes[62..126]);
        let stored_checksum = &bytes[126..158];
        // The stock tool leaves the checksum zero in unencrypted keys; check it when present.
        if stored_checksum.iter().any(|&b| b != 0) && stored_checksum != checksum(&id, &key) {
            return Err(malformed("the key checksum does not match (the file is damaged)"));
        }
        let secret = SecretKey { id: KeyId(id), key };
        let derived = ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::from_slice(&key[..32]).map_err(|e| malformed(&e.to_string()))?,
        );
        if derived.pk[..] != key[32..] {
            return Err(malformed("the public half does not match the seed"));
        }
        Ok(secret)
    }

    /// The unencrypted secret key file, in the layout `minisign -G -W` writes.
    pub fn encode_unencrypted(&self) -> String {
        let mut bytes = Vec::with_capacity(SECRET_KEY_LEN);
        bytes.extend_from_slice(SIG_ALG);
        bytes.extend_from_slice(&KDF_NONE);
        bytes.extend_from_slice(CHK_ALG);
        bytes.extend_from_slice(&[0u8; 48]); // salt, opslimit, memlimit: unused without a KDF
        bytes.extend_from_slice(&self.id.0);
        bytes.extend_from_slice(&self.key);
        bytes.extend_from_slice(&checksum(&self.id.0, &self.key));
        format!(
            "untrusted comment: minisign secret key {} (unencrypted)\n{}\n",
            self.id,
            BASE64.encode(bytes)
        )
    }

    /// Signs `data` as `minisign -S` does (prehashed with BLAKE2b-512), deterministically.
    pub fn sign(&self, data: &[u8], trusted_comment: &str, untrusted_comment: &str) -> SignatureFile {
        let sk = ed25519_compact::SecretKey::new(self.key);
        let prehash = Blake2b512::digest(data);
        let signature = sk.sign(prehash, None);
        let mut global_message = signature.to_vec();
        global_message.extend_from_slice(trusted_comment.as_bytes());
        let global = sk.sign(&global_message, None);

        let mut sig_bytes = Vec::with_capacity(SIGNATURE_LEN);
        sig_bytes.extend_from_slice(SIG_ALG_PREHASHED);
        sig_bytes.extend_from_slice(&self.id.0);
        sig_bytes.extend_from_slice(&signature[..]);
        let text = format!(
            "untrusted comment: {untrusted_comment}\n{}\ntrusted comment: {trusted_comment}\n{}\n",
            BASE64.encode(sig_bytes),
            BASE64.encode(&global[..])
        );
        SignatureFile { text, key_id: self.id, trusted_comment: trusted_comment.to_string() }
    }
}

/// The decoded base64 line of a key file (the line that is not the untrusted comment).
fn key_line_bytes(text: &str) -> Result<Vec<u8>, &'static str> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or("no key line")?;
    BASE64.decode(line).map_err(|_| "the key line is not base64")
}

fn checksum(id: &[u8; 8], key: &[u8; 64]) -> [u8; 32] {
    let mut hasher = Blake2b::<U32>::new();
    hasher.update(SIG_ALG);
    hasher.update(id);
    hasher.update(key);
    hasher.finalize().into()
}

/// A minisign signature file: kept as text so it is stored and shown exactly as signed.
#[derive(Clone, Debug)]
pub struct SignatureFile {
    pub text: String,
    pub key_id: KeyId,
    pub trusted_comment: String,
}

impl SignatureFile {
    pub fn decode(text: &str, what: &str) -> Result<Self, KeyError> {
        let malformed = |reason: &str| KeyError::Malformed {
            what: what.to_string(),
            kind: "signature",
            reason: reason.to_string(),
        };
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() < 4
            || !lines[0].starts_with("untrusted comment:")
            || !lines[2].starts_with("trusted comment: ")
        {
            return Err(malformed("expected four lines: untrusted comment, signature, trusted comment, global signature"));
        }
        let sig = BASE64.decode(lines[1].trim()).map_err(|_| malformed("the signature line is not base64"))?;
        if sig.len() != SIGNATURE_LEN || (&sig[..2] != SIG_ALG && &sig[..2] != SIG_ALG_PREHASHED) {
            return Err(malformed("wrong length or algorithm"));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&sig[2..10]);
        Ok(SignatureFile {
            text: text.to_string(),
            key_id: KeyId(id),
            trusted_comment: lines[2]["trusted comment: ".len()..].to_string(),
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path)
            .map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
        Self::decode(&text, &path.display().to_string())
    }
}

/// Writes `PATH.key` (mode 0600) and `PATH.pub`. With a password, the secret key is
/// encrypted with scrypt exactly as the stock tool does it.
pub fn write_key_pair(base: &Path, password: Option<String>, force: bool) -> Result<PublicKey, KeyError> {
    let key_path = with_suffix(base, ".key");
    let pub_path = with_suffix(base, ".pub");
    if !force {
        for path in [&key_path, &pub_path] {
            if path.exists() {
                return Err(KeyError::Exists { path: path.clone() });
            }
        }
    }
    let (secret_text, public) = match password {
        None => {
            let secret = SecretKey::generate()?;
            (secret.encode_unencrypted(), secret.public_key())
        }
        Some(password) => {
            let pair = minisign::KeyPair::generate_encrypted_keypair(Some(password))
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let secret_text = pair
                .sk
                .to_box(None)
                .map_err(|e| KeyError::Generate(e.to_string()))?
                .into_string();
            let public_text = pair
                .pk
                .to_box()
                .map_err(|e| KeyError::Generate(e.to_string()))?
                .into_string();
            (secret_text, PublicKey::decode(&public_text, "generated key")?)
        }
    };
    write_private(&key_path, secret_text.as_bytes())?;
    fs::write(&pub_path, public.encode())
        .map_err(|source| KeyError::Write { path: pub_path.clone(), source })?;
    Ok(public)
}

pub fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write { path: path.to_path_buf(), source };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_are_deterministic() {
        let sk = SecretKey::generate().unwrap();
        let a = sk.sign(b"hello", "trusted", "untrusted");
        let b = sk.sign(b"hello", "trusted", "untrusted");
        assert_eq!(a.text, b.text);
        sk.public_key().verify(b"hello", &a).unwrap();
        assert!(sk.public_key().verify(b"hellO", &a).is_err());
    }

    #[test]
    fn a_changed_trusted_comment_fails_verification() {
        let sk = SecretKey::generate().unwrap();
        let sig = sk.sign(b"data", "sequence=2", "c");
        let forged = SignatureFile::decode(&sig.text.replace("sequence=2", "sequence=9"), "x").unwrap();
        assert!(sk.public_key().verify(b"data", &forged).is_err());
    }

    #[test]
    fn unencrypted_and_encrypted_keys_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let pk = write_key_pair(&plain, None, false).unwrap();
        let sk = SecretKey::from_file(&with_suffix(&plain, ".key"), None).unwrap();
        assert_eq!(sk.public_key().id, pk.id);
        assert!(write_key_pair(&plain, None, false).is_err(), "overwrote without --force");

        let locked = dir.path().join("locked");
        let pk = write_key_pair(&locked, Some("pw".into()), false).unwrap();
        let sk = SecretKey::from_file(&with_suffix(&locked, ".key"), Some("pw".into())).unwrap();
        assert_eq!(sk.public_key().to_base64(), pk.to_base64());
        assert!(SecretKey::from_file(&with_suffix(&locked, ".key"), Some("wrong".into())).is_err());
    }
}
