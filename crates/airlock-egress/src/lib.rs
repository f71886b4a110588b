//! The egress guard: the one way high-side components open outbound connections.
//!
//! airlock's high side has no route to the internet, and its components keep it that way by
//! construction: every outbound connection goes through an [`EgressGuard`] built from
//! `egress.allow` in airlock.toml. Loopback is always allowed; anything else must match an
//! entry (a host name, `*.suffix`, a CIDR block or an address) or it is refused *before a
//! socket opens*, with an [`EgressError::Refused`] naming the destination and the setting, and
//! a record to the [`EgressAudit`] sink (`DATA/egress-audit.jsonl` with [`JsonLinesAudit`]).
//!
//! # Name resolution
//! Resolving a name is itself traffic (a DNS query), so the guard resolves only when it
//! must:
//! - a name matched by a name entry (`git.acme.internal`, `*.acme.internal`) is allowed by
//!   name; the connection resolves it as usual (the entry vouches for the name);
//! - a name matched by no name entry is refused **without any lookup** when `egress.allow` has
//!   no CIDR block or address entry (nothing could vouch for it);
//! - otherwise the name is resolved once (system resolver, i.e. the site's internal DNS), it is
//!   allowed only if *every* address is loopback or inside an address entry, and the client
//!   connects to exactly those checked addresses (no second lookup, so no rebinding between
//!   check and connect).
//!
//! # Building a client in a component
//! ```no_run
//! use std::sync::Arc;
//! use airlock_egress::{EgressGuard, JsonLinesAudit};
//! # fn demo(config: &airlock_egress::config::Config) -> Result<(), airlock_egress::EgressError> {
//! let audit = Arc::new(JsonLinesAudit::in_data_dir(&config.data_dir)?);
//! let guard = EgressGuard::from_config(config, audit)?;
//! // HTTP: every request, redirect hop and name lookup is checked.
//! let http = airlock_egress::blocking_client(&guard, "runner")
//!     .configure(|b| b.timeout(std::time::Duration::from_secs(60)))
//!     .build()?;
//! let response = http.get("http://127.0.0.1:5000/v2/")?.send()?;
//! // git and ssh: check the remote before running the tool.
//! guard.with_component("runner").check_git_url("https://git.acme.internal/team/app.git")?;
//! # Ok(()) }
//! ```

mod audit;
mod guard;
mod http;
pub mod report;
mod rule;

use std::error::Error as _;
use std::path::PathBuf;

pub use airlock_config as config;
/// The URL type the guard's checks take.
pub use reqwest::Url;
pub use audit::{EgressAudit, EgressRecord, JsonLinesAudit, ObservedAudit, TracingAudit, AUDIT_FILE_NAME};
pub use guard::{Denied, EgressGuard, HostResolver, Permit, SystemResolver};
pub use http::{
    async_client, async_client_builder, blocking_client, client_builder, GuardedAsyncClient,
    GuardedAsyncClientBuilder, GuardedClient, GuardedClientBuilder, read_ca_file, trust_roots, HOST_TRUST_STORE,
    MAX_REDIRECTS,
};
pub use rule::{parse_rules, Rule, RuleKind};

/// The setting every refusal points at.
pub const SETTING: &str = "egress.allow";

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("egress.allow entry {entry:?} is not valid: {reason}")]
    InvalidRule { entry: String, reason: String },
    /// The destination is not allowed; nothing was sent. `destination` is `host:port`, or the
    /// host alone where the port is not known (a name refused by the DNS resolver hook).
    #[error("refused outbound connection to {destination}: {reason}")]
    Refused { destination: String, reason: String },
    #[error("cannot resolve {host} to check its addresses against egress.allow: {message}")]
    Resolve { host: String, message: String },
    #[error("{url:?} is not a destination the egress guard can check: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to {destination}: {source}")]
    Connect {
        destination: String,
        source: std::io::Error,
    },
    #[error("cannot open the egress audit log {path}: {source}")]
    AuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the guarded HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("cannot load CA certificates from {path}: {message}")]
    Certificates { path: PathBuf, message: String },
    #[error(transparent)]
    Http(reqwest::Error),
}

impl EgressError {
    pub fn is_refused(&self) -> bool {
        matches!(self, EgressError::Refused { .. })
    }
}

/// A reqwest error caused by the guard (refused by the DNS hook or the redirect policy) becomes
/// that refusal again; any other error stays an HTTP error.
impl From<reqwest::Error> for EgressError {
    fn from(err: reqwest::Error) -> EgressError {
        let mut cause = err.source();
        while let Some(e) = cause {
            match e.downcast_ref::<EgressError>() {
                Some(EgressError::Refused { destination, reason }) => {
                    return EgressError::Refused { destination: destination.clone(), reason: reason.clone() };
                }
                Some(EgressError::Resolve { host, message }) => {
                    return EgressError::Resolve { host: host.clone(), message: message.clone() };
                }
                _ => cause = e.source(),
            }
        }
        EgressError::Http(err)
    }
}
