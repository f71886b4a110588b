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

/// The longest email accepted anywhere, login included (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Counts failed logins per (account, client address) and per client address in a sliding
/// window. Keying the account limit by address too means nobody can lock a user out by
/// guessing wrong from elsewhere. An IPv6 client counts by its /64 (one host usually holds
/// the whole prefix).
///
/// It also keeps what refused (rate-limited) attempts have to go on the audit log: the first
/// refusal of a lockout is recorded at once, the rest only counted and recorded as one
/// summary when the lockout is over ([`LoginLimiter::due_summaries`]), so a flood of refused
/// attempts adds two records, not one per request.
pub struct LoginLimiter {
    per_account: usize,
    per_source: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Timestamp>>>,
    refused: Mutex<HashMap<String, Refused>>,
}

/// Why a login is refused before its password is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// Seconds until an attempt is counted again.
    pub retry_after: u64,
    /// The limiter key that is over its limit (the pair, or the address alone).
    key: String,
    /// The client address alone is over its limit, whatever the account.
    pub whole_source: bool,
}

/// Refused attempts of one lockout, not yet summarized on the audit log.
#[derive(Clone, Debug)]
pub struct Refused {
    /// What the summary record names: the account's org and subject, the email and address.
    pub org_id: Option<String>,
    pub subject: String,
    pub email: String,
    pub source: String,
    pub whole_source: bool,
    /// Refused attempts after the first (which has its own record).
    pub more: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    until: Timestamp,
}

/// Entries kept per map before old ones are pruned, so a flood of names cannot grow memory.
const MAX_TRACKED: usize = 100_000;

impl LoginLimiter {
    pub fn new(per_account: usize, per_source: usize, window: Duration) -> Self {
        LoginLimiter {
            per_account,
            per_source,
            window,
            failures: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` when this account has failed too often lately from this client address, or the
    /// address has, whatever the account.
    pub fn check(&self, email: &str, source: &str, now: Timestamp) -> Result<(), Lockout> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut worst: Option<Lockout> = None;
        for (key, limit, whole_source) in [
            (pair_key(email, source), self.per_account, false),
            (source_key(source), self.per_source, true),
        ] {
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.since(*t) < self.window);
                if times.len() >= limit {
                    let oldest = times[times.len() - limit];
                    let wait = oldest.plus(self.window).since(now).as_secs().max(1);
                    if worst.as_ref().is_none_or(|w| wait > w.retry_after) {
                        worst = Some(Lockout {
                            retry_after: wait,
                            key,
                            whole_source,
                        });
                    }
                }
            }
        }
        worst.map_or(Ok(()), Err)
    }

    pub fn record_failure(&self, email: &str, source: &str, now: Timestamp) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(pair_key(email, source)).or_default().push(now);
        map.entry(source_key(source)).or_default().push(now);
        if map.len() > MAX_TRACKED {
            let window = self.window;
            map.retain(|_, times| times.last().is_some_and(|t| now.since(*t) < window));
        }
    }

    /// A successful login clears the failures of the account from that address.
    pub fn record_success(&self, email: &str, source: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pair_key(email, source));
    }

    /// Notes a refused attempt. True for the first of its lockout: that one is audited on
    /// its own; the others wait for [`LoginLimiter::due_summaries`].
    pub fn note_refused(
        &self,
        lockout: &Lockout,
        email: &str,
        source: &str,
        account: Option<(String, String)>,
        now: Timestamp,
    ) -> bool {
        let mut map = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let until = now.plus(Duration::from_secs(lockout.retry_after));
        if let Some(r) = map.get_mut(&lockout.key) {
            r.more += 1;
            r.last = now;
            r.until = r.until.max(until);
            return false;
        }
        let (org_id, subject) = match account {
            Some((org, subject)) if !lockout.whole_source => (Some(org), subject),
            _ if lockout.whole_source => (None, format!("source/{source}")),
            _ => (None, format!("email/{email}")),
        };
        map.insert(
            lockout.key.clone(),
            Refused {
                org_id,
                subject,
                email: email.to_string(),
                source: source.to_string(),
                whole_source: lockout.whole_source,
                more: 0,
                first: now,
                last: now,
                until,
            },
        );
        true
    }

    /// Lockouts that are over (or pushed out to bound memory) and had refused attempts after
    /// their first: what their summary records must say. Each is handed out once.
    pub fn due_summaries(&self, now: Timestamp) -> Vec<Refused> {
        let mut map = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let crowded = map.len() > MAX_TRACKED;
        let due: Vec<String> = map
            .iter()
            .filter(|(_, r)| crowded || r.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| map.remove(&k))
            .filter(|r| r.more > 0)
            .collect()
    }
}

fn pair_key(email: &str, source: &str) -> String {
    format!("pair:{}\n{}", email.to_lowercase(), source_prefix(source))
}

fn source_key(source: &str) -> String {
    format!("source:{}", source_prefix(source))
}

/// The part of a client address that counts as one client: an IPv4 address, an IPv6 /64.
fn source_prefix(source: &str) -> String {
    match source.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().expect("checked").to_string(),
        _ => source.to_string(),
    }
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
