use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the gateway. Each says what failed and on which path or address.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot listen for SSH on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the SSH host key {path}: {source}")]
    HostKeyRead { path: PathBuf, source: io::Error },
    #[error("cannot write the SSH host key {path}: {source}")]
    HostKeyWrite { path: PathBuf, source: io::Error },
    #[error("the SSH host key {path} is not a valid OpenSSH ed25519 private key: {reason}")]
    HostKeyInvalid { path: PathBuf, reason: String },
    #[error(
        "the SSH host key {path} is readable by other users (mode {mode:o}); \
         run `chmod 600 {path}` or delete it to have a new one generated"
    )]
    HostKeyPermissions { path: PathBuf, mode: u32 },
    #[error("SSH protocol error: {0}")]
    Protocol(#[from] russh::Error),
    #[error("SSH key error: {0}")]
    Key(#[from] russh::keys::ssh_key::Error),
}
