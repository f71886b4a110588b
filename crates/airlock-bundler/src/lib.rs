//! airlock's connected side: the offline manifest and its lock, the fetchers and content
//! cache, and packing signed bundles (deltas, volumes). The bundle format itself (reading,
//! verifying, trust, signing) is `airlock-bundle`; OCI basics are `airlock-oci`.

pub mod cache;
pub mod defaults;
pub mod delta;
pub mod endpoints;
pub mod fetch;
mod layout;
pub mod lock;
pub mod offline_manifest;
pub mod pack;
pub mod prepare;
mod read_ahead;
pub mod sample;
mod sources;
pub mod volumes;

pub use layout::OciLayout;
