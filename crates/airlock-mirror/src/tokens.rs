//! Push tokens: random secrets shown once, stored only as their sha256.

use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::store::{Changes, Store, StoreError, TokenRecord};

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns it; it cannot be shown again.
pub fn create(store: &Store, name: &str) -> Result<String, StoreError> {
    let token = format!("alm_{}", random_hex(24));
    let mut changes = Changes::default();
    changes.token(&hash(&token), &TokenRecord {
        name: name.to_string(),
        created: airlock_bundle::format_time(SystemTime::now()),
    });
    store.commit(changes)?;
    Ok(token)
}
