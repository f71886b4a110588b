//! `airlock bundle …`: create, verify, print and inspect signed bundles.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use airlock_bundle::volumes::{parse_size, VOLUMES_SUFFIX};
use airlock_bundle::{read_head, verify_file, verify_volumes};
use airlock_bundle::{ArtifactKind, BundleManifest, PublicKey, SecretKey, SignatureFile, TrustPolicy};
use airlock_bundler::cache::ContentCache;
use airlock_bundler::fetch::FetchOptions;
use airlock_bundler::offline_manifest::{DevcontainerEntry, OfflineManifest};
use airlock_bundler::pack::{self, PackOptions};
use airlock_bundler::{defaults, delta, lock, prepare, volumes};
use clap::Subcommand;
use serde_json::{json, Value};

use super::keygen::existing_password;
use super::output::{OutputFormat, Table};
use super::progress::progress_bar;

#[derive(Subcommand)]
pub enum Command {
    /// Pack everything an offline manifest names into one signed, deterministic bundle.
    #[command(after_help = "Example:\n  airlock bundle create --manifest sample/sample.toml \\\n      \
        --key keys/release.key --out sample.airlock.tar.zst --expires 30d\n\n\
        Also writes NAME.airlock-bundle.json beside the bundle: keep it, a later delta bundle is built against it.\n\
        The same inputs and metadata (--created or SOURCE_DATE_EPOCH, --sequence) give byte-identical bundles.")]
    Create(CreateArgs),
    /// Check a bundle's signatures and every byte of its content, writing nothing.
    #[command(after_help = "Example:\n  airlock bundle verify sample.airlock.tar.zst --trusted-key release.pub\n  \
        # two-person rule: two distinct trusted keys must have signed\n  \
        airlock bundle verify sample.airlock.tar.zst --trusted-key a.pub --trusted-key b.pub \\\n      \
        --threshold 2 --signature officer-b.minisig")]
    Verify(VerifyArgs),
    /// Print the embedded airlock-bundle.json exactly as signed (for co-signing).
    #[command(after_help = "Example (a second officer co-signs on another machine):\n  \
        airlock bundle manifest sample.airlock.tar.zst > sample.airlock-bundle.json\n  \
        minisign -Sm sample.airlock-bundle.json -s officer-b.key -x officer-b.minisig")]
    Manifest(ManifestArgs),
    /// Show a bundle's metadata, signers and artifacts, reading only the head of the file.
    #[command(after_help = "Example:\n  airlock bundle inspect sample.airlock.tar.zst\n  \
        airlock bundle inspect sample.airlock.tar.zst --output json | jq '.artifacts[].name'")]
    Inspect(InspectArgs),
    /// Resolve every network reference of an offline manifest to an exact version and digest.
    #[command(after_help = "Example:\n  airlock bundle lock --manifest offline-manifests/platform.toml\n\n\
        Writes M.lock beside M.toml (or --out): stable, sorted TOML to commit and diff. Layers are not\n\
        downloaded where the upstream publishes digests; files whose upstream publishes none are\n\
        downloaded into the content cache and hashed, so `bundle create` does not fetch them again.")]
    Lock(LockArgs),
    /// List the host:port pairs the connected side must reach for a manifest (for the firewall).
    #[command(after_help = "Example:\n  airlock bundle endpoints --manifest offline-manifests/platform.toml\n  \
        airlock bundle endpoints --manifest M.toml --lock M.lock --output json")]
    Endpoints(EndpointsArgs),
    /// Write sample content to try airlock with, built locally with no network: a tiny
    /// devcontainer image (static busybox) and a release file, and the manifest naming them.
    #[command(after_help = "Example:\n  airlock bundle sample --out sample\n  \
        airlock bundle create --manifest sample/sample.toml --key release.key --out sample.airlock.tar.zst")]
    Sample(SampleArgs),
}

#[derive(clap::Args)]
pub struct SampleArgs {
    /// Folder to write into (must be empty or absent).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The static busybox the image is made of.
    #[arg(long, value_name = "FILE", default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// The release file to carry (default: this airlock binary, something real to carry across).
    #[arg(long, value_name = "FILE")]
    release_file: Option<PathBuf>,
}

/// How the bundler reaches upstreams and where it keeps what it fetched.
#[derive(clap::Args)]
pub struct FetchArgs {
    /// Content cache (default: $AIRLOCK_CACHE_DIR, else $XDG_CACHE_HOME/airlock, else ~/.cache/airlock).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Downloads at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Further attempts after a failed download (connection errors, 5xx, broken transfers).
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Wait before the first retry, doubled for each next one.
    #[arg(long, value_name = "DURATION", default_value = "500ms")]
    retry_delay: String,
    /// Extra PEM CA certificates to trust (e.g. a TLS-inspecting proxy's). Proxies come from
    /// HTTPS_PROXY / HTTP_PROXY / NO_PROXY.
    #[arg(long, value_name = "FILE.pem", env = "AIRLOCK_CA_BUNDLE")]
    ca_bundle: Option<PathBuf>,
}

impl FetchArgs {
    fn options(&self) -> anyhow::Result<FetchOptions> {
        let retry_delay = humantime::parse_duration(&self.retry_delay)
            .with_context(|| format!("--retry-delay `{}` is not a duration such as 500ms or 2s", self.retry_delay))?;
        Ok(FetchOptions {
            cache_dir: self.cache_dir.clone().unwrap_or_else(ContentCache::default_root),
            jobs: usize::from(self.jobs),
            retries: self.retries,
            retry_delay,
            ca_bundle: self.ca_bundle.clone(),
            ..FetchOptions::default()
        })
    }
}

#[derive(clap::Args)]
pub struct LockArgs {
    /// Offline manifest (TOML).
    #[arg(long, value_name = "M.toml")]
    manifest: PathBuf,
    /// Lock file to write (default: M.lock beside the manifest).
    #[arg(long, value_name = "M.lock")]
    out: Option<PathBuf>,
    /// Also lock a devcontainer.json's `image` and features (with their `dependsOn`),
    /// as a `[[devcontainer]]` table in the manifest would. Repeatable.
    #[arg(long, value_name = "PATH")]
    devcontainer: Vec<PathBuf>,
    /// For --devcontainer files: connect to URL instead of registry HOST (a site proxy or
    /// pull-through cache; `http://` is plain HTTP). Repeatable.
    #[arg(long, value_name = "HOST=URL")]
    devcontainer_base_url: Vec<String>,
    #[command(flatten)]
    fetch: FetchArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct EndpointsArgs {
    /// Offline manifest (TOML).
    #[arg(long, value_name = "M.toml")]
    manifest: PathBuf,
    /// Also list the hosts of every URL this lock pins.
    #[arg(long, value_name = "M.lock")]
    lock: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Offline manifest (TOML) naming what to carry.
    #[arg(long, value_name = "M.toml")]
    manifest: PathBuf,
    /// Secret key to sign with; repeat to embed several signatures.
    #[arg(long = "key", value_name = "K.key", required = true)]
    keys: Vec<PathBuf>,
    /// Bundle file to write (default: NAME.airlock.tar.zst in the current folder).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Channel (overrides [bundle] channel).
    #[arg(long)]
    channel: Option<String>,
    /// Sequence number; the mirror refuses one lower than it has imported on the channel.
    /// Default: [bundle] sequence, else the creation time in seconds since 1970.
    #[arg(long)]
    sequence: Option<u64>,
    /// How long the bundle stays importable, e.g. 30d or 12h (default: [bundle] expires, else 90d).
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
    /// Creation time (RFC 3339). Default: SOURCE_DATE_EPOCH when set, else now.
    #[arg(long, value_name = "TIME")]
    created: Option<String>,
    /// zstd level (1-19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    level: i32,
    /// Compression threads (default: every core).
    #[arg(long)]
    threads: Option<u32>,
    /// Lock to fetch from (default: M.lock beside the manifest when it exists, else the
    /// manifest is resolved now).
    #[arg(long, value_name = "M.lock")]
    lock: Option<PathBuf>,
    /// Build a delta against the manifest kept beside a previous bundle
    /// (NAME.airlock-bundle.json): blobs it carried are left out.
    #[arg(long, value_name = "PREVIOUS.airlock-bundle.json")]
    base: Option<PathBuf>,
    /// Cut the bundle into volumes of this size (e.g. 4.7G for a DVD) with a signed volume list.
    #[arg(long, value_name = "SIZE")]
    volume_size: Option<String>,
    #[command(flatten)]
    fetch: FetchArgs,
    /// `json` prints what was created as one JSON object (progress notes go to standard error).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct TrustArgs {
    /// A public key whose signatures count; repeat for several.
    #[arg(long = "trusted-key", value_name = "K.pub")]
    trusted_keys: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// A detached signature of airlock-bundle.json (e.g. a co-signature); repeatable.
    #[arg(long = "signature", value_name = "FILE.minisig")]
    signatures: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A bundle, or the NAME.airlock-volumes.json of a bundle cut into volumes.
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(clap::Args)]
pub struct ManifestArgs {
    bundle: PathBuf,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    bundle: PathBuf,
    /// Also check the signatures against these keys (the content is not read).
    #[arg(long = "trusted-key", value_name = "K.pub")]
    trusted_keys: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create(args) => create(args),
        Command::Verify(args) => verify(args),
        Command::Manifest(args) => print_manifest(args),
        Command::Inspect(args) => inspect(args),
        Command::Lock(args) => lock(args),
        Command::Endpoints(args) => endpoints(args),
        Command::Sample(args) => write_sample(args),
    }
}

fn write_sample(args: SampleArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} is not empty; give an empty or new folder with --out", args.out.display());
    }
    let release = match args.release_file {
        Some(file) => file,
        None => std::env::current_exe().context("cannot find the airlock binary")?,
    };
    let digest = airlock_bundler::sample::build(&args.out, &args.busybox, &release)?;
    println!("wrote {} (image devcontainers/base:tiny = {digest})", args.out.join("sample.toml").display());
    Ok(ExitCode::SUCCESS)
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let offline = OfflineManifest::load(&args.manifest)?;
    let created = creation_time(args.created.as_deref())?;
    let expires_in = defaults::expiry(args.expires.as_deref(), offline.bundle.expires.as_deref())?;
    let keys = args
        .keys
        .iter()
        .map(|path| SecretKey::from_file(path, existing_password()))
        .collect::<Result<Vec<_>, _>>()?;
    let sequence = defaults::sequence(args.sequence, offline.bundle.sequence, created);
    let out = args.out.unwrap_or_else(|| defaults::output_path(&offline.bundle.name));

    let volume_size = args
        .volume_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--volume-size: {e}"))?;
    let channel = args.channel.unwrap_or(offline.bundle.channel.clone());
    let base = args.base.as_deref().map(delta::load_base).transpose()?;

    let prepared = prepare::prepare(&args.manifest, &offline, args.lock.as_deref(), args.fetch.options()?)?;
    let say = |line: String| match args.output {
        OutputFormat::Text => println!("{line}"),
        OutputFormat::Json => eprintln!("{line}"),
    };
    if let Some(lock) = &prepared.lock_path {
        say(format!("fetched from the lock {}", lock.display()));
    }
    if let Some(stats) = &prepared.stats {
        say(format!(
            "content cache: {} blobs already there, {} fetched ({} bytes in {} requests)",
            stats.cached_blobs, stats.fetched_blobs, stats.bytes, stats.requests
        ));
    }
    let mut plan = prepared.plan;
    if let Some(base) = &base {
        delta::apply(&mut plan, base, &channel, sequence)?;
    }
    let progress = progress_bar("packing");
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let options = PackOptions {
        keys: &keys,
        channel,
        sequence,
        name: offline.bundle.name.clone(),
        created,
        expires_in,
        compression_level: args.level,
        threads,
        progress: progress.as_ref(),
    };
    let delta = plan.delta.as_ref().map(|d| {
        json!({
            "base_bundle_id": d.base.bundle_id,
            "base_sequence": d.base.sequence,
            "blobs_left_out": d.base_blobs.len(),
            "bytes_left_out": d.saved_bytes,
        })
    });
    let mut report;
    if let Some(volume_size) = volume_size {
        let packed = volumes::write_volumes(&plan, &options, &out, volume_size)?;
        let m = &packed.manifest;
        report = created_report(m, packed.list.total_size, &packed.manifest_copy_path);
        report["volume_list"] = json!(packed.list_path);
        report["volumes"] = json!(packed
            .list
            .volumes
            .iter()
            .map(|v| json!({ "name": v.name, "size": v.size, "sha256": v.sha256 }))
            .collect::<Vec<_>>());
        if args.output == OutputFormat::Text {
            println!(
                "created {} volumes of at most {volume_size} bytes ({} bytes in all): bundle {} channel {} sequence {}, {} artifacts, {} blobs, expires {}",
                packed.list.volumes.len(),
                packed.list.total_size,
                m.bundle_id,
                m.channel,
                m.sequence,
                m.artifacts.len(),
                m.blobs.len(),
                m.expires
            );
            for v in &packed.list.volumes {
                println!("  {}  {} bytes  {}", v.name, v.size, v.sha256);
            }
            println!("signed volume list {} (verify with `airlock bundle verify {}`)", packed.list_path.display(), packed.list_path.display());
        }
    } else {
        let packed = pack::write_bundle(&plan, &options, &out)?;
        let m = &packed.manifest;
        report = created_report(m, packed.compressed_size, &packed.manifest_copy_path);
        report["bundle"] = json!(packed.bundle_path);
        if args.output == OutputFormat::Text {
            println!(
                "created {} ({} bytes): bundle {} channel {} sequence {}, {} artifacts, {} blobs, expires {}",
                packed.bundle_path.display(),
                packed.compressed_size,
                m.bundle_id,
                m.channel,
                m.sequence,
                m.artifacts.len(),
                m.blobs.len(),
                m.expires
            );
        }
    }
    match args.output {
        OutputFormat::Json => {
            report["delta"] = json!(delta);
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            if let Some(d) = &plan.delta {
                println!(
                    "delta of bundle {} (sequence {}): left out {} blobs ({} bytes) the base carried",
                    d.base.bundle_id,
                    d.base.sequence,
                    d.base_blobs.len(),
                    d.saved_bytes
                );
            }
            println!("kept the manifest as {} (the base for a later delta)", report["manifest_copy"].as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The fields `bundle create --output json` prints for a bundle and for volumes alike.
fn created_report(m: &BundleManifest, size: u64, manifest_copy: &Path) -> Value {
    json!({
        "bundle_id": m.bundle_id,
        "channel": m.channel,
        "sequence": m.sequence,
        "artifacts": m.artifacts.len(),
        "blobs": m.blobs.len(),
        "expires": m.expires,
        "size": size,
        "manifest_copy": manifest_copy,
    })
}

fn lock(args: LockArgs) -> anyhow::Result<ExitCode> {
    let mut offline = OfflineManifest::load(&args.manifest)?;
    let mut base_urls = BTreeMap::new();
    for pair in &args.devcontainer_base_url {
        let (host, url) = pair
            .split_once('=')
            .with_context(|| format!("--devcontainer-base-url `{pair}` must be HOST=URL, e.g. ghcr.io=https://cache.example"))?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("--devcontainer-base-url `{pair}`: `{url}` must be an http:// or https:// URL");
        }
        base_urls.insert(host.to_string(), url.to_string());
    }
    for path in &args.devcontainer {
        // Absolute, so the lock finds the file again whatever folder `bundle create` runs in.
        let path = std::fs::canonicalize(path).with_context(|| format!("--devcontainer {}: cannot read it", path.display()))?;
        offline.devcontainers.push(DevcontainerEntry { path: path.display().to_string(), base_urls: base_urls.clone() });
    }
    let out = args.out.unwrap_or_else(|| lock::default_lock_path(&args.manifest));
    let lock = prepare::resolve_lock(&args.manifest, &offline, args.fetch.options()?)?;
    lock.save(&out)?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "lock": out,
                "manifest": args.manifest,
                "images": lock.images.len(),
                "files": lock.files.len(),
                "devcontainers": lock.devcontainers.len(),
            }))?
        ),
        OutputFormat::Text => println!(
            "locked {} images and {} files from {} into {}",
            lock.images.len(),
            lock.files.len(),
            args.manifest.display(),
            out.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn endpoints(args: EndpointsArgs) -> anyhow::Result<ExitCode> {
    let offline = OfflineManifest::load(&args.manifest)?;
    let lock = args.lock.as_deref().map(lock::Lock::load).transpose()?;
    let base_dir = args.manifest.parent().unwrap_or(Path::new("."));
    let list = airlock_bundler::endpoints::endpoints(&offline, lock.as_ref(), base_dir)?;
    match args.output {
        OutputFormat::Json => {
            let value: Vec<serde_json::Value> =
                list.iter().map(|e| json!({ "address": e.address, "reasons": e.reasons })).collect();
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Text => {
            let mut table = Table::new(["ADDRESS", "WHY"]);
            for e in &list {
                table.row([e.address.clone(), e.reasons.join("; ")]);
            }
            print!("{}", table.render(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn creation_time(flag: Option<&str>) -> anyhow::Result<SystemTime> {
    if let Some(value) = flag {
        return humantime::parse_rfc3339_weak(value)
            .with_context(|| format!("--created `{value}` is not an RFC 3339 time such as 2026-01-31T12:00:00Z"));
    }
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: u64 = epoch
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH `{epoch}` is not a number of seconds"))?;
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    Ok(UNIX_EPOCH + Duration::from_secs(now))
}

fn load_policy(trust: &TrustArgs) -> anyhow::Result<(TrustPolicy, Vec<(SignatureFile, String)>)> {
    let keys = trust
        .trusted_keys
        .iter()
        .map(|p| PublicKey::from_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = TrustPolicy::new(keys, trust.threshold)?;
    let detached = trust
        .signatures
        .iter()
        .map(|p| SignatureFile::from_file(p).map(|s| (s, p.display().to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((policy, detached))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (policy, detached) = load_policy(&args.trust)?;
    let progress = progress_bar("verifying");
    let is_volume_list = args.bundle.to_string_lossy().ends_with(VOLUMES_SUFFIX);
    let report = if is_volume_list {
        let (report, list) = verify_volumes(&args.bundle, &policy, &detached, progress.as_ref())
            .with_context(|| format!("{} failed verification", args.bundle.display()))?;
        println!("checked {} volumes against the signed volume list", list.volumes.len());
        report
    } else {
        verify_file(&args.bundle, &policy, &detached, progress.as_ref())
            .with_context(|| format!("{} failed verification", args.bundle.display()))?
    };
    let m = &report.manifest;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "verified": true,
                "bundleId": m.bundle_id,
                "name": m.name,
                "channel": m.channel,
                "sequence": m.sequence,
                "expires": m.expires,
                "expired": report.expired,
                "signers": report.signers.iter().map(|s| json!({
                    "keyId": s.key_id.to_string(), "trustedComment": s.trusted_comment, "origin": s.origin,
                })).collect::<Vec<_>>(),
                "entries": report.summary.entries,
                "blobBytes": report.summary.blob_bytes,
            }))?
        ),
        OutputFormat::Text => {
            let signers: Vec<String> = report.signers.iter().map(|s| s.key_id.to_string()).collect();
            println!(
                "verified {}: bundle {} (channel {}, sequence {}), signed by {} ({} of {} required), \
                 {} entries, {} blob bytes",
                args.bundle.display(),
                m.bundle_id,
                m.channel,
                m.sequence,
                signers.join(", "),
                report.signers.len(),
                policy.threshold,
                report.summary.entries,
                report.summary.blob_bytes
            );
        }
    }
    if report.expired {
        eprintln!("warning: the bundle expired at {}; the mirror will refuse to import it", m.expires);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_manifest(args: ManifestArgs) -> anyhow::Result<ExitCode> {
    let reader = read_head(&args.bundle).with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(reader.manifest_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let reader = read_head(&args.bundle).with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let keys = args
        .trusted_keys
        .iter()
        .map(|p| PublicKey::from_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let m: &BundleManifest = reader.manifest();
    let signatures: Vec<serde_json::Value> = reader
        .embedded_signatures()
        .iter()
        .map(|s| {
            let checked = keys
                .iter()
                .find(|k| k.id == s.key_id)
                .map(|k| k.verify(reader.manifest_bytes(), s).is_ok());
            json!({ "keyId": s.key_id.to_string(), "trustedComment": s.trusted_comment, "verified": checked })
        })
        .collect();
    match args.output {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(m)?;
            let object = value.as_object_mut().expect("the manifest is an object");
            object.remove("blobs");
            object.remove("baseBlobs");
            object.insert("blobCount".into(), json!(m.blobs.len()));
            object.insert("blobBytes".into(), json!(m.total_blob_bytes()));
            object.insert("signatures".into(), json!(signatures));
            let packages: serde_json::Map<String, serde_json::Value> = packages_by_ecosystem(m)
                .into_iter()
                .map(|(ecosystem, list)| {
                    let list: Vec<_> = list
                        .into_iter()
                        .map(|((name, version), files)| json!({ "name": name, "version": version, "files": files }))
                        .collect();
                    (ecosystem.to_string(), json!(list))
                })
                .collect();
            object.insert("packages".into(), serde_json::Value::Object(packages));
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Text => {
            println!("bundle    {}", m.bundle_id);
            println!("name      {}", m.name);
            println!("channel   {}  sequence {}", m.channel, m.sequence);
            println!("created   {}  expires {}", m.created, m.expires);
            if let Some(base) = &m.base {
                println!("delta of  {} (sequence {})", base.bundle_id, base.sequence);
            }
            println!("tool      {} {}", m.tool.name, m.tool.version);
            println!("content   {} blobs, {} bytes", m.blobs.len(), m.total_blob_bytes());
            println!("signatures:");
            for s in &signatures {
                let state = match s["verified"].as_bool() {
                    Some(true) => "valid",
                    Some(false) => "INVALID",
                    None => "not checked",
                };
                println!("  {}  {}  {}", s["keyId"].as_str().unwrap_or(""), state, s["trustedComment"].as_str().unwrap_or(""));
            }
            println!("artifacts:");
            let mut table = Table::new(["KIND", "NAME", "VERSION", "PLATFORM", "DIGEST", "SIZE"]);
            for a in &m.artifacts {
                table.row([
                    a.kind.to_string(),
                    a.name.clone(),
                    a.version.clone(),
                    a.platform.clone().unwrap_or_else(|| "-".into()),
                    a.digest.to_string(),
                    a.size.to_string(),
                ]);
            }
            print!("{}", table.render("  "));
            let packages = packages_by_ecosystem(m);
            if !packages.is_empty() {
                println!("packages by ecosystem:");
                for (ecosystem, list) in packages {
                    let files: usize = list.values().map(Vec::len).sum();
                    println!("  {ecosystem}: {} packages, {files} files", list.len());
                    for ((name, version), platforms) in list {
                        println!("    {name} {version}  ({})", platforms.join(", "));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Language packages grouped by ecosystem, then by name and version, with the platform of
/// each file (wheel tags, `sdist`; `tarball` for npm). npm names are shown as npm writes
/// them (`@scope/name`): only scoped names hold a `/` in their repository-safe form.
fn packages_by_ecosystem(m: &BundleManifest) -> BTreeMap<&'static str, BTreeMap<(String, String), Vec<String>>> {
    let mut out: BTreeMap<&'static str, BTreeMap<(String, String), Vec<String>>> = BTreeMap::new();
    for a in &m.artifacts {
        let (ecosystem, name) = match a.kind {
            ArtifactKind::PythonPackage => ("python", a.name.clone()),
            ArtifactKind::NpmPackage if a.name.contains('/') => ("npm", format!("@{}", a.name)),
            ArtifactKind::NpmPackage => ("npm", a.name.clone()),
            ArtifactKind::CargoCrate => ("cargo", a.name.clone()),
            _ => continue,
        };
        let platform = a.platform.clone().unwrap_or_else(|| "tarball".into());
        out.entry(ecosystem).or_default().entry((name, a.version.clone())).or_default().push(platform);
    }
    out
}
