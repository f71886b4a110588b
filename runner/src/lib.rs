//! airlock's runner: provisions development environments from mirror images.

pub mod exec;
pub mod unpack;
