//! `airlock mirror …`: the air-gapped side's content store and server.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use airlock_bundle::{human_bytes, ArtifactKind, Silent};
use airlock_mirror::admin::{self, Request};
use airlock_mirror::anchor::{self, KeyRequirement};
use airlock_mirror::serve::{self, ServeOptions};
use clap::Subcommand;
use serde_json::{json, Value};

use super::output::{OutputFormat, Table};
use super::site::SiteArgs;
use airlock_config::Component;
use super::progress::progress_bar;

/// The site folder, of which the mirror uses `mirror/`.
#[derive(clap::Args)]
pub struct DataDir {
    #[command(flatten)]
    site: SiteArgs,
}

impl DataDir {
    /// The mirror's own folder (content store and metadata).
    fn mirror(&self) -> anyhow::Result<PathBuf> {
        // Read by earlier versions as the mirror's own folder: ignoring it silently would
        // serve an empty mirror from the default folder.
        if let Some(old) = std::env::var_os("AIRLOCK_MIRROR_DATA") {
            bail!(
                "AIRLOCK_MIRROR_DATA ({}) is no longer read: set AIRLOCK_DATA_DIR (or --data-dir) to the \
                 site folder instead; the mirror keeps its data in its mirror/ folder",
                PathBuf::from(old).display()
            );
        }
        self.site.folder(Component::Mirror)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Verify a bundle and import it, in one streaming pass, committing atomically.
    #[command(after_help = "Example:\n  airlock mirror import sample.airlock.tar.zst --trusted-key release.pub\n  \
        airlock mirror import sample.airlock.tar.zst --trusted-key a.pub --trusted-key b.pub \\\n      \
        --threshold 2 --signature officer-b.minisig\n\n\
        Works while `mirror serve` runs on the same data folder (it goes through the server).\n\
        The site's trust anchor (mirror.trusted_keys and mirror.threshold, pinned by `airlock server`\n\
        or `mirror serve --config`) is always checked; --trusted-key and --config only add requirements.\n\
        Refuses bundles older than the channel's last import (--allow-downgrade overrides)\n\
        and expired ones (--allow-expired overrides); every refusal and override is recorded.")]
    Import(ImportArgs),
    /// Serve the mirror's content: the OCI Distribution API, the VS Code update service, the
    /// Open VSX gallery and registry API, the JetBrains products API, release files and AMI
    /// descriptors (see docs/artifact-conventions.md).
    #[command(after_help = "Example:\n  airlock mirror serve --listen 127.0.0.1:5000\n  \
        skopeo inspect --tls-verify=false docker://127.0.0.1:5000/devcontainers/base:tiny\n  \
        airlock mirror serve --listen 0.0.0.0:443 --tls-cert tls/server.crt --tls-key tls/server.key")]
    Serve(ServeArgs),
    /// List imported artifacts.
    #[command(after_help = "Example:\n  airlock mirror ls --kind image\n  airlock mirror ls --output json")]
    Ls(LsArgs),
    /// Re-hash every blob in the store and report any that is corrupt.
    #[command(after_help = "Example:\n  airlock mirror verify")]
    Verify(PlainArgs),
    /// Remove blobs that no artifact references (safe while serving).
    #[command(after_help = "Example:\n  airlock mirror gc --dry-run\n  airlock mirror gc")]
    Gc(GcArgs),
    /// Every import, refusal and override: who, when, which bundle, what happened.
    #[command(after_help = "Example:\n  airlock mirror history --output json")]
    History(PlainArgs),
    /// Copy images and every other artifact into an existing registry (Harbor, distribution, Artifactory).
    #[command(after_help = "Example:\n  airlock mirror push --to https://harbor.internal --creds robot:$SECRET --ca-cert site-ca.pem\n  \
        airlock mirror push --to http://127.0.0.1:5001 --only image\n\n\
        Blobs the registry already has are skipped; blobs sent to one repository are mounted into others.")]
    Push(PushArgs),
    /// Push tokens for `mirror serve --allow-push`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Certificates for serving HTTPS as the mirror and as the upstream hosts it mirrors.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Subcommand)]
pub enum TlsCommand {
    /// Create an internal CA (or reuse the one in DIR) and a server certificate for every
    /// mirrored upstream host plus the mirror's own names.
    #[command(after_help = "Example:\n  airlock mirror tls issue --out /etc/airlock/tls --name mirror.example.internal\n  \
        airlock mirror serve --listen 0.0.0.0:443 --tls-cert /etc/airlock/tls/server.crt --tls-key /etc/airlock/tls/server.key\n\n\
        Install ca.crt in the clients' trust store and point the mirrored host names\n\
        (update.code.visualstudio.com, open-vsx.org, data.services.jetbrains.com, mcr.microsoft.com, …)\n\
        at the mirror in the site DNS. Issuing again in the same DIR reuses its CA.")]
    Issue {
        /// Folder for ca.crt, ca.key, server.crt and server.key.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A DNS name of the mirror itself; repeatable (default: localhost).
        #[arg(long = "name", value_name = "MIRROR-NAME")]
        names: Vec<String>,
        /// An IP address clients use to reach the mirror; repeatable.
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<std::net::IpAddr>,
        /// Validity of the server certificate in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// `json` prints the paths written and the names certified.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a push token; it is printed once and stored only as a hash.
    #[command(after_help = "Example:\n  TOKEN=$(airlock mirror token create --name ci)\n  \
        skopeo copy --dest-creds ci:$TOKEN oci:layout:app docker://mirror:5000/app:1")]
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The bundle file, or the signed volume list (NAME.airlock-volumes.json) of a bundle
    /// cut into volumes, which are then read in order from beside it.
    bundle: PathBuf,
    /// A public key whose signatures count; repeat for several. These keys are an extra
    /// requirement next to the site's pinned trust anchor, never a replacement for it.
    #[arg(long = "trusted-key", value_name = "K.pub")]
    trusted_keys: Vec<PathBuf>,
    /// How many distinct --trusted-key keys must have signed (default 1).
    #[arg(long, requires = "trusted_keys")]
    threshold: Option<usize>,
    /// airlock.toml whose mirror.trusted_keys and mirror.threshold this import must also meet
    /// (or AIRLOCK_CONFIG).
    #[arg(long, value_name = "FILE", env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// A detached co-signature of the bundle manifest; repeatable.
    #[arg(long = "signature", value_name = "FILE.minisig")]
    signatures: Vec<PathBuf>,
    /// Import even if the channel already has a newer sequence (recorded in history).
    #[arg(long)]
    allow_downgrade: bool,
    /// Import even if the bundle has expired (recorded in history).
    #[arg(long)]
    allow_expired: bool,
    #[command(flatten)]
    data: DataDir,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The target registry's base URL.
    #[arg(long = "to", value_name = "REGISTRY-URL")]
    to: String,
    /// Only artifacts of this kind, or of this repository.
    #[arg(long, value_name = "KIND|NAME")]
    only: Option<String>,
    /// USER:PASSWORD for the target (Basic, or for its token service).
    #[arg(long, env = "AIRLOCK_PUSH_CREDS", hide_env_values = true)]
    creds: Option<String>,
    /// An extra CA certificate (PEM) to trust for the target.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// airlock.toml whose egress.allow must name the target (or AIRLOCK_EGRESS_ALLOW).
    #[arg(long, value_name = "FILE", env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    data: DataDir,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000", value_parser = super::listen::parse_listen)]
    listen: SocketAddr,
    /// Accept pushes from clients holding a push token. Off loopback this needs HTTPS
    /// (--tls-cert/--tls-key). Limits come from airlock.toml `mirror.push_*` (--config).
    #[arg(long)]
    allow_push: bool,
    /// airlock.toml (or AIRLOCK_CONFIG) whose mirror.trusted_keys and mirror.threshold are
    /// pinned as the site's trust anchor before serving, and whose `mirror.push_*` settings
    /// (namespaces, size cap, session expiry, free-space reserve) apply.
    #[arg(long, value_name = "FILE", env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM), e.g. server.crt from `mirror tls issue`.
    #[arg(long, value_name = "C", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "K", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    data: DataDir,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Only this kind (image, vscode-server, vscode-extension, jetbrains-ide, release-file, ami-descriptor, code-server).
    #[arg(long)]
    kind: Option<ArtifactKind>,
    #[command(flatten)]
    data: DataDir,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct PlainArgs {
    #[command(flatten)]
    data: DataDir,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct GcArgs {
    /// Only report what would be removed.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    data: DataDir,
    /// `json` prints the removed blobs (digest, size) and the number kept.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Import(args) => import(args),
        Command::Serve(args) => serve_command(args),
        Command::Ls(args) => {
            let result = admin::run(&args.data.mirror()?, Request::Ls { kind: args.kind }, &Silent)?;
            print_artifacts(&result, args.output)
        }
        Command::Verify(args) => {
            let result = admin::run(&args.data.mirror()?, Request::Verify, &Silent)?;
            if args.output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            }
            let corrupt = result["corrupt"].as_array().cloned().unwrap_or_default();
            for c in &corrupt {
                eprintln!("corrupt: {} {}", c["digest"].as_str().unwrap_or(""), c["problem"].as_str().unwrap_or(""));
            }
            if !corrupt.is_empty() {
                bail!("{} of {} blobs are corrupt; re-import the bundles that carried them", corrupt.len(), result["checked"]);
            }
            if args.output == OutputFormat::Text {
                println!("verified {} blobs ({} bytes): all intact", result["checked"], result["bytes"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc(args) => {
            let result = admin::run(&args.data.mirror()?, Request::Gc { dry_run: args.dry_run }, &Silent)?;
            let removed = result["removed"].as_array().cloned().unwrap_or_default();
            let bytes: u64 = removed.iter().filter_map(|r| r["size"].as_u64()).sum();
            if args.output == OutputFormat::Json {
                let report = json!({ "dry_run": args.dry_run, "removed": removed, "bytes": bytes, "kept": result["kept"] });
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if args.dry_run { "would remove" } else { "removed" };
            println!("{verb} {} unreferenced blobs ({bytes} bytes); kept {}", removed.len(), result["kept"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::History(args) => {
            let result = admin::run(&args.data.mirror()?, Request::History, &Silent)?;
            print_history(&result, args.output)
        }
        Command::Push(args) => push(args),
        Command::Tls(TlsCommand::Issue { out, names, ips, days, output }) => {
            let names = if names.is_empty() { vec!["localhost".to_string()] } else { names };
            let issued = airlock_mirror::tls::issue(&out, &names, &ips, days)?;
            if output == OutputFormat::Json {
                let report = json!({
                    "ca_cert": issued.ca_cert,
                    "reused_ca": issued.reused_ca,
                    "server_cert": issued.server_cert,
                    "server_key": issued.server_key,
                    "days": days,
                    "dns_names": issued.dns_names,
                    "ips": issued.ips,
                });
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            let ca = if issued.reused_ca { "reused the CA" } else { "created a new CA" };
            println!("{ca} {}", issued.ca_cert.display());
            println!("server certificate {} (key {}), valid {days} days, for:", issued.server_cert.display(), issued.server_key.display());
            for name in &issued.dns_names {
                println!("  {name}");
            }
            for ip in &issued.ips {
                println!("  {ip}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Create { name, data }) => {
            let result = admin::run(&data.mirror()?, Request::TokenCreate { name }, &Silent)?;
            println!("{}", result["token"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let credentials = match &args.creds {
        None => None,
        Some(c) => match c.split_once(':') {
            Some((user, password)) => Some((user.to_string(), password.to_string())),
            None => bail!("--creds must be USER:PASSWORD"),
        },
    };
    let extra_ca = match &args.ca_cert {
        None => None,
        Some(path) => Some(fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?),
    };
    // The target is an outbound destination like any other: it must be in egress.allow.
    let config = airlock_egress::config::Config::load(args.config.as_deref(), std::env::vars())?;
    let mirror_dir = args.data.mirror()?;
    fs::create_dir_all(&mirror_dir)?;
    let audit = std::sync::Arc::new(airlock_egress::JsonLinesAudit::in_data_dir(&mirror_dir)?);
    let guard = airlock_egress::EgressGuard::from_config(&config, audit)?.with_component("mirror");
    let target = airlock_egress::Url::parse(&args.to).with_context(|| format!("--to {} is not a URL", args.to))?;
    guard.check_url(&target)?;
    let request = Request::Push {
        url: args.to.clone(),
        credentials,
        extra_ca,
        only: args.only.clone(),
        egress_allow: config.egress.allow.clone(),
    };
    let report = admin::run(&mirror_dir, request, &Silent).with_context(|| format!("push to {} failed", args.to))?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "pushed {} artifacts to {}: {} blobs uploaded ({} bytes), {} already there, {} mounted, {} manifests",
            report["artifacts"], args.to, report["blobsUploaded"], report["bytesUploaded"], report["blobsPresent"],
            report["blobsMounted"], report["manifests"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let read = |path: &PathBuf| -> anyhow::Result<(String, String)> {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok((text, path.display().to_string()))
    };
    let bundle = fs::canonicalize(&args.bundle).with_context(|| format!("cannot find the bundle {}", args.bundle.display()))?;
    // Both only add requirements: the side holding the store adds the pinned site anchor.
    let config = airlock_config::Config::load(args.config.as_deref(), std::env::vars())?;
    let from_config = KeyRequirement::read(&config.mirror.trusted_keys, config.mirror.threshold, &anchor::config_source(args.config.as_deref()))?;
    let from_flags = KeyRequirement::read(&args.trusted_keys, args.threshold.unwrap_or(1), "--trusted-key and --threshold of this import")?;
    let request = Request::Import {
        bundle,
        requirements: from_config.into_iter().chain(from_flags).collect(),
        signatures: args.signatures.iter().map(read).collect::<Result<_, _>>()?,
        allow_downgrade: args.allow_downgrade,
        allow_expired: args.allow_expired,
        actor: actor(),
    };
    let started = std::time::Instant::now();
    let progress = progress_bar("importing");
    let result = admin::run(&args.data.mirror()?, request, progress.as_ref())
        .with_context(|| format!("import of {} refused; the mirror is unchanged", args.bundle.display()))?;
    let elapsed = started.elapsed();
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let record = &result["record"];
    match result["status"].as_str() {
        Some("already-imported") => println!(
            "bundle {} was already imported at {} by {}: nothing to do",
            record["bundleId"].as_str().unwrap_or(""),
            record["time"].as_str().unwrap_or(""),
            record["actor"].as_str().unwrap_or("")
        ),
        _ => {
            println!(
                "imported bundle {} (channel {}, sequence {}), signed by {}: {}",
                record["bundleId"].as_str().unwrap_or(""),
                record["channel"].as_str().unwrap_or(""),
                record["sequence"],
                join(&record["signers"]),
                record["message"].as_str().unwrap_or("")
            );
            let size = fs::metadata(&args.bundle).map(|m| m.len()).unwrap_or(0);
            let seconds = elapsed.as_secs_f64().max(0.001);
            println!(
                "read {} in {:.1} s ({}/s)",
                human_bytes(size),
                seconds,
                human_bytes((size as f64 / seconds) as u64)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Who is importing, for the record: the login name (the one sudo was called by, if any),
/// else the account name of the user id.
pub(crate) fn actor() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .or_else(|| account_name(uid))
        .unwrap_or_else(|| "unknown".into());
    format!("{user} (uid {uid})")
}

fn account_name(uid: u32) -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name out
    // at once and hold no pointer past this call.
    unsafe {
        let entry = libc::getpwuid(uid);
        if entry.is_null() || (*entry).pw_name.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr((*entry).pw_name).to_string_lossy().into_owned())
    }
}

fn join(values: &Value) -> String {
    values.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn print_artifacts(result: &Value, output: OutputFormat) -> anyhow::Result<ExitCode> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(["KIND", "REPOSITORY:TAG", "VERSION", "PLATFORM", "DIGEST", "BUNDLE"]);
    for a in result.as_array().cloned().unwrap_or_default() {
        let s = |k: &str| a[k].as_str().unwrap_or("-").to_string();
        table.row([s("kind"), format!("{}:{}", s("repository"), s("tag")), s("version"), s("platform"), s("digest"), s("bundleId")]);
    }
    print!("{}", table.render(""));
    Ok(ExitCode::SUCCESS)
}

fn print_history(result: &Value, output: OutputFormat) -> anyhow::Result<ExitCode> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(["TIME", "ACTOR", "RESULT", "BUNDLE", "CHANNEL", "SEQ", "SIGNERS", "DETAIL"]);
    for r in result.as_array().cloned().unwrap_or_default() {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        let overrides = join(&r["overrides"]);
        let detail = if overrides.is_empty() { s("message") } else { format!("override: {overrides}; {}", s("message")) };
        table.row([s("time"), s("actor"), s("result"), s("bundleId"), s("channel"), sequence(&r["sequence"]), join(&r["signers"]), detail]);
    }
    print!("{}", table.render(""));
    Ok(ExitCode::SUCCESS)
}

/// A record's sequence, or `-` for records that have none (a refusal before the manifest was read).
fn sequence(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// The push settings of airlock.toml, for `mirror serve` and `airlock server` alike.
pub(crate) fn push_limits(mirror: &airlock_config::Mirror) -> airlock_mirror::registry::PushLimits {
    airlock_mirror::registry::PushLimits {
        namespaces: mirror.push_namespaces.clone(),
        max_blob_bytes: mirror.push_max_blob_bytes,
        session_expiry: std::time::Duration::from_secs(mirror.push_session_expiry_seconds),
        free_space_reserve: mirror.push_free_space_reserve_bytes,
        max_sessions_per_token: mirror.push_max_sessions_per_token,
    }
}

fn serve_command(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = airlock_config::Config::load(args.config.as_deref(), std::env::vars())?;
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mirror_dir = args.data.mirror()?;
    let options = ServeOptions {
        data_dir: mirror_dir.clone(),
        listen: args.listen,
        allow_push: args.allow_push,
        push: push_limits(&config.mirror),
        tls,
    };
    // Refused before the certificate or the store is touched.
    serve::check_push_transport(&options)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if let Some((cert, key)) = &options.tls {
        // Checked here too, so a bad certificate is reported as such before the store opens.
        runtime.block_on(airlock_mirror::tls::server_config(cert, key))?;
    }
    if args.config.is_some() || !config.mirror.trusted_keys.is_empty() {
        pin_trust_anchor(&config, args.config.as_deref(), &mirror_dir)?;
    }
    runtime
        .block_on(serve::serve(options, |addr| {
            // The first line on stdout says where it listens (tests and scripts read it).
            println!("mirror listening on {scheme}://{addr}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }))
        .with_context(|| format!("mirror serve on {} failed", mirror_dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Pins the configuration's trust anchor into a mirror folder no server holds yet.
pub(crate) fn pin_trust_anchor(config: &airlock_config::Config, file: Option<&std::path::Path>, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let source = anchor::config_source(file);
    let configured = KeyRequirement::read(&config.mirror.trusted_keys, config.mirror.threshold, &source)?;
    let actor = format!("{} starting the mirror", actor());
    anchor::pin_in(data_dir, configured.as_ref(), &actor)
        .with_context(|| format!("cannot pin the trust anchor of {source} into {}", data_dir.display()))?;
    Ok(())
}
