//! `airlock runner`: the runner agent with its SSH gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use airlock_egress::{EgressAudit, EgressGuard, JsonLinesAudit, ObservedAudit};
use airlock_runner::agent::{Agent, AgentOptions};
use airlock_runner::engine::EngineOptions;
use airlock_runner::network::NetworkConfig;
use airlock_runner::metrics::{MetricsListener, RunnerMetrics};
use anyhow::Context;

#[derive(clap::Args)]
#[command(after_help = "Example:\n  airlock runner --control-plane https://cp.acme.internal:8443 --ca-cert site-ca.pem \\\n      \
    --token alk_rex_... --data-dir /var/lib/airlock/runner --capacity 40 --ssh-listen 10.20.0.7:2222\n\n\
    The token is exchanged once for a credential kept in the data folder (mode 0600); later\n\
    starts need no token. Environments keep running while the runner is stopped or restarted,\n\
    and are adopted when it comes back.")]
pub struct Args {
    /// The control plane's URL.
    #[arg(long = "control-plane", value_name = "URL", env = "AIRLOCK_URL")]
    control_plane: String,
    /// One-time exchange token from `airlock admin runners create`.
    #[arg(long, value_name = "TOKEN", env = "AIRLOCK_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The site folder; the runner keeps its credential, image cache and environments in
    /// its `runner/`.
    #[command(flatten)]
    site: super::site::SiteArgs,
    /// Environments this runner holds at once; more wait (pending) for a free place.
    #[arg(long, value_name = "N", default_value_t = 10)]
    capacity: usize,
    /// PEM CA certificate the HTTPS certificates of the control plane, the mirror and the git
    /// servers chain to (git in environments gets it too).
    #[arg(long, value_name = "FILE", env = "AIRLOCK_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Registries (host:port) reached over plain HTTP instead of HTTPS, e.g. a loopback mirror.
    #[arg(long = "plain-http-registry", value_name = "HOST:PORT")]
    plain_http_registries: Vec<String>,
    /// The SSH gateway users reach their environments through.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2222", value_parser = super::listen::parse_listen)]
    ssh_listen: SocketAddr,
    /// Host name written into users' ssh-config for this runner (default: the listen address).
    #[arg(long, value_name = "HOST")]
    ssh_public_host: Option<String>,
    /// First host uid of the environments' ranges (65536 ids each).
    #[arg(long, value_name = "UID", default_value_t = 1_000_000)]
    uid_base: u32,
    /// The OCI runtime.
    #[arg(long, value_name = "PATH", default_value = "runc")]
    runc: PathBuf,
    /// An internal destination the runner may connect to besides loopback (host name,
    /// `*.suffix` or CIDR); repeat. Everything else is refused and logged to
    /// DATA/egress-audit.jsonl.
    #[arg(long = "egress-allow", value_name = "ENTRY")]
    egress_allow: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464); none by default.
    #[arg(long, value_name = "ADDR", value_parser = super::listen::parse_listen)]
    metrics_listen: Option<SocketAddr>,
    /// Give each environment its own network (a veth on the runner's bridge) under a
    /// default-deny policy; without it, environments have only their loopback.
    #[arg(long)]
    network: bool,
    /// The runner's bridge (also its nftables tables' name).
    #[arg(long, value_name = "NAME", default_value = NetworkConfig::DEFAULT_BRIDGE, requires = "network")]
    network_bridge: String,
    /// IPv4 network of the environments.
    #[arg(long, value_name = "CIDR", default_value = NetworkConfig::DEFAULT_SUBNET, requires = "network")]
    network_subnet: String,
    /// A destination environments may reach: host:port, address:port or cidr:port (`/udp`
    /// for UDP); repeat. The control plane is allowed unless --network-no-services.
    #[arg(long = "network-allow", value_name = "ENTRY", requires = "network")]
    network_allow: Vec<String>,
    /// A site DNS server (IPv4) for environments' resolv.conf, allowed on port 53; repeat.
    #[arg(long = "network-dns", value_name = "ADDR", requires = "network")]
    network_dns: Vec<String>,
    /// An /etc/hosts entry of environments, NAME=ADDRESS; repeat.
    #[arg(long = "network-host", value_name = "NAME=ADDR", requires = "network")]
    network_hosts: Vec<String>,
    /// Do not allow the control plane and the plain-HTTP registries automatically.
    #[arg(long, requires = "network")]
    network_no_services: bool,
    /// How often to read the assignment from the control plane.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data_dir = args.site.folder(airlock_config::Component::Runner)?;
    let mut engine = EngineOptions::new(&data_dir);
    engine.uid_base = args.uid_base;
    engine.runc = args.runc.clone();
    engine.registry.plain_http = args.plain_http_registries.clone();
    engine.registry.ca_certs = args.ca_cert.iter().cloned().collect();
    if args.network {
        let hosts = args
            .network_hosts
            .iter()
            .map(|h| h.split_once('=').map(|(n, a)| (n.to_string(), a.to_string())).with_context(|| format!("--network-host {h}: expected NAME=ADDRESS")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut services = Vec::new();
        if !args.network_no_services {
            services.push(args.control_plane.clone());
            services.extend(args.plain_http_registries.iter().map(|r| format!("http://{r}")));
        }
        engine.network = Some(
            NetworkConfig::from_settings(&args.network_bridge, &args.network_subnet, &args.network_allow, &args.network_dns, &hosts, &services)
                .context("the --network settings")?,
        );
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let metrics = Arc::new(RunnerMetrics::default());
    let audit = counted_audit(&data_dir, &metrics)?;
    let egress = EgressGuard::from_allow_list(&args.egress_allow, audit)?.with_component("runner");
    let agent = Agent::start(AgentOptions {
        control_plane_url: args.control_plane.clone(),
        ca_cert: args.ca_cert.clone(),
        exchange_token: args.token.clone(),
        data_dir: data_dir.clone(),
        capacity: args.capacity,
        poll_interval: args.poll_interval,
        engine,
        egress,
        metrics: metrics.clone(),
    })
    .context("cannot start the runner")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if let Some(listen) = args.metrics_listen {
        let addr = serve_metrics(&runtime, listen, metrics, "--metrics-listen")?;
        println!("runner metrics listening on http://{addr}/metrics");
    }
    let gateway = runtime
        .block_on(agent.start_gateway(args.ssh_listen, args.ssh_public_host.clone()))
        .context("cannot start the SSH gateway")?;
    let addr = gateway.local_addr();
    println!("runner ssh gateway listening on {addr} (host key {})", gateway.fingerprint());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    runtime.spawn(async move {
        airlock_control_plane::server::shutdown_signal().await;
        flag.store(true, Ordering::Relaxed);
    });
    agent.run(&stop);
    runtime.block_on(gateway.shutdown());
    tracing::info!("runner stopped; its environments keep running and are adopted at the next start");
    Ok(ExitCode::SUCCESS)
}

/// The runner's refusal log (DATA/egress-audit.jsonl), each refusal also counted in `metrics`.
pub fn counted_audit(data_dir: &std::path::Path, metrics: &RunnerMetrics) -> anyhow::Result<Arc<dyn EgressAudit>> {
    let file = Arc::new(JsonLinesAudit::in_data_dir(data_dir)?);
    let refusals = metrics.egress_refusals();
    Ok(Arc::new(ObservedAudit::new(file, move |_| {
        refusals.inc();
    })))
}

/// Binds the metrics listener (`setting` names where the address came from, for the error)
/// and serves it on `runtime`.
pub fn serve_metrics(
    runtime: &tokio::runtime::Runtime,
    listen: SocketAddr,
    metrics: Arc<RunnerMetrics>,
    setting: &str,
) -> anyhow::Result<SocketAddr> {
    let listener = runtime.block_on(MetricsListener::bind(listen)).with_context(|| {
        format!("cannot listen for metrics on {listen} ({setting}); another process may hold it, or choose another address")
    })?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        if let Err(e) = listener.serve(metrics).await {
            tracing::error!(error = %e, "the runner's metrics listener stopped");
        }
    });
    Ok(addr)
}
