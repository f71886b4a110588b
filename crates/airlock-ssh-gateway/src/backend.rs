//! The contract between the gateway and whatever runs the environments: the
//! [`SessionBackend`] trait the runner implements, and the audit records the gateway hands it.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use crate::exec::{ExecProcess, ExecRequest};

/// What the gateway needs from the runner: who may log into an environment, how to start a
/// process in it, and where audit records go.
pub trait SessionBackend: Send + Sync + 'static {
    /// The OpenSSH `authorized_keys` lines allowed to log into `env_id`
    /// (`ssh-ed25519 AAAA… comment`), or `None` when no such environment runs here. Asked at
    /// login and again every [`GatewayConfig::access_recheck_interval`] for open connections,
    /// which are closed once their key is no longer listed.
    /// Lines with options (`from=…`, `command=…`) are not honoured and never match: the
    /// gateway cannot enforce them, and ignoring a restriction would widen access.
    fn authorized_keys(&self, env_id: &str) -> Option<Vec<String>>;

    /// Starts a process inside the environment. Blocking: the gateway calls it on a blocking
    /// thread (`spawn_blocking`).
    fn spawn(&self, env_id: &str, req: &ExecRequest) -> io::Result<ExecProcess>;

    /// Opens a TCP connection to `addr` — always a loopback address (`127.0.0.1` or `::1`),
    /// the gateway checks that first — from *inside* the environment's network namespace, for
    /// a `direct-tcpip` channel (`ssh -L`, `ssh -W`). It must never connect from the runner's
    /// own namespace: [`connect_in_netns`](crate::connect_in_netns) does it safely. Blocking:
    /// called on a blocking thread.
    fn connect_loopback(&self, env_id: &str, addr: SocketAddr) -> io::Result<TcpStream>;

    /// Receives one audit record. Called from async tasks: must not block for long.
    fn record(&self, event: ConnectionEvent);
}

/// One audit record about a connection to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    pub time: SystemTime,
    /// Ties together the records of one TCP connection (unique per gateway process).
    pub connection_id: u64,
    /// The environment (SSH user name) the client asked for; `None` when the client never
    /// got as far as naming one (e.g. a port scan or a failed key exchange).
    pub env_id: Option<String>,
    pub peer: Option<SocketAddr>,
    /// `SHA256:…` of the client key concerned (offered, or accepted for the sessions).
    pub key_fingerprint: Option<String>,
    pub kind: ConnectionEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// The client proved it holds a key listed for the environment.
    AuthAccepted,
    /// An authentication attempt was refused.
    AuthRefused { reason: AuthRefusal },
    /// A process was started for a channel.
    SessionStarted {
        channel: u32,
        /// `None` for a login shell (`ssh host` with no command); `subsystem sftp` for the
        /// SFTP server (`sftp`, `scp`).
        command: Option<String>,
        pty: bool,
    },
    /// A channel's process is gone.
    SessionEnded {
        channel: u32,
        exit: SessionExit,
        /// Bytes received from the client (the process's stdin).
        bytes_in: u64,
        /// Bytes sent to the client (stdout + stderr, or the terminal output).
        bytes_out: u64,
        /// From the process's start to its end.
        duration: Duration,
    },
    /// A forwarded connection to the environment's loopback (`direct-tcpip`) ended: one
    /// record per connection.
    ForwardEnded {
        channel: u32,
        /// The destination as the client asked for it (`localhost`, `127.0.0.1`, `::1`).
        host: String,
        port: u16,
        /// Bytes from the client to the environment's server.
        bytes_in: u64,
        /// Bytes from the environment's server to the client.
        bytes_out: u64,
        duration: Duration,
    },
    /// A forward to the environment's loopback could not be connected there (nothing
    /// listens on that port, or the environment is not running).
    ForwardFailed { host: String, port: u16, reason: String },
    /// The client asked for something the gateway never serves (a forward to anything but the
    /// environment's loopback, remote forwarding, agent or X11 forwarding, a subsystem other
    /// than sftp…).
    RequestRefused { request: String },
    /// The key the connection logged in with is no longer listed for its environment (its
    /// owner was disabled or deleted, or removed the key): the connection is closed and its
    /// processes hung up.
    AccessWithdrawn,
    /// The TCP connection is closed. Always the last record of a connection.
    ConnectionClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// No environment with that id runs on this runner.
    UnknownEnvironment,
    /// The environment exists but the key is not in its authorized list.
    KeyNotAuthorized,
}

/// How a session's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionExit {
    /// Exited by itself with this status (sent to the client as `exit-status`).
    Status(u32),
    /// Killed by a signal (sent to the client as `exit-signal`), e.g. `KILL`.
    Signal(String),
    /// The client went away (disconnect or channel close) first; the gateway hung the process
    /// up (SIGHUP, then SIGKILL after a grace period). Carries what the process then died of.
    Disconnected {
        status: Option<i32>,
        signal: Option<String>,
    },
    /// The backend could not start the process.
    SpawnFailed(String),
}

impl fmt::Display for ConnectionEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthAccepted => f.write_str("auth-accepted"),
            Self::AuthRefused { reason } => write!(f, "auth-refused ({reason:?})"),
            Self::SessionStarted { channel, command, pty } => {
                let pty = if *pty { "yes" } else { "no" };
                match command {
                    Some(c) => write!(f, "session-started channel={channel} command={c:?} pty={pty}"),
                    None => write!(f, "session-started channel={channel} shell pty={pty}"),
                }
            }
            Self::SessionEnded { channel, exit, bytes_in, bytes_out, duration } => write!(
                f,
                "session-ended channel={channel} exit={exit:?} bytes_in={bytes_in} bytes_out={bytes_out} duration={duration:?}"
            ),
            Self::ForwardEnded { channel, host, port, bytes_in, bytes_out, duration } => write!(
                f,
                "forward-ended channel={channel} to={host}:{port} bytes_in={bytes_in} bytes_out={bytes_out} duration={duration:?}"
            ),
            Self::ForwardFailed { host, port, reason } => {
                write!(f, "forward-failed to={host}:{port} reason={reason:?}")
            }
            Self::RequestRefused { request } => write!(f, "request-refused {request}"),
            Self::AccessWithdrawn => f.write_str("access-withdrawn"),
            Self::ConnectionClosed => f.write_str("connection-closed"),
        }
    }
}
