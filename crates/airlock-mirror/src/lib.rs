//! airlock's air-gapped mirror: streaming, verified import of signed bundles into a content
//! store, and serving that content to unmodified clients.

pub mod adapters;
pub mod admin;
pub mod anchor;
pub mod blobs;
pub mod import;
pub mod mapped;
pub mod maintenance;
pub mod metrics;
pub mod registry;
pub mod replicate;
pub mod serve;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod zero_copy;

pub use store::Store;
