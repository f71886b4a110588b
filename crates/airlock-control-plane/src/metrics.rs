//! Prometheus metrics of the control plane: requests and their latency per route, login
//! failures, the time from a start request to a running environment, and gauges of
//! environments and runners by phase read from the store at scrape time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use airlock_api::{EnvPhase, RunnerPhase};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{ApiError, App};
use crate::environments::effective_runner_phase;
use crate::model::{Environment, Org, Runner};
use crate::store::keys;

/// `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const REQUEST_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// A start pulls an image and may clone a repository: seconds to minutes.
const START_BUCKETS: [f64; 11] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Starts waited on at once; past it the oldest is forgotten (never observed) so a runner
/// that never answers cannot grow the map without bound.
const MAX_PENDING_STARTS: usize = 100_000;

const ENV_PHASES: [EnvPhase; 8] = [
    EnvPhase::Creating,
    EnvPhase::Starting,
    EnvPhase::Running,
    EnvPhase::Stopping,
    EnvPhase::Stopped,
    EnvPhase::Deleting,
    EnvPhase::Deleted,
    EnvPhase::Failed,
];
const RUNNER_PHASES: [RunnerPhase; 4] = [RunnerPhase::Created, RunnerPhase::Active, RunnerPhase::Degraded, RunnerPhase::Inactive];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    trigger: &'static str,
}

/// What made an environment start: its creation or a start of a stopped one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTrigger {
    Create,
    Start,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    login_failures: Counter,
    start_latency: HistogramFamily<StartLabels>,
    environments: Family<PhaseLabels, Gauge>,
    runners: Family<PhaseLabels, Gauge>,
    audit_records: Gauge,
    /// Environment id → when its start was asked for, until a runner reports it running.
    pending_starts: Mutex<HashMap<String, (Instant, StartTrigger)>>,
    /// One scrape at a time reads the store into the gauges.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("airlock_http_requests", "HTTP requests by route and status", requests.clone());
        let latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register("airlock_http_request_duration_seconds", "Request latency by route", latency.clone());
        let login_failures = Counter::default();
        registry.register("airlock_login_failures", "Failed or rate-limited logins", login_failures.clone());
        let start_latency: HistogramFamily<StartLabels> = Family::new_with_constructor(|| Histogram::new(START_BUCKETS));
        registry.register(
            "airlock_environment_start_duration_seconds",
            "Time from a create or start request to the runner reporting the environment running (measured by the control plane process that took the request)",
            start_latency.clone(),
        );
        let environments = Family::<PhaseLabels, Gauge>::default();
        registry.register("airlock_environments", "Environments by phase", environments.clone());
        let runners = Family::<PhaseLabels, Gauge>::default();
        registry.register("airlock_runners", "Runners by phase (inactive: no heartbeat within inactive_after_seconds)", runners.clone());
        let audit_records = Gauge::default();
        registry.register("airlock_audit_records", "Records in the audit log", audit_records.clone());
        Metrics {
            registry,
            requests,
            latency,
            login_failures,
            start_latency,
            environments,
            runners,
            audit_records,
            pending_starts: Mutex::default(),
            scrape: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn login_failure(&self) {
        self.login_failures.inc();
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let (method, route) = (method.to_string(), route.to_string());
        self.requests
            .get_or_create(&RequestLabels { method: method.clone(), route: route.clone(), status: status.to_string() })
            .inc();
        self.latency.get_or_create(&RouteLabels { method, route }).observe(seconds);
    }

    /// An environment was asked to run (created, or started while stopped).
    pub fn start_requested(&self, env_id: &str, trigger: StartTrigger) {
        let mut pending = self.pending_starts.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING_STARTS {
            if let Some(oldest) = pending.iter().min_by_key(|(_, (at, _))| *at).map(|(id, _)| id.clone()) {
                pending.remove(&oldest);
            }
        }
        pending.insert(env_id.to_string(), (Instant::now(), trigger));
    }

    /// A runner reported `phase` for the environment: running ends the wait (observed once);
    /// any other phase but creating or starting ends it unobserved.
    pub fn environment_reached(&self, env_id: &str, phase: EnvPhase) {
        if matches!(phase, EnvPhase::Creating | EnvPhase::Starting) {
            return;
        }
        let waited = self.pending_starts.lock().unwrap_or_else(|p| p.into_inner()).remove(env_id);
        if let (Some((since, trigger)), EnvPhase::Running) = (waited, phase) {
            let trigger = match trigger {
                StartTrigger::Create => "create",
                StartTrigger::Start => "start",
            };
            self.start_latency.get_or_create(&StartLabels { trigger }).observe(since.elapsed().as_secs_f64());
        }
    }

    /// The Prometheus text exposition (format 0.0.4), with the gauges read from the store now.
    pub fn render(&self, app: &App) -> Result<String, ApiError> {
        let _one_scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let mut env_phases: BTreeMap<&str, i64> = ENV_PHASES.iter().map(|p| (p.as_str(), 0)).collect();
        let mut runner_phases: HashMap<String, i64> = HashMap::new();
        let now = app.now();
        for (_, org) in app.store.scan_all::<Org>("org/")? {
            for (_, e) in app.store.scan_all::<Environment>(&keys::obj_prefix(&org.id, "env"))? {
                *env_phases.entry(e.phase.as_str()).or_default() += 1;
            }
            for (_, r) in app.store.scan_all::<Runner>(&keys::obj_prefix(&org.id, "runner"))? {
                let phase = effective_runner_phase(&r, now, app.config.runner_inactive_after);
                *runner_phases.entry(runner_phase_label(phase)).or_default() += 1;
            }
        }
        for (phase, n) in env_phases {
            self.environments.get_or_create(&PhaseLabels { phase: phase.to_string() }).set(n);
        }
        for phase in RUNNER_PHASES.map(runner_phase_label) {
            let n = runner_phases.get(&phase).copied().unwrap_or(0);
            self.runners.get_or_create(&PhaseLabels { phase }).set(n);
        }
        let head = crate::audit::head(&app.store)?;
        self.audit_records.set(i64::try_from(head.seq).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}

fn runner_phase_label(phase: RunnerPhase) -> String {
    format!("{phase:?}").to_lowercase()
}

/// Middleware: times every request and counts it under its route template.
pub async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    app.metrics.observe(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}
