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
