//! airlock's control plane: identity, RBAC, orgs and projects, runners, environments,
//! secrets and a hash-chained audit log, served as a JSON API under `/api/v1`.
//!
//! Layout: [`store`] is the only module that touches `sled`; [`audit`], [`auth`], [`rbac`],
//! [`secrets`] and [`environments`] hold the rules; [`api`] maps HTTP onto them; [`server`]
//! listens; [`client`] is the HTTP client the admin CLI uses.

pub mod api;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod client;
pub mod environments;
pub mod ids;
pub mod metrics;
pub mod model;
pub use airlock_api::openapi;
pub mod rbac;
pub mod secrets;
pub mod server;
pub mod site_backup;
pub mod sso;
pub mod store;
pub mod time;
pub mod validate;
