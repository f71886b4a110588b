//! The agent's side of the SSH gateway: who may log into which environment (the owner's
//! keys, as the control plane lists them), how a session starts (inside the environment),
//! and where connection records go (the control plane's audit log).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use airlock_api::{EnvPhase, SshSessionEvent, SshSessionRecord, Timestamp};
use airlock_ssh_gateway::{
    ConnectionEvent, ConnectionEventKind, ExecProcess, ExecRequest, SessionBackend, SessionExit,
};

use super::shared::Shared;

pub struct GatewayBackend {
    shared: Arc<Shared>,
    /// Commands of open sessions by (connection, channel), for their end records.
    commands: Mutex<HashMap<(u64, u32), String>>,
}

impl GatewayBackend {
    pub fn new(shared: Arc<Shared>) -> GatewayBackend {
        GatewayBackend {
            shared,
            commands: Mutex::default(),
        }
    }
}

impl GatewayBackend {
    /// SSH use counts as activity for the idle timeout.
    fn touch(&self, env_id: &str) {
        self.shared.activity.lock().unwrap().insert(env_id.to_string(), SystemTime::now());
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SessionBackend for GatewayBackend {
    fn authorized_keys(&self, env_id: &str) -> Option<Vec<String>> {
        let assigned = self.shared.assigned.lock().unwrap();
        let env = assigned.get(env_id)?;
        (env.phase == EnvPhase::Running).then(|| env.ssh_authorized_keys.clone())
    }

    fn spawn(&self, env_id: &str, req: &ExecRequest) -> io::Result<ExecProcess> {
        self.touch(env_id);
        self.shared
            .engine
            .exec(env_id, req)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn connect_loopback(&self, env_id: &str, addr: SocketAddr) -> io::Result<TcpStream> {
        self.touch(env_id);
        self.shared
            .engine
            .connect_loopback(env_id, addr)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn record(&self, event: ConnectionEvent) {
        self.shared.metrics.ssh_event(&event);
        let Some(env) = event.env_id.clone() else {
            tracing::info!(peer = ?event.peer, "{}", event.kind);
            return;
        };
        let mut traffic = None;
        let (kind, command, exit_status) = match &event.kind {
            ConnectionEventKind::AuthAccepted => (SshSessionEvent::Accepted, None, None),
            ConnectionEventKind::AuthRefused { .. } => (SshSessionEvent::Refused, None, None),
            ConnectionEventKind::AccessWithdrawn => (SshSessionEvent::Withdrawn, None, None),
            ConnectionEventKind::RequestRefused { request } => (SshSessionEvent::Refused, Some(request.clone()), None),
            ConnectionEventKind::ForwardFailed { host, port, reason } => (
                SshSessionEvent::Refused,
                Some(format!("direct-tcpip {host}:{port} ({reason})")),
                None,
            ),
            ConnectionEventKind::ForwardEnded { host, port, bytes_in, bytes_out, duration, .. } => {
                traffic = Some((*bytes_in, *bytes_out, *duration));
                (SshSessionEvent::Ended, Some(format!("direct-tcpip {host}:{port}")), None)
            }
            ConnectionEventKind::SessionStarted { channel, command, .. } => {
                let command = command.clone().unwrap_or_else(|| "shell".into());
                self.commands.lock().unwrap().insert((event.connection_id, *channel), command);
                return;
            }
            ConnectionEventKind::SessionEnded { channel, exit, bytes_in, bytes_out, duration } => {
                traffic = Some((*bytes_in, *bytes_out, *duration));
                let status = match exit {
                    SessionExit::Status(code) => Some(*code as i32),
                    SessionExit::Disconnected { status, .. } => *status,
                    _ => None,
                };
                (SshSessionEvent::Ended, self.commands.lock().unwrap().remove(&(event.connection_id, *channel)), status)
            }
            ConnectionEventKind::ConnectionClosed => return,
        };
        if !matches!(kind, SshSessionEvent::Refused | SshSessionEvent::Withdrawn) {
            self.shared
                .activity
                .lock()
                .unwrap()
                .insert(env.clone(), event.time);
        }
        let record = SshSessionRecord {
            time: Some(Timestamp::from_system(event.time)),
            event: kind,
            peer: event.peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()),
            key_fingerprint: event.key_fingerprint.clone().unwrap_or_else(|| "none".into()),
            command,
            exit_status,
            bytes_in: traffic.map(|t| t.0),
            bytes_out: traffic.map(|t| t.1),
            duration_ms: traffic.map(|t| millis(t.2)),
        };
        // Refusals for environments this runner does not host cannot be filed under them.
        if self.shared.assigned.lock().unwrap().contains_key(&env) {
            self.shared.ssh_records.lock().unwrap().push((env, record));
        } else {
            tracing::warn!(env, peer = %record.peer, key = %record.key_fingerprint, "SSH login refused for an environment not on this runner");
        }
    }
}
