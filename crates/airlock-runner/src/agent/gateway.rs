//! The agent's side of the SSH gateway: who may log into which environment (the owner's
//! keys, as the control plane lists them), how a session starts (inside the environment),
//! and where connection records go (the control plane's audit log).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::api::{Phase, SshSession};
use super::shared::{rfc3339, Shared};
use airlock_ssh_gateway::{
    ConnectionEvent, ConnectionEventKind, ExecProcess, ExecRequest, SessionBackend, SessionExit,
};

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

impl SessionBackend for GatewayBackend {
    fn authorized_keys(&self, env_id: &str) -> Option<Vec<String>> {
        let assigned = self.shared.assigned.lock().unwrap();
        let env = assigned.get(env_id)?;
        (env.phase == Phase::Running).then(|| env.ssh_authorized_keys.clone())
    }

    fn spawn(&self, env_id: &str, req: &ExecRequest) -> io::Result<ExecProcess> {
        self.shared
            .activity
            .lock()
            .unwrap()
            .insert(env_id.to_string(), SystemTime::now());
        self.shared
            .engine
            .exec(env_id, req)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn record(&self, event: ConnectionEvent) {
        let Some(env) = event.env_id.clone() else {
            tracing::info!(peer = ?event.peer, "{}", event.kind);
            return;
        };
        let (kind, command, exit_status) = match &event.kind {
            ConnectionEventKind::AuthAccepted => ("accepted", None, None),
            ConnectionEventKind::AuthRefused { .. } => ("refused", None, None),
            ConnectionEventKind::AccessWithdrawn => ("withdrawn", None, None),
            ConnectionEventKind::SessionStarted { channel, command, .. } => {
                let command = command.clone().unwrap_or_else(|| "shell".into());
                self.commands.lock().unwrap().insert((event.connection_id, *channel), command);
                return;
            }
            ConnectionEventKind::SessionEnded { channel, exit, .. } => (
                "ended",
                self.commands.lock().unwrap().remove(&(event.connection_id, *channel)),
                match exit {
                    SessionExit::Status(code) => Some(*code as i32),
                    SessionExit::Disconnected { status, .. } => *status,
                    _ => None,
                },
            ),
            _ => return,
        };
        if kind != "refused" && kind != "withdrawn" {
            self.shared
                .activity
                .lock()
                .unwrap()
                .insert(env.clone(), event.time);
        }
        let record = SshSession {
            time: rfc3339(event.time),
            event: kind,
            peer: event.peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()),
            key_fingerprint: event.key_fingerprint.clone().unwrap_or_else(|| "none".into()),
            command,
            exit_status,
        };
        // Refusals for environments this runner does not host cannot be filed under them.
        if self.shared.assigned.lock().unwrap().contains_key(&env) {
            self.shared.ssh_records.lock().unwrap().push((env, record));
        } else {
            tracing::warn!(env, peer = %record.peer, key = %record.key_fingerprint, "SSH login refused for an environment not on this runner");
        }
    }
}
