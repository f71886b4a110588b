//! Prometheus metrics of a runner: environments running against capacity, image cache hits
//! and misses, SSH gateway logins, channels and bytes, and outbound connections the egress
//! guard refused. Served by [`serve`] on the runner's metrics listener.

use std::net::SocketAddr;

use airlock_ssh_gateway::{ConnectionEvent, ConnectionEventKind};
use axum::http::header;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvironmentLabels {
    environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabels {
    kind: &'static str,
    direction: &'static str,
}

pub struct RunnerMetrics {
    registry: Registry,
    running: Gauge,
    capacity: Gauge,
    image_pulls: Family<CacheLabels, Counter>,
    image_downloaded_bytes: Counter,
    ssh_logins: Family<ResultLabels, Counter>,
    ssh_channels: Family<KindLabels, Counter>,
    ssh_bytes: Family<TrafficLabels, Counter>,
    ssh_refused_requests: Counter,
    egress_refusals: Counter,
    network_refusals: Family<EnvironmentLabels, Counter>,
    /// The last nftables count seen per environment (counts restart with the environment).
    network_seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Default for RunnerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let running = Gauge::default();
        registry.register(
            "airlock_runner_environments_running",
            "Environments running on this runner",
            running.clone(),
        );
        let capacity = Gauge::default();
        registry.register(
            "airlock_runner_capacity",
            "Environments this runner holds at once",
            capacity.clone(),
        );
        let image_pulls = Family::<CacheLabels, Counter>::default();
        registry.register(
            "airlock_runner_image_pulls",
            "Image pulls for environment starts: cache=hit when every blob was in the runner's cache, miss when any was downloaded",
            image_pulls.clone(),
        );
        let image_downloaded_bytes = Counter::default();
        registry.register(
            "airlock_runner_image_downloaded_bytes",
            "Image blob bytes downloaded from the mirror into the runner's cache",
            image_downloaded_bytes.clone(),
        );
        let ssh_logins = Family::<ResultLabels, Counter>::default();
        registry.register(
            "airlock_runner_ssh_logins",
            "SSH gateway authentications, by result",
            ssh_logins.clone(),
        );
        let ssh_channels = Family::<KindLabels, Counter>::default();
        registry.register(
            "airlock_runner_ssh_channels",
            "SSH gateway channels that ended, by kind (session: shell, command or sftp; forward: direct-tcpip to the environment's loopback)",
            ssh_channels.clone(),
        );
        let ssh_bytes = Family::<TrafficLabels, Counter>::default();
        registry.register(
            "airlock_runner_ssh_bytes",
            "Bytes carried by ended SSH gateway channels, by kind and direction (in: from the client)",
            ssh_bytes.clone(),
        );
        let ssh_refused_requests = Counter::default();
        registry.register(
            "airlock_runner_ssh_refused_requests",
            "SSH requests the gateway refused (forwards off the environment's loopback, -R, agent and X11 forwarding)",
            ssh_refused_requests.clone(),
        );
        let egress_refusals = Counter::default();
        registry.register(
            "airlock_runner_egress_refusals",
            "Outbound connections the egress guard refused (registries, git servers outside egress.allow)",
            egress_refusals.clone(),
        );
        let network_refusals = Family::<EnvironmentLabels, Counter>::default();
        registry.register(
            "airlock_runner_environment_network_refusals",
            "Packets from an environment its network policy refused (each a connection attempt for TCP): other environments, the runner host, the metadata address, destinations outside runner.network.allow",
            network_refusals.clone(),
        );
        // Every series exists from the start, at zero, so rates and alerts see the first event.
        for cache in ["hit", "miss"] {
            let _ = image_pulls.get_or_create(&CacheLabels { cache });
        }
        for result in ["accepted", "refused"] {
            let _ = ssh_logins.get_or_create(&ResultLabels { result });
        }
        for kind in ["session", "forward"] {
            let _ = ssh_channels.get_or_create(&KindLabels { kind });
            for direction in ["in", "out"] {
                let _ = ssh_bytes.get_or_create(&TrafficLabels { kind, direction });
            }
        }
        RunnerMetrics {
            registry,
            running,
            capacity,
            image_pulls,
            image_downloaded_bytes,
            ssh_logins,
            ssh_channels,
            ssh_bytes,
            ssh_refused_requests,
            egress_refusals,
            network_refusals,
            network_seen: Default::default(),
        }
    }
}

impl RunnerMetrics {
    pub(crate) fn set_running(&self, running: usize, capacity: usize) {
        self.running.set(i64::try_from(running).unwrap_or(i64::MAX));
        self.capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    pub(crate) fn image_pulled(&self, downloaded_bytes: u64, downloaded_blobs: usize) {
        let cache = if downloaded_blobs == 0 { "hit" } else { "miss" };
        self.image_pulls.get_or_create(&CacheLabels { cache }).inc();
        self.image_downloaded_bytes.inc_by(downloaded_bytes);
    }

    pub(crate) fn ssh_event(&self, event: &ConnectionEvent) {
        let (kind, bytes_in, bytes_out) = match &event.kind {
            ConnectionEventKind::AuthAccepted => return self.login("accepted"),
            ConnectionEventKind::AuthRefused { .. } => return self.login("refused"),
            ConnectionEventKind::RequestRefused { .. }
            | ConnectionEventKind::ForwardFailed { .. } => {
                self.ssh_refused_requests.inc();
                return;
            }
            ConnectionEventKind::SessionEnded {
                bytes_in,
                bytes_out,
                ..
            } => ("session", *bytes_in, *bytes_out),
            ConnectionEventKind::ForwardEnded {
                bytes_in,
                bytes_out,
                ..
            } => ("forward", *bytes_in, *bytes_out),
            _ => return,
        };
        self.ssh_channels.get_or_create(&KindLabels { kind }).inc();
        self.ssh_bytes
            .get_or_create(&TrafficLabels {
                kind,
                direction: "in",
            })
            .inc_by(bytes_in);
        self.ssh_bytes
            .get_or_create(&TrafficLabels {
                kind,
                direction: "out",
            })
            .inc_by(bytes_out);
    }

    fn login(&self, result: &'static str) {
        self.ssh_logins
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Records an environment's refusal count as read from its nftables counters (which
    /// restart at zero when the environment does: then the whole new count is added).
    pub(crate) fn network_refusals(&self, env: &str, count: u64) {
        let mut seen = self.network_seen.lock().unwrap_or_else(|e| e.into_inner());
        let last = seen.insert(env.to_string(), count).unwrap_or(0);
        let added = if count >= last { count - last } else { count };
        self.network_refusals.get_or_create(&EnvironmentLabels { environment: env.to_string() }).inc_by(added);
    }

    /// A counter the egress guard's audit hook increments (see `airlock_egress::ObservedAudit`).
    pub fn egress_refusals(&self) -> Counter {
        self.egress_refusals.clone()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// A bound metrics listener; [`MetricsListener::serve`] answers `GET /metrics` on it.
pub struct MetricsListener(tokio::net::TcpListener);

impl MetricsListener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<MetricsListener> {
        tokio::net::TcpListener::bind(addr)
            .await
            .map(MetricsListener)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Serves until the task running it is dropped (with the process's runtime).
    pub async fn serve(self, metrics: std::sync::Arc<RunnerMetrics>) -> std::io::Result<()> {
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], text) }
            }),
        );
        axum::serve(self.0, app).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_refusals_add_what_nftables_counted_since_the_last_reading() {
        let metrics = RunnerMetrics::default();
        metrics.network_refusals("env_a", 3);
        metrics.network_refusals("env_a", 5);
        // The environment restarted: its counters began again at zero.
        metrics.network_refusals("env_a", 2);
        metrics.network_refusals("env_b", 0);
        let text = metrics.render();
        assert!(text.contains("airlock_runner_environment_network_refusals_total{environment=\"env_a\"} 7"), "{text}");
        assert!(text.contains("airlock_runner_environment_network_refusals_total{environment=\"env_b\"} 0"), "{text}");
    }
}
