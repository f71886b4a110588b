//! Passwords (argon2id), token checks and the failed-login limiter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::model::{Token, TokenKind};
use crate::time::Timestamp;

pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks a new password against the site rules; the error says what to fix.
pub fn check_password_rules(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(format!(
            "password is {chars} characters long; use at least {MIN_PASSWORD_LEN}"
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("password is longer than {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

/// An argon2id PHC string (`$argon2id$v=19$...`) with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same time as a real check, so a missing user cannot be told from a wrong
/// password by timing.
pub fn burn_password_check(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("airlock-no-such-user-dummy"));
    let _ = verify_password(phc, password);
}

/// Why a presented token is not accepted. The message goes to the caller.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenRejection {
    #[error("the token is not known (check AIRLOCK_TOKEN, or log in again)")]
    Unknown,
    #[error("the token expired at {0}; create a new one")]
    Expired(Timestamp),
    #[error("the token was revoked at {0}")]
    Revoked(Timestamp),
    #[error("this one-time token was already used at {0}; ask an admin for a new one")]
    AlreadyUsed(Timestamp),
    #[error("a {found:?} token cannot be used here; this needs a {wanted}")]
    WrongKind {
        found: TokenKind,
        wanted: &'static str,
    },
}

/// Whether a stored token may be used at `now`.
pub fn check_token(token: &Token, now: Timestamp) -> Result<(), TokenRejection> {
    if let Some(at) = token.revoked_at {
        return Err(TokenRejection::Revoked(at));
    }
    if let Some(at) = token.used_at {
        return Err(TokenRejection::AlreadyUsed(at));
    }
    if let Some(at) = token.expires_at {
        if now >= at {
            return Err(TokenRejection::Expired(at));
        }
    }
    Ok(())
}

/// Counts failed logins per account and per source address in a sliding window.
pub struct LoginLimiter {
    per_account: usize,
    per_source: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Timestamp>>>,
}

impl LoginLimiter {
    pub fn new(per_account: usize, per_source: usize, window: Duration) -> Self {
        LoginLimiter {
            per_account,
            per_source,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when the account or the source has failed too often lately.
    pub fn check(&self, email: &str, source: &str, now: Timestamp) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0u64;
        for (key, limit) in [
            (account_key(email), self.per_account),
            (source_key(source), self.per_source),
        ] {
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.since(*t) < self.window);
                if times.len() >= limit {
                    let oldest = times[times.len() - limit];
                    let until = oldest.plus(self.window);
                    wait = wait.max(until.since(now).as_secs().max(1));
                }
            }
        }
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }

    pub fn record_failure(&self, email: &str, source: &str, now: Timestamp) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account_key(email)).or_default().push(now);
        map.entry(source_key(source)).or_default().push(now);
        // Keep memory bounded under a flood of distinct names.
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, times| times.last().is_some_and(|t| now.since(*t) < window));
        }
    }

    /// A successful login clears the account's failures.
    pub fn record_success(&self, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&account_key(email));
    }
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.to_lowercase())
}

fn source_key(source: &str) -> String {
    format!("source:{source}")
}

/// Creates a token record for `subject` and returns the token text (shown once) with it.
pub fn issue_token(
    tx: &mut crate::store::Txn<'_>,
    kind: TokenKind,
    org_id: &str,
    subject_id: &str,
    name: &str,
    now: Timestamp,
    ttl: Option<Duration>,
) -> (String, Token) {
    use crate::store::keys;
    let prefix = match kind {
        TokenKind::Session => "ses",
        TokenKind::Personal => "pat",
        TokenKind::RunnerExchange => "rex",
        TokenKind::Runner => "run",
    };
    let (text, hash) = crate::ids::new_token(prefix);
    let token = Token {
        id: crate::ids::new_id("tok", now),
        kind,
        org_id: org_id.to_string(),
        subject_id: subject_id.to_string(),
        name: name.to_string(),
        created_at: now,
        expires_at: ttl.map(|d| now.plus(d)),
        revoked_at: None,
        used_at: None,
    };
    tx.put(&keys::token(&hash), &token);
    tx.put(&keys::subject_token(subject_id, &token.id), &hash);
    (text, token)
}

/// Every token of `subject` (user or runner), with the hash it is stored under.
pub fn subject_tokens(
    tx: &crate::store::Txn<'_>,
    subject_id: &str,
) -> Result<Vec<(String, Token)>, crate::store::StoreError> {
    use crate::store::keys;
    let mut out = Vec::new();
    for (_, hash) in tx.scan_all::<String>(&keys::subject_token_prefix(subject_id))? {
        if let Some(token) = tx.get::<Token>(&keys::token(&hash))? {
            out.push((hash, token));
        }
    }
    Ok(out)
}

/// Revokes every live token of `subject` whose kind `which` accepts; returns how many.
pub fn revoke_subject_tokens(
    tx: &mut crate::store::Txn<'_>,
    subject_id: &str,
    now: Timestamp,
    which: impl Fn(TokenKind) -> bool,
) -> Result<usize, crate::store::StoreError> {
    let mut revoked = 0;
    for (hash, mut token) in subject_tokens(tx, subject_id)? {
        if token.revoked_at.is_none() && which(token.kind) {
            token.revoked_at = Some(now);
            tx.put(&crate::store::keys::token(&hash), &token);
            revoked += 1;
        }
    }
    Ok(revoked)
}
