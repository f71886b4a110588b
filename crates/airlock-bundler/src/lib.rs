//! airlock's connected side: the offline manifest, packing signed bundles, and the bundle
//! format's reader and verifier (which the air-gapped mirror uses too).

pub mod artifact;
pub mod cache;
pub mod delta;
pub mod digest;
pub mod endpoints;
pub mod fetch;
pub mod format;
pub mod lock;
pub mod oci;
pub mod offline_manifest;
pub mod pack;
pub mod prepare;
pub mod progress;
pub mod read;
pub mod read_ahead;
pub mod sample;
pub mod signing;
pub mod sources;
pub mod trust;
pub mod ustar;
pub mod verify;
pub mod volumes;
pub mod writeback;

pub use digest::Digest;
pub use format::BundleManifest;
pub use read::{BundleError, BundleReader};
