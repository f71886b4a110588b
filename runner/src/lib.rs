//! airlock's runner: provisions development environments from mirror images.

pub mod unpack;
