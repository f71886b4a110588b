//! `airlock admin`: set up a control plane (`init`, on the data directory) and drive its
//! API (everything else, with AIRLOCK_URL and AIRLOCK_TOKEN).

mod names;
mod render;
mod resources;
mod site_backup;

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use airlock_control_plane::audit::{self, Filter, VerifyReport};
use airlock_control_plane::bootstrap;
use airlock_control_plane::client::{Client, Method};
use airlock_control_plane::store::Store;
use airlock_control_plane::time::Clock;
use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::output::OutputFormat;
use super::site::{component_folder, SiteArgs};
use airlock_config::Component;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    export AIRLOCK_TOKEN=$(airlock admin init --data-dir /var/lib/airlock --org acme --owner admin@acme.internal)\n  \
    export AIRLOCK_URL=https://cp.acme.internal:8443 AIRLOCK_CA_CERT=/etc/airlock/ca.pem\n  \
    airlock admin projects list\n  \
    airlock admin environments create --project-id backend --wait\n  \
    airlock admin environments list --output json\n\n\
    Wherever an id is asked for, the resource's name works too (for a user, the email); \
    a name several resources share is refused with their ids.")]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
pub struct Connection {
    /// Control plane URL.
    #[arg(long, env = "AIRLOCK_URL", global = true, value_name = "URL")]
    url: Option<String>,
    /// Bearer token (session or personal access token).
    #[arg(
        long,
        env = "AIRLOCK_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// PEM file with the CA certificate that signed the server's TLS certificate.
    #[arg(long, env = "AIRLOCK_CA_CERT", global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// `text` prints tables; `json` prints the API's JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

impl Connection {
    fn client(&self) -> anyhow::Result<Client> {
        let url = self
            .url
            .as_deref()
            .context("no control plane URL: set AIRLOCK_URL or pass --url")?;
        let token = match &self.token {
            Some(t) => t.clone(),
            // The sign-in `airlock login` stored, refreshed when it is about to end.
            None => super::login::fresh_token(&super::login::default_path()?, url, self.ca_cert.as_deref())?
                .context("no token: run `airlock login`, set AIRLOCK_TOKEN (from `airlock admin init` or `airlock admin login`) or pass --token")?,
        };
        Ok(Client::new(url, Some(token), self.ca_cert.as_deref())?)
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a signed backup of the running site's control plane (a consistent snapshot of
    /// its store) and configuration, encrypted to the site's backup key (age).
    #[command(after_help = "Example:\n  airlock admin backup --out site-2026-12-03.backup --recipient age1... \\\n      \
        --signing-key /etc/airlock/site.key --config /etc/airlock/airlock.toml\n\n\
        The KEK is never in the backup: keep the KEK files and the backup identity apart.")]
    Backup(site_backup::BackupArgs),
    /// Rebuild a site's control plane in a fresh data folder from a backup (checks the
    /// signature, decrypts, verifies the audit chain; writes nothing if any check fails).
    #[command(after_help = "Example:\n  airlock admin restore --in site-2026-12-03.backup --identity /secure/backup-identity.txt \\\n      \
        --trusted-key /etc/airlock/site.pub --data-dir /var/lib/airlock")]
    Restore(site_backup::RestoreArgs),
    /// Create the first org and its owner in a new data directory; prints only the owner's
    /// token (valid 30 days) on standard output. Run it before the first `serve`.
    #[command(
        after_help = "Example:\n  TOKEN=$(airlock admin init --data-dir /var/lib/airlock --org acme --owner admin@acme.internal)\n\n\
        There is no default password: the owner logs in with this token and can set a password\n\
        with `airlock admin users set-password`."
    )]
    Init {
        #[command(flatten)]
        site: SiteArgs,
        /// Name of the first org (it administers the site).
        #[arg(long, value_name = "NAME")]
        org: String,
        /// Email of the first owner.
        #[arg(long, value_name = "EMAIL")]
        owner: String,
    },
    /// Issue a new token to a site owner who lost theirs (local, root only, audited); prints
    /// only the token (valid 24 h) on standard output. The control plane must be stopped.
    #[command(
        after_help = "Example:\n  systemctl stop airlock-control-plane\n  \
        TOKEN=$(sudo airlock admin recover --data-dir /var/lib/airlock --owner admin@acme.internal)\n\n\
        It writes directly into the data directory, so it works only where that directory is\n\
        readable; the audit log records who ran it."
    )]
    Recover {
        #[command(flatten)]
        site: SiteArgs,
        /// The owner to recover (needed when the site org has several).
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
    },
    /// Log in with email and password; prints a session token (12 h).
    #[command(
        after_help = "Example:\n  export AIRLOCK_TOKEN=$(airlock admin login --email dev@acme.internal)\n  \
        echo \"$PASSWORD\" | airlock admin login --email dev@acme.internal --password-stdin"
    )]
    Login {
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// Read the password from standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Revoke the token in use.
    #[command(after_help = "Example:\n  airlock admin logout")]
    Logout,
    /// Show who the token belongs to.
    #[command(after_help = "Example:\n  airlock admin whoami")]
    Whoami,
    /// Users of your org.
    #[command(subcommand)]
    Users(resources::Users),
    /// Your personal access tokens.
    #[command(subcommand)]
    Tokens(resources::Tokens),
    /// Your SSH public keys (for SSH into your environments).
    #[command(subcommand, name = "ssh-keys")]
    SshKeys(resources::SshKeys),
    /// Your own credentials for the site's git servers (HTTPS token or SSH key).
    #[command(subcommand, name = "git-credentials")]
    GitCredentials(resources::GitCredentials),
    /// Orgs and their policies.
    #[command(subcommand)]
    Orgs(resources::Orgs),
    /// Environment classes (CPU, memory, disk, pids).
    #[command(subcommand)]
    Classes(resources::Classes),
    /// Projects: repository, devcontainer image, class, tasks.
    #[command(subcommand)]
    Projects(resources::Projects),
    /// Runners and their one-time exchange tokens.
    #[command(subcommand)]
    Runners(resources::Runners),
    /// Development environments.
    #[command(subcommand)]
    Environments(resources::Environments),
    /// Secrets (values are write-only) and key-encryption key rotation.
    #[command(subcommand)]
    Secrets(resources::Secrets),
    /// The audit log: list, verify the hash chain, export JSON lines.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(clap::Args, Clone)]
pub struct AuditFilters {
    /// User or runner id, or email/name.
    #[arg(long)]
    actor: Option<String>,
    /// Action, or a prefix ending in `*` (e.g. `secret.*`).
    #[arg(long)]
    action: Option<String>,
    /// Subject, or a prefix ending in `*` (e.g. `environment/*`).
    #[arg(long)]
    subject: Option<String>,
    /// RFC 3339 time; records at or after it.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time; records before it.
    #[arg(long)]
    until: Option<String>,
}

impl AuditFilters {
    fn query(&self) -> Vec<(&'static str, String)> {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("subject", &self.subject),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// List your org's audit records, oldest first.
    #[command(
        after_help = "Example:\n  airlock admin audit list --action 'secret.*' --since 2024-05-01T00:00:00Z"
    )]
    List {
        #[command(flatten)]
        filters: AuditFilters,
        /// At most this many records (the newest are not cut: paging starts at the oldest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Verify the hash chain; names every modified, deleted or reordered record and prints
    /// the head (store it elsewhere; pass it back with --expect-head to detect truncation).
    /// Exit status 1 when the chain is broken.
    #[command(
        after_help = "Examples:\n  airlock admin audit verify                       # through the API\n  \
        airlock admin audit verify --data-dir /var/lib/airlock/cp   # offline, server stopped\n  \
        airlock admin audit verify --expect-head 3f2a...        # a head recorded earlier"
    )]
    Verify {
        /// Read the site folder's control-plane/ directly (the server must be stopped).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// A head hash printed by an earlier verify; it must still be in the log.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
    },
    /// Write audit records as JSON lines (one record per line) for a SIEM.
    #[command(
        after_help = "Examples:\n  airlock admin audit export --out audit.jsonl\n  \
        airlock admin audit export --data-dir /var/lib/airlock --out all-orgs.jsonl   # offline, every org"
    )]
    Export {
        #[command(flatten)]
        filters: AuditFilters,
        /// Read the site folder's control-plane/ directly (every org; the server must be stopped).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let conn = &args.conn;
    match args.command {
        Command::Backup(backup) => {
            site_backup::backup(&conn.client()?, backup)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(restore) => {
            site_backup::restore(restore)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            site,
            org,
            owner,
        } => {
            let data_dir = site.folder(Component::ControlPlane)?;
            let done = bootstrap::init(&data_dir, &org, &owner, Clock::system().now())?;
            eprintln!(
                "initialized {}: org `{}` ({}), owner {} ({}). The token below is shown once and expires in 30 days.",
                data_dir.display(),
                done.org.name,
                done.org.id,
                done.owner.email,
                done.owner.id
            );
            println!("{}", done.token);
            Ok(ExitCode::SUCCESS)
        }
        Command::Recover { site, owner } => {
            let data_dir = site.folder(Component::ControlPlane)?;
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                bail!("`airlock admin recover` runs as root only (it writes into the control plane's data directory); run it with sudo on the control plane's host");
            }
            let done = bootstrap::recover(&data_dir, owner.as_deref(), &super::mirror::actor(), Clock::system().now())
                .with_context(|| format!("cannot recover an owner token in {}", data_dir.display()))?;
            eprintln!(
                "issued a recovery token for {} ({}), valid 24 hours and recorded on the audit log; create a lasting token with it, then let it expire.",
                done.owner.email, done.owner.id
            );
            println!("{}", done.token);
            Ok(ExitCode::SUCCESS)
        }
        Command::Login {
            email,
            password_stdin,
        } => {
            let url = conn
                .url
                .as_deref()
                .context("no control plane URL: set AIRLOCK_URL or pass --url")?;
            let client = Client::new(url, None, conn.ca_cert.as_deref())?;
            let password = read_secret(password_stdin, "Password: ")?;
            let session = client.call(
                Method::POST,
                "/api/v1/auth/login",
                &[],
                Some(&json!({"email": email, "password": password})),
            )?;
            eprintln!(
                "logged in as {}; the session expires at {}",
                session["user"]["email"].as_str().unwrap_or_default(),
                session["expires_at"].as_str().unwrap_or_default()
            );
            println!("{}", session["token"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Command::Logout => {
            conn.client()?
                .call(Method::POST, "/api/v1/auth/logout", &[], None)?;
            eprintln!("token revoked");
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami => {
            let me = conn
                .client()?
                .call(Method::GET, "/api/v1/auth/whoami", &[], None)?;
            match conn.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&me)?),
                OutputFormat::Text => println!(
                    "{} ({}) — {} of org {} ({}){}; token {} expires {}",
                    me["user"]["email"].as_str().unwrap_or_default(),
                    me["user"]["id"].as_str().unwrap_or_default(),
                    me["user"]["role"].as_str().unwrap_or_default(),
                    me["org"]["name"].as_str().unwrap_or_default(),
                    me["org"]["id"].as_str().unwrap_or_default(),
                    if me["site_admin"] == true {
                        ", site admin"
                    } else {
                        ""
                    },
                    me["token"]["id"].as_str().unwrap_or_default(),
                    me["token"]["expires_at"].as_str().unwrap_or("never"),
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Users(c) => resources::users(conn.client()?, c, conn.output),
        Command::Tokens(c) => resources::tokens(conn.client()?, c, conn.output),
        Command::SshKeys(c) => resources::ssh_keys(conn.client()?, c, conn.output),
        Command::GitCredentials(c) => resources::git_credentials(conn.client()?, c, conn.output),
        Command::Orgs(c) => resources::orgs(conn.client()?, c, conn.output),
        Command::Classes(c) => resources::classes(conn.client()?, c, conn.output),
        Command::Projects(c) => resources::projects(conn.client()?, c, conn.output),
        Command::Runners(c) => resources::runners(conn.client()?, c, conn.output),
        Command::Environments(c) => resources::environments(conn.client()?, c, conn.output),
        Command::Secrets(c) => resources::secrets(conn.client()?, c, conn.output),
        Command::Audit(c) => audit_command(conn, c),
    }
}

/// A password or secret value: from standard input when asked (or when it is not a
/// terminal), otherwise prompted without echo.
pub fn read_secret(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    rpassword::prompt_password(prompt)
        .context("cannot read from the terminal (use --password-stdin in scripts)")
}

/// All of standard input, for secret values (never taken from the command line, which
/// other users can see in the process list).
pub fn read_stdin_value() -> anyhow::Result<String> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the value from standard input")?;
    Ok(value.strip_suffix('\n').unwrap_or(&value).to_string())
}

fn print_report(report: &VerifyReport, output: OutputFormat) -> anyhow::Result<ExitCode> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        for p in &report.problems {
            println!("BROKEN at {}: {}", p.seq, p.message);
        }
        let scope = if report.scope == "site" {
            String::new()
        } else {
            format!(" of {}", report.scope)
        };
        println!(
            "{}: {} record(s){scope}; head {} {}",
            if report.ok { "ok" } else { "FAILED" },
            report.records,
            report.head.seq,
            report.head.hash
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn audit_command(conn: &Connection, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::List { filters, limit } => {
            let client = conn.client()?;
            let mut query = filters.query();
            query.push(("limit", limit.clamp(1, 500).to_string()));
            let page = client.call(Method::GET, "/api/v1/audit", &query, None)?;
            render::list(
                page["items"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                render::AUDIT,
                conn.output,
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            data_dir: Some(dir),
            expect_head,
        } => {
            let store = Store::open(&component_folder(&dir, Component::ControlPlane)?)?;
            let report = audit::verify(&store, expect_head.as_deref())?;
            print_report(&report, conn.output)
        }
        AuditCommand::Verify {
            data_dir: None,
            expect_head,
        } => {
            let query: Vec<_> = expect_head
                .into_iter()
                .map(|h| ("expect_head", h))
                .collect();
            let value = conn
                .client()?
                .call(Method::GET, "/api/v1/audit/verify", &query, None)?;
            let report: VerifyReport =
                serde_json::from_value(value).context("unexpected verify answer")?;
            print_report(&report, conn.output)
        }
        AuditCommand::Export {
            filters,
            data_dir,
            out,
        } => {
            let records: Vec<Value> = match data_dir {
                Some(dir) => {
                    let store = Store::open(&component_folder(&dir, Component::ControlPlane)?)?;
                    let filter = Filter {
                        org_id: None,
                        actor: filters.actor.clone(),
                        action: filters.action.clone(),
                        subject: filters.subject.clone(),
                        since: filters
                            .since
                            .as_deref()
                            .map(airlock_control_plane::time::Timestamp::parse)
                            .transpose()
                            .context("--since")?,
                        until: filters
                            .until
                            .as_deref()
                            .map(airlock_control_plane::time::Timestamp::parse)
                            .transpose()
                            .context("--until")?,
                    };
                    let (records, _) = audit::query(&store, &filter, None, usize::MAX)?;
                    records
                        .into_iter()
                        .map(|r| serde_json::to_value(r).expect("records serialize"))
                        .collect()
                }
                None => conn.client()?.list_all("/api/v1/audit", &filters.query())?,
            };
            let mut sink: Box<dyn Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            for r in &records {
                writeln!(sink, "{}", serde_json::to_string(r)?)?;
            }
            sink.flush()?;
            if let Some(path) = out {
                eprintln!("wrote {} record(s) to {}", records.len(), path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
