//! Identifiers and bearer tokens.
//!
//! Ids sort by creation time (12 hex digits of milliseconds, 4 of sequence, 12 random), so
//! key order is creation order and paging cursors are stable. Tokens carry 256 random bits;
//! only their SHA-256 is stored, which is enough for a value nobody can guess (a slow
//! password hash is for low-entropy secrets only).

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

pub fn new_id(prefix: &str, now: Timestamp) -> String {
    // Ids made within one millisecond (or while the clock steps back) still sort in the
    // order they were made: a per-process sequence follows the time.
    static LAST: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));
    let (ms, seq) = {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let ms = now.0.max(last.0);
        let seq = if ms == last.0 { last.1 + 1 } else { 0 };
        *last = (ms, seq);
        (ms, seq)
    };
    let mut random = [0u8; 6];
    OsRng.fill_bytes(&mut random);
    format!(
        "{prefix}_{:012x}{:04x}{}",
        ms & 0xffff_ffff_ffff,
        seq & 0xffff,
        hex::encode(random)
    )
}

/// A fresh token `alk_<kind>_<43 base64url chars>` and the hash to store.
pub fn new_token(kind: &str) -> (String, String) {
    use base64::Engine;
    let mut random = [0u8; 32];
    OsRng.fill_bytes(&mut random);
    let token = format!(
        "alk_{kind}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// True when `id` could be one of ours; keeps odd bytes out of store keys.
pub fn is_plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
