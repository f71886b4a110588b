//! Helpers for airlock's tests. Dev-only: no product crate depends on this one.

mod wait;

pub use wait::{wait_for, wait_for_async, wait_until};
