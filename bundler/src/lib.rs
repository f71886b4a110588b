//! airlock's connected side: the offline manifest, packing signed bundles, and the bundle
//! format's reader and verifier (which the air-gapped mirror uses too).

pub mod artifact;
pub mod digest;
pub mod format;
pub mod oci;
pub mod offline_manifest;
pub mod pack;
pub mod progress;
pub mod read;
pub mod signing;
pub mod trust;
pub mod ustar;
pub mod verify;

pub use digest::Digest;
pub use format::BundleManifest;
pub use read::{BundleError, BundleReader};
