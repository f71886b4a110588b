//! Prometheus metrics: request counts and latencies per route, login failures, and gauges
//! of environments and runners by phase read from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::{ApiError, App};
use crate::environments::effective_runner_phase;
use crate::model::{Environment, Org, Runner};
use crate::store::keys;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) → count
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route) → latency
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    login_failures: AtomicU64,
}

impl Metrics {
    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = (method.to_string(), route.to_string());
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((key.0.clone(), key.1.clone(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = latency.entry(key).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    pub fn render(&self, app: &App) -> Result<String, ApiError> {
        let mut out = String::new();
        out.push_str("# HELP airlock_http_requests_total HTTP requests by route and status.\n# TYPE airlock_http_requests_total counter\n");
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "airlock_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP airlock_http_request_duration_seconds Request latency by route.\n# TYPE airlock_http_request_duration_seconds histogram\n");
        for ((method, route), h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "airlock_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP airlock_login_failures_total Failed or rate-limited logins.\n# TYPE airlock_login_failures_total counter\nairlock_login_failures_total {}",
            self.login_failures.load(Ordering::Relaxed)
        );
        let mut env_phases: BTreeMap<String, u64> = BTreeMap::new();
        let mut runner_phases: BTreeMap<String, u64> = BTreeMap::new();
        let now = app.now();
        for (_, org) in app.store.scan_all::<Org>("org/")? {
            for (_, e) in app
                .store
                .scan_all::<Environment>(&keys::obj_prefix(&org.id, "env"))?
            {
                *env_phases.entry(e.phase.as_str().to_string()).or_default() += 1;
            }
            for (_, r) in app
                .store
                .scan_all::<Runner>(&keys::obj_prefix(&org.id, "runner"))?
            {
                let phase = effective_runner_phase(&r, now, app.config.runner_inactive_after);
                *runner_phases
                    .entry(format!("{phase:?}").to_lowercase())
                    .or_default() += 1;
            }
        }
        out.push_str("# HELP airlock_environments Environments by phase.\n# TYPE airlock_environments gauge\n");
        for (phase, n) in env_phases {
            let _ = writeln!(out, "airlock_environments{{phase=\"{phase}\"}} {n}");
        }
        out.push_str("# HELP airlock_runners Runners by phase.\n# TYPE airlock_runners gauge\n");
        for (phase, n) in runner_phases {
            let _ = writeln!(out, "airlock_runners{{phase=\"{phase}\"}} {n}");
        }
        let head = crate::audit::head(&app.store)?;
        let _ = writeln!(out, "# HELP airlock_audit_records Records in the audit log.\n# TYPE airlock_audit_records gauge\nairlock_audit_records {}", head.seq);
        Ok(out)
    }
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
    app.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
