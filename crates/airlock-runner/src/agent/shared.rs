//! The state the agent's loop, its per-environment workers and the SSH gateway backend share.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::SystemTime;

use airlock_api::{NewEvent, RunnerEnvironment, SshEndpoint, SshSessionRecord};
use airlock_egress::EgressGuard;

use super::api::{self, ControlPlane};
use crate::engine::{Engine, EnvStatus, LocalEnvironment};

/// State shared by the loop, the per-environment workers and the SSH gateway.
pub struct Shared {
    pub(super) cp: ControlPlane,
    pub(super) engine: Engine,
    pub(super) data_dir: PathBuf,
    pub(super) capacity: usize,
    /// The latest view of every assigned environment.
    pub(super) assigned: Mutex<HashMap<String, RunnerEnvironment>>,
    /// Environments with an operation in flight.
    pub(super) busy: Mutex<HashSet<String>>,
    /// Environments told they wait for a free place (told once).
    pub(super) waiting: Mutex<HashSet<String>>,
    /// Latest SSH use per environment, for the idle timeout.
    pub(super) activity: Mutex<HashMap<String, SystemTime>>,
    /// SSH records not yet on the control plane's audit log.
    pub(super) ssh_records: Mutex<Vec<(String, SshSessionRecord)>>,
    pub(super) ssh_endpoint: Mutex<Option<SshEndpoint>>,
    pub(super) egress: EgressGuard,
    pub(super) metrics: std::sync::Arc<crate::metrics::RunnerMetrics>,
    /// The site CA (`--ca-cert`): for the control plane, and for git servers over HTTPS.
    pub(super) ca_cert: Option<PathBuf>,
    /// The git credential sockets of each running environment (agent/git.rs).
    pub(super) git: Mutex<HashMap<String, std::sync::Arc<crate::git::GitSockets>>>,
    /// A worker finished: what runs here may have changed.
    pub(super) changed: AtomicBool,
}

impl Shared {
    pub(super) fn starts_in_flight(&self, local: &HashMap<String, LocalEnvironment>) -> usize {
        self.busy
            .lock()
            .unwrap()
            .iter()
            .filter(|id| !local.get(*id).is_some_and(|l| matches!(l.status, EnvStatus::Running { .. })))
            .count()
    }

    pub(super) fn event(&self, id: &str, kind: &str, message: &str) -> Result<(), api::ApiError> {
        tracing::info!(env = id, kind, "{message}");
        self.cp.events(
            id,
            &[NewEvent {
                time: None,
                kind: kind.to_string(),
                message: message.to_string(),
            }],
        )
    }

    pub(super) fn flush_ssh_records(&self) {
        let records = std::mem::take(&mut *self.ssh_records.lock().unwrap());
        let mut by_env: HashMap<String, Vec<SshSessionRecord>> = HashMap::new();
        for (env, record) in records {
            by_env.entry(env).or_default().push(record);
        }
        for (env, records) in by_env {
            if let Err(e) = self.cp.ssh_sessions(&env, &records) {
                // A 404 means the environment is gone; the records cannot be filed under it.
                if e.status() != Some(404) {
                    tracing::warn!(env, error = %e, "cannot send SSH records; will retry");
                    self.ssh_records
                        .lock()
                        .unwrap()
                        .extend(records.into_iter().map(|r| (env.clone(), r)));
                }
            }
        }
    }

    /// The agent's own folder for an environment (markers, temporary snapshots).
    pub(super) fn env_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("agent").join(id)
    }
}
