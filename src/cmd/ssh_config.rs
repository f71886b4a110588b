//! `airlock ssh-config`: ssh_config entries so that `ssh <env-id>.airlock.environment` works
//! with stock OpenSSH, pinned to each runner's host key.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

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
    warn_without_registered_identity(&client, args.identity_file.as_deref(), home.as_deref())?;
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

/// The keys ssh offers by default when no IdentityFile is set (OpenSSH's list, newest first).
const DEFAULT_IDENTITIES: [&str; 5] = ["id_ed25519", "id_ecdsa", "id_ed25519_sk", "id_ecdsa_sk", "id_rsa"];

/// Warns when none of the keys ssh would offer is registered with airlock: otherwise the
/// first sign of it is the gateway's `Permission denied (publickey)`.
fn warn_without_registered_identity(client: &Client, identity_file: Option<&Path>, home: Option<&Path>) -> anyhow::Result<()> {
    let registered = client.list_all("/api/v1/ssh-keys", &[])?;
    const ADD: &str = "airlock admin ssh-keys add --name laptop --key-file ~/.ssh/id_ed25519.pub";
    if registered.is_empty() {
        eprintln!(
            "warning: you have no SSH key registered with airlock, so the gateway will answer \
             `Permission denied (publickey)`; register yours:\n  {ADD}"
        );
        return Ok(());
    }
    // What ssh offers: the --identity-file, else the default files and the agent's keys.
    let mut offered: Vec<(String, String)> = Vec::new();
    let files: Vec<PathBuf> = match (identity_file, home) {
        (Some(file), _) => vec![public_key_path(file)],
        (None, Some(home)) => DEFAULT_IDENTITIES.iter().map(|n| home.join(".ssh").join(format!("{n}.pub"))).collect(),
        (None, None) => Vec::new(),
    };
    for file in &files {
        if let Ok(text) = std::fs::read_to_string(file) {
            offered.extend(key_body(&text).map(|body| (body, file.display().to_string())));
        }
    }
    if identity_file.is_none() && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        if let Ok(out) = Command::new("ssh-add").arg("-L").output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                offered.extend(key_body(line).map(|body| (body, "ssh-agent".to_string())));
            }
        }
    }
    let registered_bodies: Vec<String> = registered
        .iter()
        .filter_map(|k| k["public_key"].as_str().and_then(key_body))
        .collect();
    if offered.iter().any(|(body, _)| registered_bodies.contains(body)) {
        return Ok(());
    }
    let names: Vec<String> = registered
        .iter()
        .map(|k| format!("{} ({})", k["name"].as_str().unwrap_or("?"), k["fingerprint"].as_str().unwrap_or("?")))
        .collect();
    let looked = match identity_file {
        Some(file) => format!("{} (the public half of --identity-file)", public_key_path(file).display()),
        None => "~/.ssh/id_*.pub and ssh-agent".to_string(),
    };
    eprintln!(
        "warning: none of the SSH keys ssh will offer ({looked}) is registered with airlock, so the \
         gateway will answer `Permission denied (publickey)`. Registered: {}. Pass --identity-file \
         with the private key of one of those, or register yours:\n  {ADD}",
        names.join(", ")
    );
    Ok(())
}

/// `KEY.pub` beside a private key file (or the file itself when it is the public half).
fn public_key_path(file: &Path) -> PathBuf {
    if file.extension().is_some_and(|e| e == "pub") {
        file.to_path_buf()
    } else {
        let mut name = file.as_os_str().to_owned();
        name.push(".pub");
        PathBuf::from(name)
    }
}

/// The `TYPE BASE64` of an OpenSSH public key line, which identifies the key.
fn key_body(line: &str) -> Option<String> {
    let mut parts = line.split_whitespace();
    let (kind, body) = (parts.next()?, parts.next()?);
    Some(format!("{kind} {body}"))
}
