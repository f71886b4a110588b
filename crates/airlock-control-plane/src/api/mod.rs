//! The HTTP API: shared state, the route table and the router built from it.

pub mod context;
pub mod endpoints;
pub mod error;

mod audit_routes;
mod backups;
mod auth_routes;
mod credentials;
mod environments;
mod inventory;
mod meta;
mod orgs;
mod runner_api;
mod runners;
mod secrets;
mod site;
mod ssh;
mod sso_routes;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::de::DeserializeOwned;

use crate::auth::LoginLimiter;
use crate::metrics::Metrics;
use crate::model::Page;
use crate::secrets::Keyring;
use crate::store::{Store, Txn};
use crate::time::{Clock, Timestamp};
use context::Paging;
pub use auth_routes::audit_refused_logins;
pub use error::ApiError;

/// The largest JSON body of a route that authenticates through its body (login, runner
/// exchange): anyone can send those, so they may not be big.
pub const MAX_UNAUTHENTICATED_BODY: usize = 8 * 1024;
/// The largest JSON body of every other route (axum's default, stated here to be documented).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Tunables; the defaults are what `control-plane serve` uses.
#[derive(Clone, Debug)]
pub struct Config {
    pub session_ttl: Duration,
    pub default_token_ttl: Duration,
    pub max_token_ttl: Duration,
    pub exchange_ttl: Duration,
    pub heartbeat_interval: Duration,
    /// A runner with no heartbeat for this long is shown `inactive` and gets no new work.
    pub runner_inactive_after: Duration,
    /// Failed logins of one account from one client address (IPv6: its /64) in the window
    /// before that pair is refused for the rest of the window.
    pub login_failures_per_account: usize,
    /// Failed logins from one client address, whatever the account.
    pub login_failures_per_source: usize,
    pub login_window: Duration,
    /// Where workspace snapshots are kept; `None` turns the backup routes off.
    pub backup_dir: Option<std::path::PathBuf>,
    /// Single sign-on providers and browser session rules; `None`: passwords and tokens only.
    pub sso: Option<Arc<crate::sso::Sso>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            session_ttl: Duration::from_secs(12 * 3600),
            default_token_ttl: Duration::from_secs(30 * 24 * 3600),
            max_token_ttl: Duration::from_secs(365 * 24 * 3600),
            exchange_ttl: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_secs(15),
            runner_inactive_after: Duration::from_secs(90),
            login_failures_per_account: 5,
            login_failures_per_source: 50,
            login_window: Duration::from_secs(15 * 60),
            backup_dir: None,
            sso: None,
        }
    }
}

impl Config {
    /// The defaults with runners counted inactive after `inactive_after`, and told to
    /// heartbeat at least three times in that window.
    pub fn with_runner_inactive_after(inactive_after: Duration) -> Config {
        let defaults = Config::default();
        Config {
            runner_inactive_after: inactive_after,
            heartbeat_interval: defaults
                .heartbeat_interval
                .min(inactive_after / 3)
                .max(Duration::from_secs(1)),
            ..defaults
        }
    }
}

pub struct AppState {
    pub store: Store,
    pub keyring: Keyring,
    pub clock: Clock,
    pub config: Config,
    pub limiter: LoginLimiter,
    pub metrics: Metrics,
}

/// Shared, cheaply cloned handle to the control plane's state.
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl App {
    pub fn new(store: Store, keyring: Keyring, clock: Clock, config: Config) -> App {
        let limiter = LoginLimiter::new(
            config.login_failures_per_account,
            config.login_failures_per_source,
            config.login_window,
        );
        App(Arc::new(AppState {
            store,
            keyring,
            clock,
            config,
            limiter,
            metrics: Metrics::default(),
        }))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The store back, when this is the last handle to the state (to close it); else the
    /// handle itself.
    pub fn into_store(self) -> Result<Store, App> {
        Arc::try_unwrap(self.0).map(|state| state.store).map_err(App)
    }

    /// Applies `stage` atomically with its audit records and makes it durable before
    /// returning, so the caller can acknowledge.
    pub async fn write<R>(
        &self,
        stage: impl FnOnce(&mut Txn<'_>) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        // Both may wait for a disk sync: keep them off the async worker.
        crate::store::blocking(|| {
            let result = self.store.commit(self.now(), stage)?;
            self.store.flush_blocking()?;
            Ok(result)
        })
    }

    /// Appends one audit record on its own (refusals, failed logins).
    pub async fn audit(&self, event: crate::audit::AuditEvent) -> Result<(), ApiError> {
        self.write(|tx| {
            tx.audit(event);
            Ok(())
        })
        .await
    }

    /// One page of the org's objects of `kind` that `keep` accepts, in creation order.
    pub fn list<T: DeserializeOwned, V>(
        &self,
        org_id: &str,
        kind: &str,
        paging: &Paging,
        keep: impl FnMut(&T) -> bool,
        view: impl Fn(T) -> V,
    ) -> Result<Page<V>, ApiError> {
        let prefix = crate::store::keys::obj_prefix(org_id, kind);
        let (items, more) = self
            .store
            .scan(&prefix, paging.cursor()?, paging.limit()?, keep)?;
        let next_cursor = if more {
            items.last().map(|(k, _)| k[prefix.len()..].to_string())
        } else {
            None
        };
        Ok(Page {
            items: items.into_iter().map(|(_, v)| view(v)).collect(),
            next_cursor,
        })
    }

    /// The org's object of `kind` with `id`, or 404 (also for other orgs' objects).
    pub fn find<T: DeserializeOwned>(
        &self,
        org_id: &str,
        kind: &'static str,
        id: &str,
    ) -> Result<T, ApiError> {
        context::checked_id(kind, id)?;
        self.store
            .get(&crate::store::keys::obj(org_id, kind, id))?
            .ok_or_else(|| ApiError::not_found(kind, id))
    }
}

/// The full router: every route in [`endpoints::ENDPOINTS`], plus request ids, metrics and
/// a JSON 404 for anything else.
pub fn router(app: App) -> Router {
    let mut router: Router<App> = Router::new();
    for endpoint in endpoints::ENDPOINTS {
        let mut route = endpoints::method_router(endpoint);
        if endpoint.auth == endpoints::AuthKind::InBody {
            route = route
                .layer(axum::extract::DefaultBodyLimit::max(MAX_UNAUTHENTICATED_BODY))
                .layer(axum::middleware::from_fn(context::refuse_declared_oversize));
        }
        router = router.route(endpoint.path, route);
    }
    router
        // A route layer runs after routing, so it sees the route template for its labels.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::track,
        ))
        .fallback(meta::no_route)
        .layer(axum::middleware::from_fn(context::request_context))
        .with_state(app)
}
