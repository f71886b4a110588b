//! The runner agent: exchanges its one-time token for a credential, heartbeats, and drives
//! every environment the control plane assigns to it towards its desired state, reporting the
//! phases it reaches and the events users should see (docs/control-plane-api.md).
//!
//! One loop polls; each environment's work (start, stop, delete) runs on its own thread, one
//! operation per environment at a time, so a slow image pull never holds up the others.

pub mod api;
pub mod backup;
mod error;
mod gateway;
mod git;
mod ide;
mod shared;
mod work;

use std::collections::{HashMap};
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_api::{
    Activity, DesiredState, EnvPhase, RunnerCredential, RunnerEnvironment, RunnerPhase, SshEndpoint,
    Timestamp,
};
use airlock_egress::EgressGuard;

use airlock_ssh_gateway::{self as ssh, Gateway, GatewayConfig, SshError};

use crate::engine::{Engine, EngineOptions, EnvStatus, LocalEnvironment};
use crate::metrics::RunnerMetrics;
pub use api::ControlPlane;
use gateway::GatewayBackend;
use shared::Shared;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error(transparent)]
    Engine(#[from] crate::error::EngineError),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Egress(#[from] airlock_egress::EgressError),
}

pub struct AgentOptions {
    pub control_plane_url: String,
    /// PEM CA for an HTTPS control plane with a site certificate.
    pub ca_cert: Option<PathBuf>,
    /// One-time token from `airlock admin runners create`; needed only until the credential
    /// is stored in the data folder.
    pub exchange_token: Option<String>,
    pub data_dir: PathBuf,
    /// Environments this runner runs at once; more stay pending until a place frees up.
    pub capacity: usize,
    pub poll_interval: Duration,
    pub engine: EngineOptions,
    /// Every destination the runner connects to (control plane, registries, git servers) is
    /// checked against it first; a refusal is audited and fails the environment with the
    /// destination and the setting named.
    pub egress: EgressGuard,
    /// Where the agent counts what it does; the caller serves them (and wires the egress
    /// guard's refusals into them).
    pub metrics: Arc<RunnerMetrics>,
}


pub struct Agent {
    shared: Arc<Shared>,
    poll_interval: Duration,
    /// The engine's view from the last full look (one `runc state` per environment), and when
    /// it was taken: taken again after any worker finished, and at least every
    /// [`LOCAL_VIEW_MAX_AGE`], not on every poll.
    local: Mutex<(HashMap<String, LocalEnvironment>, Option<Instant>)>,
}

/// How stale the engine's view may get before the loop looks again (to notice environments
/// that died on their own).
const LOCAL_VIEW_MAX_AGE: Duration = Duration::from_secs(10);

const CREDENTIAL_FILE: &str = "credential.json";

impl Agent {
    /// Opens the engine and gets a credential (stored one, or by exchanging the token).
    pub fn start(opts: AgentOptions) -> Result<Agent, AgentError> {
        fs::create_dir_all(&opts.data_dir)
            .map_err(|e| AgentError::Setup(format!("cannot create {}: {e}", opts.data_dir.display())))?;
        let url = reqwest::Url::parse(&opts.control_plane_url)
            .map_err(|e| AgentError::Setup(format!("control plane URL `{}`: {e}", opts.control_plane_url)))?;
        let permit = opts.egress.check_url(&url)?;
        // The exchange token and then the credential travel on every request: plain HTTP only
        // where nothing leaves the host.
        if url.scheme() == "http" && permit != airlock_egress::Permit::Loopback {
            return Err(AgentError::Setup(format!(
                "control plane URL `{}` is plain http:// to a host other than loopback: the runner's token and credential would cross the network in cleartext. \
                 Give --control-plane (AIRLOCK_URL) an https:// URL (with --ca-cert for a site CA); http:// is accepted only for 127.0.0.1, ::1 or localhost",
                opts.control_plane_url
            )));
        }
        let cp = ControlPlane::new(&opts.control_plane_url, opts.ca_cert.as_deref(), &opts.egress)?;
        let credential = credential(&cp, &opts.data_dir, opts.exchange_token.as_deref())?;
        tracing::info!(runner = %credential.runner_id, "runner credential ready");
        let mut engine = opts.engine;
        // Image pulls look up names and follow redirects: both through the same guard.
        engine.registry.egress = Some(opts.egress.clone());
        let engine = Engine::open(engine)?;
        let shared = Arc::new(Shared {
            cp: cp.with_credential(&credential.credential),
            engine,
            data_dir: opts.data_dir,
            capacity: opts.capacity.max(1),
            assigned: Mutex::default(),
            git: Mutex::default(),
            ca_cert: opts.ca_cert.clone(),
            busy: Mutex::default(),
            waiting: Mutex::default(),
            activity: Mutex::default(),
            ssh_records: Mutex::default(),
            ssh_endpoint: Mutex::default(),
            egress: opts.egress,
            metrics: opts.metrics,
            changed: AtomicBool::new(false),
        });
        Ok(Agent {
            shared,
            poll_interval: opts.poll_interval,
            local: Mutex::new((HashMap::new(), None)),
        })
    }

    /// Starts the SSH gateway into this runner's environments (host key kept in the data
    /// folder) and reports it with every heartbeat, under `public_host` (default: the address
    /// it listens on).
    pub async fn start_gateway(
        &self,
        listen: std::net::SocketAddr,
        public_host: Option<String>,
    ) -> Result<Gateway, SshError> {
        let config = GatewayConfig::new(listen, self.shared.data_dir.join("ssh_host_ed25519_key"));
        let gateway = ssh::bind(config, Arc::new(GatewayBackend::new(self.shared.clone()))).await?;
        let addr = gateway.local_addr();
        *self.shared.ssh_endpoint.lock().unwrap() = Some(SshEndpoint {
            host: public_host.unwrap_or_else(|| addr.ip().to_string()),
            port: addr.port(),
            host_key: gateway.host_public_key_openssh(),
        });
        Ok(gateway)
    }

    /// Runs until `stop` is set. Errors reaching the control plane are logged and retried;
    /// environments keep running meanwhile.
    pub fn run(&self, stop: &AtomicBool) {
        let mut next_heartbeat = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_heartbeat {
                match self.heartbeat() {
                    Ok(every) => next_heartbeat = Instant::now() + every,
                    Err(e) => {
                        tracing::warn!(error = %e, "heartbeat failed; retrying");
                        next_heartbeat = Instant::now() + Duration::from_secs(2);
                    }
                }
            }
            if let Err(e) = self.reconcile_once() {
                tracing::warn!(error = %e, "reconcile failed; retrying");
            }
            self.shared.flush_ssh_records();
            let until = Instant::now() + self.poll_interval;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Workers finish what they started, so no environment is left half-made.
        while !self.shared.busy.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shared.flush_ssh_records();
    }

    fn heartbeat(&self) -> Result<Duration, AgentError> {
        let activity: Vec<Activity> = self
            .shared
            .activity
            .lock()
            .unwrap()
            .iter()
            .map(|(id, at)| Activity {
                id: id.clone(),
                last_activity: Timestamp::from_system(*at),
            })
            .collect();
        let ssh = self.shared.ssh_endpoint.lock().unwrap().clone();
        let answer = self.shared.cp.heartbeat(RunnerPhase::Active, None, activity, ssh)?;
        let mut seen = self.shared.activity.lock().unwrap();
        for id in &answer.unknown_environments {
            seen.remove(id);
        }
        // The control plane says how often it wants to hear from us.
        Ok(Duration::from_secs(answer.heartbeat_interval_seconds.max(1)))
    }

    /// One pass: read the assignment, compare with what runs here, start the work needed.
    pub fn reconcile_once(&self) -> Result<(), AgentError> {
        let assigned = self.shared.cp.environments()?;
        let local = self.local_view()?;
        {
            let mut map = self.shared.assigned.lock().unwrap();
            let before = std::mem::take(&mut *map);
            map.extend(assigned.iter().map(|e| (e.id.clone(), e.clone())));
            // An SSH credential added or removed: its host key goes in or out at once.
            for env in &assigned {
                if before.get(&env.id).is_some_and(|b| b.secrets != env.secrets) {
                    git::refresh_known_hosts(&self.shared, env);
                }
            }
        }
        // Environments here that the control plane no longer assigns: remove them.
        for id in local.keys() {
            if !assigned.iter().any(|e| &e.id == id) {
                self.spawn_work(id.clone(), work::Job::Forget);
            }
        }
        let mut running_here = local
            .values()
            .filter(|l| matches!(l.status, EnvStatus::Running { .. }))
            .count();
        self.shared.metrics.set_running(running_here, self.shared.capacity);
        match self.shared.engine.network_refusal_counts() {
            Ok(counts) => counts.iter().for_each(|(env, count)| self.shared.metrics.network_refusals(env, *count)),
            Err(e) => tracing::debug!(error = %e, "cannot read the environments' network refusal counters"),
        }
        running_here += self.shared.starts_in_flight(&local);
        for env in assigned {
            let here = local.get(&env.id);
            let Some(job) = self.decide(&env, here, &mut running_here) else {
                continue;
            };
            self.spawn_work(env.id.clone(), job);
        }
        Ok(())
    }

    fn local_view(&self) -> Result<HashMap<String, LocalEnvironment>, AgentError> {
        let mut cached = self.local.lock().unwrap();
        let changed = self.shared.changed.swap(false, Ordering::AcqRel);
        let fresh = cached.1.is_some_and(|at| at.elapsed() < LOCAL_VIEW_MAX_AGE);
        if changed || !fresh {
            let list = self.shared.engine.list()?;
            *cached = (list.into_iter().map(|e| (e.id.clone(), e)).collect(), Some(Instant::now()));
        }
        Ok(cached.0.clone())
    }

    fn decide(&self, env: &RunnerEnvironment, here: Option<&LocalEnvironment>, running_here: &mut usize) -> Option<work::Job> {
        let status = here.map(|l| &l.status);
        let runs = matches!(status, Some(EnvStatus::Running { .. }));
        match (env.desired_state, env.phase) {
            (DesiredState::Deleted, EnvPhase::Deleted) => None,
            (DesiredState::Deleted, _) => Some(work::Job::Delete),
            (DesiredState::Stopped, EnvPhase::Stopping | EnvPhase::Running | EnvPhase::Creating | EnvPhase::Starting) => {
                Some(work::Job::Stop)
            }
            (DesiredState::Running, EnvPhase::Creating | EnvPhase::Starting) if runs => Some(work::Job::Adopt),
            (DesiredState::Running, EnvPhase::Creating | EnvPhase::Starting) => {
                if self.shared.busy.lock().unwrap().contains(&env.id) {
                    return None;
                }
                if *running_here >= self.shared.capacity {
                    if self.shared.waiting.lock().unwrap().insert(env.id.clone()) {
                        let message = format!(
                            "waiting for a free place: this runner holds {} environment(s) at once and all are in use",
                            self.shared.capacity
                        );
                        let _ = self.shared.event(&env.id, "pending", &message);
                    }
                    return None;
                }
                *running_here += 1;
                self.shared.waiting.lock().unwrap().remove(&env.id);
                Some(work::Job::Start)
            }
            (DesiredState::Running, EnvPhase::Running) if !runs && !self.shared.busy.lock().unwrap().contains(&env.id) => {
                let reason = match status {
                    Some(EnvStatus::Lost { reason }) => format!("the environment stopped running on this runner: {reason}"),
                    Some(EnvStatus::Stopped) => "the environment was stopped on the runner outside the control plane".to_string(),
                    _ => "the environment is gone from this runner (its data is missing)".to_string(),
                };
                Some(work::Job::Fail(reason))
            }
            _ => None,
        }
    }

    fn spawn_work(&self, id: String, job: work::Job) {
        if !self.shared.busy.lock().unwrap().insert(id.clone()) {
            return;
        }
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name(format!("env-{id}"))
            .spawn(move || {
                work::run(&shared, &id, job);
                shared.changed.store(true, Ordering::Release);
                shared.busy.lock().unwrap().remove(&id);
            })
            .expect("spawn an environment worker thread");
    }
}

fn credential(cp: &ControlPlane, dir: &Path, token: Option<&str>) -> Result<RunnerCredential, AgentError> {
    let path = dir.join(CREDENTIAL_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        let stored: RunnerCredential = serde_json::from_str(&text).map_err(|e| {
            AgentError::Setup(format!("{} is damaged ({e}); delete it and start again with a new --token", path.display()))
        })?;
        return Ok(stored);
    }
    let token = token.ok_or_else(|| {
        AgentError::Setup(format!(
            "no runner credential in {} yet: pass --token with the exchange token from `airlock admin runners create` (or `airlock admin runners exchange-token ID`)",
            dir.display()
        ))
    })?;
    let credential = cp.exchange(token.trim())?;
    let tmp = dir.join(format!("{CREDENTIAL_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut file, serde_json::to_string_pretty(&credential)?.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| AgentError::Setup(format!("cannot store the runner credential in {}: {e}", path.display())))?;
    Ok(credential)
}
