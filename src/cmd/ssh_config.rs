//! `airlock ssh-config`: ssh_config entries so that `ssh <env-id>.airlock.environment` works
//! with stock OpenSSH, pinned to each runner's host key.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_control_plane::client::{Client, Method};
use airlock_ssh_gateway::config::{include_directive, write_files, SshEntry};
use anyhow::Context;
use serde_json::Value;

#[derive(clap::Args)]
#[command(after_help = "Example:\n  airlock ssh-config --url https://cp.acme.internal:8443 --token $AIRLOCK_TOKEN\n  \
    ssh env_0123abcd.airlock.environment\n\n\
    Writes DIR/config and DIR/known_hosts: one wildcard entry for *.airlock.environment with\n\
    the gateway's pinned host key, and each running environment's user name. An environment\n\
    started later on the same runner needs no rerun: ssh ENV_ID@ENV_ID.airlock.environment\n\
    (rerun to drop the ENV_ID@). With --install, adds the Include line to ~/.ssh/config once.")]
pub struct Args {
    /// The control plane's URL.
    #[arg(long, env = "AIRLOCK_URL", value_name = "URL")]
    url: String,
    /// Your session or personal access token.
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: String,
    /// PEM CA certificate of the control plane's HTTPS certificate.
    #[arg(long, env = "AIRLOCK_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Where to write `config` and `known_hosts` (default ~/.ssh/airlock).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The private key to log in with (the one whose public key you registered).
    #[arg(long, value_name = "FILE")]
    identity_file: Option<PathBuf>,
    /// Add `Include DIR/config` at the top of ~/.ssh/config if it is not there yet.
    #[arg(long)]
    install: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let dir = match (&args.dir, &home) {
        (Some(d), _) => d.clone(),
        (None, Some(h)) => h.join(".ssh").join("airlock"),
        (None, None) => anyhow::bail!("HOME is not set: pass --dir"),
    };
    let client = Client::new(&args.url, Some(args.token.clone()), args.ca_cert.as_deref())?;
    let me = client.call(Method::GET, "/api/v1/auth/whoami", &[], None)?;
    let my_id = me["user"]["id"].as_str().unwrap_or_default().to_string();
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "500".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = client.call(Method::GET, "/api/v1/environments", &query, None)?;
        for env in page["items"].as_array().into_iter().flatten() {
            if env["owner_id"].as_str() != Some(my_id.as_str()) || env["phase"] != "running" {
                continue;
            }
            let id = env["id"].as_str().unwrap_or_default();
            let access: Value = client
                .call(Method::GET, &format!("/api/v1/environments/{id}/ssh"), &[], None)
                .with_context(|| format!("cannot get SSH access for environment {id}"))?;
            entries.push(SshEntry {
                env_id: id.to_string(),
                env_name: access["environment_name"].as_str().unwrap_or_default().to_string(),
                host: access["host"].as_str().unwrap_or_default().to_string(),
                port: access["port"].as_u64().unwrap_or(0) as u16,
                host_key: access["host_key"].as_str().unwrap_or_default().to_string(),
            });
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let files = write_files(&dir, &entries, args.identity_file.as_deref())
        .with_context(|| format!("cannot write the ssh configuration in {}", dir.display()))?;
    let include = include_directive(&files.config)?;
    for e in &entries {
        println!("{}\t{}", e.host_alias(), e.env_name);
    }
    eprintln!(
        "wrote {} environment(s) to {}",
        entries.len(),
        files.config.display()
    );
    if args.install {
        let home = home.context("HOME is not set: cannot find ~/.ssh/config")?;
        let path = home.join(".ssh").join("config");
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if !current.lines().any(|l| l.trim() == include) {
            std::fs::create_dir_all(home.join(".ssh"))?;
            // Include must come before any Host block to apply everywhere.
            std::fs::write(&path, format!("{include}\n\n{current}"))
                .with_context(|| format!("cannot update {}", path.display()))?;
            eprintln!("added `{include}` to {}", path.display());
        }
    } else {
        eprintln!("add this line at the top of ~/.ssh/config (or run again with --install):\n  {include}");
    }
    Ok(ExitCode::SUCCESS)
}
