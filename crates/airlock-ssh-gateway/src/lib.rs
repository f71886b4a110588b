//! The runner's SSH gateway: how users reach their environments with stock OpenSSH.
//!
//! `ssh env_….airlock.environment` (thanks to the entries [`config::render_config`] writes)
//! connects to the runner's gateway, authenticates with a public key that must be listed for
//! that environment, and gets a process spawned *inside* the environment through a
//! [`SessionBackend`] (the runc driver in production, host processes in tests).
//!
//! * The SSH user name is the environment id; there is no other account concept.
//! * Only `publickey` authentication exists: no passwords, no keyboard-interactive, so there
//!   is nothing to brute-force and nothing to phish.
//! * Only `session` channels (`exec`, `shell`, `pty-req`, `window-change`, a few `env`
//!   variables, `signal`) are served. Port forwarding, agent and X11 forwarding and
//!   subsystems (sftp) are refused: on an air-gapped network the gateway must not become a
//!   tunnel into or out of an environment, and file transfer goes through `ssh … cat` / `scp -O`,
//!   which run as ordinary audited commands.
//! * Every connection attempt is reported to [`SessionBackend::record`] as
//!   [`ConnectionEvent`]s, so the control plane can put them in its audit log.

mod backend;
pub mod config;
mod error;
mod exec;
mod host_key;
mod server;
mod session;

pub use backend::{AuthRefusal, ConnectionEvent, ConnectionEventKind, SessionBackend, SessionExit};
pub use error::SshError;
pub use exec::{restore_default_signals, ExecIo, ExecProcess, ExecRequest, PtyRequest};
pub use server::{bind, Gateway, GatewayConfig};
