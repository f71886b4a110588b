//! Bodies of the single sign-on routes: the providers a sign-in page offers, the browser
//! session (with its CSRF token), and the CLI's device sign-in and refresh.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::examples::Example;
use crate::model::User;
use crate::time::Timestamp;

/// What a sign-in page offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SsoProviders {
    /// Whether email + password logins are accepted (`sso.local_passwords`).
    pub local_passwords: bool,
    pub providers: Vec<SsoProvider>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SsoProvider {
    pub id: String,
    pub display_name: String,
    /// Where a browser starts signing in with it.
    pub start_url: String,
}

/// The session the caller is using. A browser session (a cookie) carries the CSRF token that
/// every state-changing request made with the cookie must send in `x-csrf-token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BrowserSession {
    pub user: User,
    pub token_id: String,
    /// Set only for cookie sessions.
    pub csrf_token: Option<String>,
    /// The absolute end of the session.
    pub expires_at: Option<Timestamp>,
    /// When the session ends if unused (cookie sessions only).
    pub idle_expires_at: Option<Timestamp>,
}

/// The answer to a logout: where to send the browser to end the session at the provider too
/// (RP-initiated logout), when the provider offers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SsoLogout {
    pub end_session_url: Option<String>,
}

/// A device sign-in started at the provider: the user opens `verification_uri` (on any device),
/// enters `user_code`, and the CLI polls with `login_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceLoginStart {
    /// Secret handle for polling; only this CLI has it.
    pub login_id: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub interval_seconds: u64,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceLoginPoll {
    pub login_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceLoginStatus {
    /// The user has not finished at the provider yet; poll again after the interval.
    Pending,
    /// Signed in; `session` is set.
    Done,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceLoginState {
    pub status: DeviceLoginStatus,
    pub interval_seconds: u64,
    pub session: Option<CliSession>,
}

/// A short-lived session token for the CLI and the refresh token that renews it until the
/// sign-in's absolute end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CliSession {
    pub token: String,
    pub token_id: String,
    pub expires_at: Timestamp,
    pub refresh_token: String,
    pub refresh_expires_at: Timestamp,
    pub user: User,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

const T0: Timestamp = Timestamp(1_900_000_000_000);
const T1: Timestamp = Timestamp(1_900_000_360_000);

impl Example for SsoProviders {
    fn example() -> Self {
        SsoProviders {
            local_passwords: false,
            providers: vec![SsoProvider {
                id: "corp".into(),
                display_name: "ACME Keycloak".into(),
                start_url: "/api/v1/auth/sso/corp/start".into(),
            }],
        }
    }
}

impl Example for BrowserSession {
    fn example() -> Self {
        BrowserSession {
            user: User::example(),
            token_id: "tok_0190f6b2c3d4e5f60718293a4b5c".into(),
            csrf_token: Some("3q2-7wDk1x0".into()),
            expires_at: Some(T1),
            idle_expires_at: Some(T0),
        }
    }
}

impl Example for SsoLogout {
    fn example() -> Self {
        SsoLogout {
            end_session_url: Some(
                "https://idp.example.internal/session/end?id_token_hint=eyJ".into(),
            ),
        }
    }
}

impl Example for DeviceLoginStart {
    fn example() -> Self {
        DeviceLoginStart {
            login_id: "alk_dev_0123456789abcdef".into(),
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://idp.example.internal/device".into(),
            verification_uri_complete: Some(
                "https://idp.example.internal/device?user_code=WDJB-MJHT".into(),
            ),
            interval_seconds: 5,
            expires_at: T1,
        }
    }
}

impl Example for DeviceLoginPoll {
    fn example() -> Self {
        DeviceLoginPoll {
            login_id: "alk_dev_0123456789abcdef".into(),
        }
    }
}

impl Example for DeviceLoginState {
    fn example() -> Self {
        DeviceLoginState {
            status: DeviceLoginStatus::Done,
            interval_seconds: 5,
            session: Some(CliSession::example()),
        }
    }
}

impl Example for CliSession {
    fn example() -> Self {
        CliSession {
            token: "alk_ses_0123456789abcdef".into(),
            token_id: "tok_0190f6b2c3d4e5f60718293a4b5c".into(),
            expires_at: T0,
            refresh_token: "alk_rfr_0123456789abcdef".into(),
            refresh_expires_at: T1,
            user: User::example(),
        }
    }
}

impl Example for RefreshRequest {
    fn example() -> Self {
        RefreshRequest {
            refresh_token: "alk_rfr_0123456789abcdef".into(),
        }
    }
}
