//! airlock's runner: provisions development environments from mirror images.

pub mod agent;
pub mod devcontainer;
pub mod unpack;
pub mod engine;
pub mod error;
pub mod git;
pub mod ide;
pub mod ids;
pub mod image;
pub mod locks;
pub mod metrics;
pub mod network;
pub mod progress;
pub mod registry;
pub mod rootfs;
pub mod runc;
pub mod session;
pub mod spec;
pub mod state;
pub mod sys;
pub mod users;
