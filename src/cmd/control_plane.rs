//! `airlock control-plane`: run the control plane, and make its key-encryption key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_control_plane::api::Config;
use airlock_control_plane::secrets::Kek;
use airlock_control_plane::server::{self, ServeOptions};
use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Serve the control plane API (users, RBAC, projects, runners, environments, secrets,
    /// audit) until Ctrl-C or SIGTERM.
    #[command(after_help = "Examples:\n  \
        airlock control-plane gen-kek --out /etc/airlock/kek\n  \
        airlock admin init --data-dir /var/lib/airlock/cp --org acme --owner admin@acme.internal\n  \
        airlock control-plane serve --listen 0.0.0.0:8443 --data-dir /var/lib/airlock/cp \\\n      \
        --kek-file /etc/airlock/kek --tls-cert /etc/airlock/cp.crt --tls-key /etc/airlock/cp.key\n\n\
        Plain HTTP is allowed on loopback addresses only (e.g. --listen 127.0.0.1:8080 behind a\n\
        local TLS proxy, or for tests). The first line on standard output is\n\
        `listening on URL`. To rotate the key-encryption key: restart with the new key first and\n\
        the old one second (--kek-file NEW --kek-file OLD), run `airlock admin secrets rotate-kek`,\n\
        then restart with the new key only.")]
    Serve(ServeArgs),
    /// Write a new random 256-bit key-encryption key (hex, mode 0600) for --kek-file.
    #[command(
        after_help = "Example:\n  airlock control-plane gen-kek --out /etc/airlock/kek\n  \
        # keep a copy offline: without it the stored secrets cannot be decrypted"
    )]
    GenKek {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443", value_parser = super::listen::parse_listen)]
    listen: SocketAddr,
    /// The site folder; the control plane's database is its `control-plane/` (create it with
    /// `airlock admin init`).
    #[command(flatten)]
    site: super::site::SiteArgs,
    /// Key-encryption key file (32 bytes, raw or hex). Repeat to keep older keys loaded
    /// during a rotation; the first one wraps new secrets.
    #[arg(long = "kek-file", value_name = "FILE", required = true)]
    kek_files: Vec<PathBuf>,
    /// PEM certificate chain; with --tls-key, serve HTTPS (TLS 1.2/1.3 via rustls).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds without a heartbeat after which a runner is shown inactive and gets no work.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    runner_inactive_after: u64,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// The site configuration (airlock.toml) for what only it can say: single sign-on
    /// (`[sso]`, `control_plane.public_url`) and the egress allow-list the identity provider
    /// is reached through (`[egress]`). The flags above win over the file.
    #[arg(long, value_name = "FILE", env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args),
        Command::GenKek { out } => {
            let kek = Kek::generate_file(&out)?;
            eprintln!(
                "wrote {} (key id {}); keep a copy offline",
                out.display(),
                kek.id()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::with_runner_inactive_after(Duration::from_secs(args.runner_inactive_after));
    if let Some(path) = &args.config {
        let mut site = airlock_config::Config::load(Some(path), std::env::vars())?;
        // The flags say where this control plane listens and keeps its data.
        site.control_plane.listen = args.listen;
        site.data_dir = args.site.data_dir.clone();
        config.sso = super::server::single_sign_on(&site).with_context(|| format!("[sso] in {}", path.display()))?;
    }
    let tls = args.tls_cert.zip(args.tls_key);
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The whole site folder, not only the control plane's part: a key beside the mirror's
    // data is as exposed as one beside the database.
    for kek in &args.kek_files {
        if server::path_inside(kek, &args.site.data_dir) {
            return Err(server::ServeError::KekInDataDir {
                kek: kek.display().to_string(),
                data_dir: args.site.data_dir.display().to_string(),
            }
            .into());
        }
    }
    let opts = ServeOptions {
        listen: args.listen,
        data_dir: args.site.folder(airlock_config::Component::ControlPlane)?,
        kek_files: args.kek_files,
        tls,
        config,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::serve(
        opts,
        |addr| {
            println!("listening on {scheme}://{addr}");
            tracing::info!(%addr, "control plane listening");
        },
        server::shutdown_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
