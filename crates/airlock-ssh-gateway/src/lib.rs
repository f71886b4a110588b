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
//! * `session` channels (`exec`, `shell`, `pty-req`, `window-change`, a few `env`
//!   variables, `signal`, and the `sftp` subsystem, which runs the image's own `sftp-server`
//!   inside the environment like any command) are served.
//! * `direct-tcpip` channels (`ssh -L`, `ssh -W`, IDE tunnels) are served only to the
//!   environment's own loopback, connected from inside its network namespace (see
//!   [`connect_in_netns`]). Every other destination, remote forwarding (`-R`), agent and X11
//!   forwarding are refused: on an air-gapped network the gateway must not become a tunnel
//!   between networks, or between environments.
//! * Every connection attempt, session and forwarded connection is reported to
//!   [`SessionBackend::record`] as [`ConnectionEvent`]s (one per session or forward when it
//!   ends, with bytes and duration), so the control plane can put them in its audit log.

mod backend;
pub mod config;
mod error;
mod exec;
mod forward;
mod host_key;
mod server;
mod session;

pub use backend::{AuthRefusal, ConnectionEvent, ConnectionEventKind, SessionBackend, SessionExit};
pub use error::SshError;
pub use exec::{restore_default_signals, ExecIo, ExecProcess, ExecRequest, PtyRequest};
pub use forward::connect_in_netns;
pub use server::{bind, Gateway, GatewayConfig};
