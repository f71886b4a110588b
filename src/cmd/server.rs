//! `airlock server`: mirror, control plane and a built-in runner in one process, on one data
//! folder, like the all-in-one mode of the self-hosted platforms. Configuration comes from
//! airlock.toml and AIRLOCK_* variables (docs/configuration.md).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use airlock_config::Config;
use airlock_control_plane::api::Config as ApiConfig;
use airlock_control_plane::client::{Client, Method};
use airlock_control_plane::secrets::Kek;
use airlock_control_plane::server::{self as cp_server, ServeOptions as CpOptions};
use airlock_control_plane::time::Clock;
use airlock_mirror::serve::{self as mirror_serve, ServeOptions as MirrorOptions};
use airlock_egress::{EgressGuard, JsonLinesAudit};
use airlock_runner::agent::{Agent, AgentOptions};
use airlock_runner::engine::EngineOptions;
use airlock_runner::network::NetworkConfig;
use airlock_runner::metrics::RunnerMetrics;
use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::oneshot;

#[derive(clap::Args)]
#[command(after_help = "Example:\n  airlock server --kek-file /etc/airlock/kek\n  \
    airlock server --config /etc/airlock/airlock.toml     # with control_plane.kek_files set\n  \
    AIRLOCK_MIRROR_LISTEN=127.0.0.1:0 AIRLOCK_CONTROL_PLANE_LISTEN=127.0.0.1:0 airlock server --kek-file /etc/airlock/kek\n\n\
    On first start it creates the control plane's database with an org named after site.name\n\
    and an owner (--owner), writes the owner's token to DATA/control-plane/owner-token, and\n\
    creates the key-encryption key at the --kek-file path if it does not exist yet. The key must\n\
    live outside the data folder: a copy of the folder must not carry the key to its secrets.")]
pub struct Args {
    /// airlock.toml (every key is optional; see docs/configuration.md).
    #[arg(long, value_name = "FILE", env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// The owner created on first start.
    #[arg(long, value_name = "EMAIL", default_value = "admin@airlock.internal")]
    owner: String,
    /// Key-encryption key of the control plane's secrets, outside the data folder (repeat for
    /// old keys during a rotation; the first is current). Created on first start if missing.
    /// Overrides control_plane.kek_files.
    #[arg(long = "kek-file", value_name = "FILE")]
    kek_files: Vec<PathBuf>,
}

pub const OWNER_TOKEN_FILE: &str = "owner-token";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data folder {}", config.data_dir.display()))?;
    config.site().check()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut cp_url = None;
    let mut tasks = Vec::new();
    if config.control_plane.enabled {
        let opts = control_plane_options(&config, &args.owner, &args.kek_files)?;
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let (ready, addr) = oneshot::channel::<SocketAddr>();
        let shutdown = stopped();
        let listen = opts.listen;
        let mut control_plane = runtime.spawn(async move {
            cp_server::serve(opts, |a| { let _ = ready.send(a); }, shutdown)
                .await
                .context("the control plane stopped")
        });
        let addr = listening(&runtime, addr, &mut control_plane, "control plane", "control_plane.listen", listen)?;
        tasks.push(control_plane);
        let url = format!("{scheme}://{addr}");
        announce(&format!("control plane listening on {url}"));
        cp_url = Some(url);
    }
    let mut mirror_addr = None;
    if config.mirror.enabled {
        let tls = config.mirror.tls_cert.clone().zip(config.mirror.tls_key.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Before the store opens for serving: every import through it then checks the anchor.
        super::mirror::pin_trust_anchor(&config, args.config.as_deref(), &config.mirror_dir())?;
        let opts = MirrorOptions {
            data_dir: config.mirror_dir(),
            listen: config.mirror.listen,
            allow_push: config.mirror.allow_push,
            push: super::mirror::push_limits(&config.mirror),
            tls,
        };
        let (ready, addr) = oneshot::channel::<SocketAddr>();
        let mut mirror = runtime.spawn(async move {
            mirror_serve::serve(opts, |a| { let _ = ready.send(a); })
                .await
                .context("the mirror stopped")
        });
        let addr = listening(&runtime, addr, &mut mirror, "mirror", "mirror.listen", config.mirror.listen)?;
        tasks.push(mirror);
        announce(&format!("mirror listening on {scheme}://{addr}"));
        mirror_addr = Some((addr, scheme == "http"));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut runner = None;
    if config.runner.enabled {
        let url = cp_url
            .clone()
            .or_else(|| config.control_plane.public_url.clone())
            .context("the built-in runner needs a control plane: enable it or set control_plane.public_url")?;
        let metrics = Arc::new(RunnerMetrics::default());
        let agent = builtin_runner(&config, &url, mirror_addr, metrics.clone())?;
        if let Some(listen) = config.runner.metrics_listen {
            let addr = super::runner::serve_metrics(&runtime, listen, metrics, "runner.metrics_listen")?;
            announce(&format!("runner metrics listening on http://{addr}/metrics"));
        }
        let gateway = runtime
            .block_on(agent.start_gateway(config.runner.ssh_listen, config.runner.ssh_public_host.clone()))
            .with_context(|| format!("cannot start the SSH gateway (runner.ssh_listen is {})", config.runner.ssh_listen))?;
        let addr = gateway.local_addr();
        announce(&format!("ssh gateway listening on {addr}"));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("runner".into())
            .spawn(move || agent.run(&flag))
            .context("cannot start the runner thread")?;
        runner = Some((thread, gateway));
    }
    announce("airlock server ready");

    runtime.block_on(async {
        tokio::select! {
            _ = cp_server::shutdown_signal() => {}
            failed = first_failure(&mut tasks) => {
                if let Err(e) = failed {
                    tracing::error!(error = %format!("{e:#}"), "a component stopped; shutting down");
                }
            }
        }
    });
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    if let Some((thread, gateway)) = runner {
        let _ = thread.join();
        runtime.block_on(gateway.shutdown());
    }
    runtime.shutdown_timeout(Duration::from_secs(10));
    Ok(ExitCode::SUCCESS)
}

/// The first line for each component on stdout says where it listens (scripts read them).
fn announce(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Waits until a component reports the address it listens on. If it stops first, its own
/// error (port taken, unreadable TLS key, push over plain HTTP…) is the answer, with the
/// setting that chose the address.
fn listening(
    runtime: &tokio::runtime::Runtime,
    addr: oneshot::Receiver<SocketAddr>,
    task: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
    component: &str,
    setting: &str,
    configured: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = runtime.block_on(addr) {
        return Ok(addr);
    }
    let why = match runtime.block_on(task) {
        Ok(Err(e)) => e,
        Ok(Ok(())) => anyhow::anyhow!("it stopped before listening"),
        Err(e) => anyhow::anyhow!("it panicked: {e}"),
    };
    Err(why.context(format!("the {component} did not start ({setting} is {configured})")))
}

/// Resolves when a component's task ends (which only happens when it failed).
async fn first_failure(tasks: &mut Vec<tokio::task::JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    loop {
        if let Some(i) = tasks.iter().position(|t| t.is_finished()) {
            return match tasks.remove(i).await {
                Ok(Ok(())) => bail!("a component stopped unexpectedly"),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("a component panicked: {e}")),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the control plane's database (org, owner) and its KEK on first start. The KEK
/// must be given and must live outside the data folder; see [`kek_files`].
fn control_plane_options(config: &Config, owner: &str, kek_flags: &[PathBuf]) -> anyhow::Result<CpOptions> {
    let dir = config.control_plane_dir();
    let kek_files = kek_files(config, kek_flags)?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token_file = dir.join(OWNER_TOKEN_FILE);
    let first_start = match airlock_control_plane::bootstrap::init(&dir, &config.site.name, owner, Clock::system().now()) {
        Ok(init) => {
            write_secret(&token_file, &init.token)?;
            eprintln!(
                "initialized the control plane: org {}, owner {owner}; the owner's token is in {}",
                config.site.name,
                token_file.display()
            );
            true
        }
        Err(airlock_control_plane::bootstrap::InitError::AlreadyInitialized { .. }) => false,
        Err(e) => return Err(e).context("cannot initialize the control plane"),
    };
    let current = &kek_files[0];
    if !current.exists() {
        if !first_start {
            bail!(
                "the key-encryption key {} does not exist, but the control plane in {} was started before: \
                 give the key it was started with (--kek-file), or restore it from your offline copy",
                current.display(),
                dir.display()
            );
        }
        if let Some(parent) = current.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let made = Kek::generate_file(current)?;
        eprintln!(
            "created key-encryption key {} (id {}), outside the data folder {}; keep a copy offline \
             and never in the same backup as the data folder",
            current.display(),
            made.id(),
            config.data_dir.display()
        );
    }
    Ok(CpOptions {
        listen: config.control_plane.listen,
        data_dir: dir,
        kek_files,
        tls: config.control_plane.tls_cert.clone().zip(config.control_plane.tls_key.clone()),
        config: ApiConfig {
            sso: single_sign_on(config)?,
            ..ApiConfig::with_runner_inactive_after(Duration::from_secs(
                config.control_plane.inactive_after_seconds,
            ))
        },
    })
}

/// The `[sso]` providers, their HTTP through the egress guard (the IdP must be in
/// `egress.allow` unless it is on loopback).
pub(super) fn single_sign_on(config: &Config) -> anyhow::Result<Option<Arc<airlock_control_plane::sso::Sso>>> {
    if config.sso.providers.is_empty() {
        return Ok(None);
    }
    if config.control_plane.public_url.is_none() && config.control_plane.listen.port() == 0 {
        anyhow::bail!("[[sso.providers]] needs control_plane.public_url (the identity provider redirects browsers back to it), or a fixed control_plane.listen port");
    }
    let audit = Arc::new(JsonLinesAudit::in_data_dir(&config.data_dir)?);
    let guard = EgressGuard::from_config(config, audit)?.with_component("control-plane");
    let sso = airlock_control_plane::sso::Sso::new(&config.sso, &config.control_plane_url(), &guard)?;
    Ok(Some(Arc::new(sso)))
}

/// Registers the built-in runner with the control plane once (its credential then lives in
/// DATA/runner) and opens it.
fn builtin_runner(
    config: &Config,
    cp_url: &str,
    mirror: Option<(SocketAddr, bool)>,
    metrics: Arc<RunnerMetrics>,
) -> anyhow::Result<Agent> {
    let dir = config.runner_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let token = if dir.join("credential.json").exists() {
        None
    } else {
        Some(register_runner(config, cp_url)?)
    };
    let audit = super::runner::counted_audit(&config.data_dir, &metrics)?;
    let egress = EgressGuard::from_config(config, audit)?.with_component("runner");
    let mut engine = EngineOptions::new(&dir);
    engine.uid_base = config.runner.uid_base;
    engine.runc = config.runner.runc.clone();
    if let Some((addr, true)) = mirror {
        engine.registry.plain_http = vec![addr.to_string()];
    }
    let net = &config.runner.network;
    if net.enabled {
        let mut services = if net.allow_mirror { vec![config.mirror_url(), cp_url.to_string()] } else { Vec::new() };
        // Environments never reach the runner host, so a service listening on its loopback
        // cannot be allowed; say so instead of failing on it.
        services.retain(|url| {
            let local = ["://127.", "://localhost", "://[::1]", "://0.0.0.0"].iter().any(|l| url.contains(l));
            if local {
                tracing::warn!(service = url, "runner.network.allow_mirror: this service listens on the runner host, which environments never reach; give it a site address to allow it");
            }
            !local
        });
        let hosts: Vec<(String, String)> = net.hosts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let network = NetworkConfig::from_settings(&net.bridge, &net.subnet, &net.allow, &net.dns, &hosts, &services).context("[runner.network] in the configuration")?;
        engine.network = Some(network);
    }
    Agent::start(AgentOptions {
        control_plane_url: cp_url.to_string(),
        ca_cert: None,
        exchange_token: token,
        data_dir: dir,
        capacity: config.runner.capacity as usize,
        poll_interval: Duration::from_secs(1),
        engine,
        egress,
        metrics,
    })
    .context("cannot start the built-in runner")
}

fn register_runner(config: &Config, cp_url: &str) -> anyhow::Result<String> {
    let token_file = config.control_plane_dir().join(OWNER_TOKEN_FILE);
    let owner = fs::read_to_string(&token_file).with_context(|| {
        format!("the built-in runner registers with the owner's token in {}, which cannot be read", token_file.display())
    })?;
    let client = Client::new(cp_url, Some(owner.trim().to_string()), None)?;
    let name = &config.runner.name;
    let existing = client.call(Method::GET, "/api/v1/runners", &[("limit", "500".into())], None)?;
    let found = existing["items"].as_array().into_iter().flatten().find(|r| r["name"] == name.as_str());
    let answer = match found {
        Some(r) => client.call(Method::POST, &format!("/api/v1/runners/{}/exchange-token", r["id"].as_str().unwrap_or_default()), &[], None)?,
        None => client.call(Method::POST, "/api/v1/runners", &[], Some(&json!({"name": name, "capacity": config.runner.capacity})))?,
    };
    answer["exchange_token"]
        .as_str()
        .map(str::to_string)
        .context("the control plane gave no exchange token for the built-in runner")
}

/// The KEK files: `--kek-file`, else `control_plane.kek_files`. None given is refused (the old
/// default put the key beside the database it protects), and so is a key inside the data folder.
fn kek_files(config: &Config, flags: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let files = if flags.is_empty() { config.control_plane.kek_files.clone() } else { flags.to_vec() };
    if files.is_empty() {
        let old = config.control_plane_dir().join("kek");
        let moving = if old.exists() {
            format!(
                "\nThis installation keeps its key at {old}, inside the data folder: move it out first, \
                 e.g. `install -d -m 700 /etc/airlock && mv {old} /etc/airlock/kek`.",
                old = old.display()
            )
        } else {
            String::new()
        };
        bail!(
            "airlock server needs to be told where the control plane's key-encryption key lives, \
             outside the data folder {data} (a copy of the folder must not carry the key to its secrets): \
             pass --kek-file /etc/airlock/kek (created on first start if missing), or set \
             control_plane.kek_files in airlock.toml or AIRLOCK_CONTROL_PLANE_KEK_FILES.{moving}",
            data = config.data_dir.display()
        );
    }
    for file in &files {
        if cp_server::path_inside(file, &config.data_dir) {
            bail!(
                "the key-encryption key {} is inside the data folder {}: a copy of the folder would carry \
                 the key to its secrets. Keep it elsewhere (e.g. /etc/airlock/kek) and pass that path with --kek-file",
                file.display(),
                config.data_dir.display()
            );
        }
    }
    Ok(files)
}

fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(format!("{value}\n").as_bytes())?;
    file.sync_all()?;
    Ok(())
}
