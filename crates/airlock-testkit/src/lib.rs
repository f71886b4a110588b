//! Helpers for airlock's tests. Dev-only: no product crate depends on this one.

mod alloc;
#[cfg(feature = "bundles")]
pub mod bundle;
#[cfg(feature = "oidc")]
pub mod oidc;
mod wait;

pub use alloc::{peak_heap_during, PeakAllocator};
pub use wait::{wait_for, wait_for_async, wait_until};
