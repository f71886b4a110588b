//! Single sign-on with the site's OpenID Connect providers: the providers ([`oidc`]), the
//! group → org/role decision ([`mapping`]), and what a sign-in stores: users created or
//! updated just in time, browser sessions (a session token in a cookie plus a record with
//! its CSRF token and last use) and CLI refresh tokens.

pub mod mapping;
pub mod oidc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_egress::EgressGuard;
use serde::{Deserialize, Serialize};

pub use oidc::{Claims, OidcClient, OidcError};

use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// A pending sign-in is kept this long between the redirect to the provider and back.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// A CLI session token lives this long; the CLI refreshes it.
pub const CLI_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The browser's last use is written at most this often (not on every request).
pub const TOUCH_EVERY: Duration = Duration::from_secs(30);

/// The configured providers and session rules.
pub struct Sso {
    pub local_passwords: bool,
    pub idle: Duration,
    pub absolute: Duration,
    /// Whether cookies get `Secure` and the `__Host-` prefix (the public URL is https).
    pub secure_cookies: bool,
    pub public_url: String,
    pub providers: BTreeMap<String, Arc<OidcClient>>,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso")
            .field("local_passwords", &self.local_passwords)
            .field("providers", &self.providers.keys())
            .finish()
    }
}

impl Sso {
    /// From `[sso]` of airlock.toml; every provider's HTTP goes through `guard`.
    pub fn new(
        config: &airlock_egress::config::Sso,
        public_url: &str,
        guard: &EgressGuard,
    ) -> Result<Sso, OidcError> {
        let mut providers = BTreeMap::new();
        for p in &config.providers {
            providers.insert(
                p.id.clone(),
                Arc::new(OidcClient::new(p.clone(), public_url, guard)?),
            );
        }
        Ok(Sso {
            local_passwords: config.local_passwords,
            idle: Duration::from_secs(config.session_idle_seconds),
            absolute: Duration::from_secs(config.session_absolute_seconds),
            secure_cookies: public_url.starts_with("https://"),
            public_url: public_url.trim_end_matches('/').to_string(),
            providers,
        })
    }

    pub fn session_cookie(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-airlock_session"
        } else {
            "airlock_session"
        }
    }

    pub fn state_cookie(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-airlock_sso_state"
        } else {
            "airlock_sso_state"
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax (the provider's redirect back is a
    /// top-level navigation from another site), Secure on https, path `/`.
    pub fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            max_age.as_secs()
        )
    }
}

/// Store keys of SSO records.
pub mod keys {
    pub fn pending(state_hash: &str) -> String {
        format!("sso/pending/{state_hash}")
    }
    pub fn device(login_hash: &str) -> String {
        format!("sso/device/{login_hash}")
    }
    /// (provider, subject) → `<org id>/<user id>`.
    pub fn link(provider: &str, sub: &str) -> String {
        format!("sso/link/{provider}/{}", crate::ids::token_hash(sub))
    }
    pub fn browser(token_id: &str) -> String {
        format!("sso/browser/{token_id}")
    }
    pub fn refresh(hash: &str) -> String {
        format!("sso/refresh/{hash}")
    }
}

/// A browser on its way to the provider and back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    pub provider: String,
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub created_at: Timestamp,
}

/// A CLI waiting for the user to finish a device sign-in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingDevice {
    pub provider: String,
    pub device_code: String,
    pub interval: u64,
    pub expires_at: Timestamp,
}

/// What a cookie session holds besides its token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BrowserRecord {
    pub csrf: String,
    pub last_seen: Timestamp,
    pub provider: String,
    /// For RP-initiated logout (`id_token_hint`).
    pub id_token: String,
}

/// A CLI's refresh token: renews the short-lived session token until `expires_at`, the
/// sign-in's absolute end. One use each: refreshing rotates it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub org_id: String,
    pub user_id: String,
    pub provider: String,
    pub expires_at: Timestamp,
}

/// Deletes the SSO records no sign-in can use any more, so they do not pile up: pending
/// browser sign-ins older than [`PENDING_TTL`], device sign-ins past their end, browser
/// session records past the idle limit, and CLI refresh tokens past their absolute end.
/// Each is checked again inside the write (a session used meanwhile stays). Returns how
/// many went.
pub fn sweep_expired(store: &Store, idle: Duration, now: Timestamp) -> Result<usize, StoreError> {
    fn stale<T: serde::de::DeserializeOwned>(
        store: &Store,
        prefix: &str,
        expired: impl Fn(&T) -> bool + Copy,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let keys: Vec<String> = store.scan_all::<T>(prefix)?.into_iter().filter(|(_, r)| expired(r)).map(|(k, _)| k).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        store.commit(now, |tx| {
            let mut removed = 0;
            for key in &keys {
                if tx.get::<T>(key)?.is_some_and(|r| expired(&r)) {
                    tx.delete(key);
                    removed += 1;
                }
            }
            Ok::<_, StoreError>(removed)
        })
    }
    // keys::x("") is each kind's prefix.
    Ok(stale(store, &keys::pending(""), |p: &PendingLogin| now.since(p.created_at) >= PENDING_TTL, now)?
        + stale(store, &keys::device(""), |d: &PendingDevice| now >= d.expires_at, now)?
        + stale(store, &keys::browser(""), |b: &BrowserRecord| idle_expired(b, idle, now), now)?
        + stale(store, &keys::refresh(""), |r: &RefreshRecord| now >= r.expires_at, now)?)
}

/// Whether a browser record is past its idle limit at `now`.
pub fn idle_expired(record: &BrowserRecord, idle: Duration, now: Timestamp) -> bool {
    now.since(record.last_seen) >= idle
}

/// A path on this server to land on after signing in; anything else (another site, a
/// scheme-relative `//host`, a backslash trick) becomes `/`, so the sign-in cannot be used as
/// an open redirect.
pub fn safe_return_to(value: Option<&str>) -> String {
    match value {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_records_are_swept_and_live_ones_stay() {
        let store = Store::temporary().unwrap();
        let t0 = Timestamp::from_system(std::time::SystemTime::now());
        let idle = Duration::from_secs(900);
        let later = t0.plus(Duration::from_secs(1000));
        let pending = |created_at| PendingLogin { provider: "idp".into(), nonce: "n".into(), verifier: "v".into(), return_to: "/".into(), created_at };
        let device = |expires_at| PendingDevice { provider: "idp".into(), device_code: "d".into(), interval: 5, expires_at };
        let browser = |last_seen| BrowserRecord { csrf: "c".into(), last_seen, provider: "idp".into(), id_token: "t".into() };
        let refresh = |expires_at| RefreshRecord { org_id: "o".into(), user_id: "u".into(), provider: "idp".into(), expires_at };
        store
            .commit(t0, |tx| {
                tx.put(&keys::pending("old"), &pending(t0));
                tx.put(&keys::pending("new"), &pending(later));
                tx.put(&keys::device("old"), &device(t0.plus(Duration::from_secs(600))));
                tx.put(&keys::device("new"), &device(later.plus(Duration::from_secs(600))));
                tx.put(&keys::browser("idle"), &browser(t0));
                tx.put(&keys::browser("used"), &browser(later));
                tx.put(&keys::refresh("old"), &refresh(later));
                tx.put(&keys::refresh("new"), &refresh(later.plus(Duration::from_secs(3600))));
                tx.put(&keys::link("idp", "sub"), &"org/user");
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(sweep_expired(&store, idle, later).unwrap(), 4);
        let left: Vec<String> = store.scan_raw("sso/").unwrap().into_iter().map(|(k, _)| k).collect();
        let link = keys::link("idp", "sub");
        let mut expected = vec![keys::browser("used"), keys::device("new"), link, keys::pending("new"), keys::refresh("new")];
        expected.sort();
        assert_eq!(left, expected, "links are never swept; unexpired records stay");
        assert_eq!(sweep_expired(&store, idle, later).unwrap(), 0, "nothing left to sweep");
    }

    #[test]
    fn return_to_stays_on_this_server() {
        use super::safe_return_to as r;
        assert_eq!(r(Some("/dashboard?x=1")), "/dashboard?x=1");
        for hostile in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
        ] {
            assert_eq!(r(Some(hostile)), "/", "{hostile}");
        }
        assert_eq!(r(None), "/");
    }
}
