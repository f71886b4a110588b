//! What `airlock ssh-config` writes: an OpenSSH client config with one wildcard block,
//! `Host *.airlock.environment`, for the gateway most environments are on, and the known_hosts
//! file that pins each runner's gateway host key.
//!
//! Each environment is reached as `<env-id>.airlock.environment` (a name that never resolves
//! in DNS, so nothing leaks to a resolver). Its own block only sets `User` (the OpenSSH of Debian 12,
//! 9.2, does not expand tokens in `User`, so it cannot come from the host name) and, if it runs on another runner, that runner's
//! gateway. Keys are pinned under a `HostKeyAlias` per gateway (`airlock-gateway-N`), not
//! under `host:port`, so `StrictHostKeyChecking yes` can be on from the first connection: the
//! key comes from the control plane, not from trust-on-first-use.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use russh::keys::PublicKey;

/// Suffix of every environment's host alias.
pub const HOST_SUFFIX: &str = ".airlock.environment";

/// One environment reachable through a runner's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEntry {
    /// `env_…`: the SSH user name and the first label of the alias.
    pub env_id: String,
    /// Human-readable name, only used in a comment.
    pub env_name: String,
    /// The runner's gateway address (name or IP).
    pub host: String,
    pub port: u16,
    /// The gateway's host key as an OpenSSH public key line (`ssh-ed25519 AAAA…`).
    pub host_key: String,
}

impl SshEntry {
    /// `env_….airlock.environment`
    pub fn host_alias(&self) -> String {
        format!("{}{HOST_SUFFIX}", self.env_id)
    }

    /// Checks that the entry can be written without changing the meaning of the files
    /// (a space or newline in a field would inject ssh_config directives).
    pub fn validate(&self) -> Result<(), String> {
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b))
        };
        if !token(&self.env_id) || self.env_id.contains(':') {
            return Err(format!("invalid environment id {:?}", self.env_id));
        }
        if !token(&self.host) {
            return Err(format!(
                "invalid host {:?} for environment {}",
                self.host, self.env_id
            ));
        }
        if self.port == 0 {
            return Err(format!("port 0 for environment {}", self.env_id));
        }
        normalized_host_key(&self.host_key)
            .map(|_| ())
            .map_err(|e| format!("invalid host key for environment {}: {e}", self.env_id))
    }
}

/// `type base64` of an OpenSSH public key line, without its comment.
fn normalized_host_key(line: &str) -> Result<String, String> {
    let mut key = PublicKey::from_openssh(line.trim()).map_err(|e| e.to_string())?;
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim_end().to_owned())
        .map_err(|e| e.to_string())
}

/// Quotes a path for ssh_config. `%` starts a token in IdentityFile/UserKnownHostsFile, so
/// it is doubled; a `"` or a control character cannot be written at all.
fn quote_path(path: &Path) -> Result<String, String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("path {} is not UTF-8", path.display()))?;
    if s.contains('"') || s.chars().any(char::is_control) {
        return Err(format!("path {s:?} cannot be written in an ssh config"));
    }
    Ok(format!("\"{}\"", s.replace('%', "%%")))
}

fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

const HEADER: &str = "# Written by `airlock ssh-config`; rewritten on every run, do not edit.\n";

/// One runner's gateway, as the environments' entries name it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gateway {
    host: String,
    port: u16,
    /// Normalized (no comment).
    host_key: String,
    /// The `HostKeyAlias` its key is pinned under in known_hosts.
    alias: String,
}

/// The distinct gateways of the valid entries, the one most environments use first (it
/// serves the wildcard block), then in order of appearance.
fn gateways(entries: &[SshEntry]) -> Vec<Gateway> {
    let mut found: Vec<(Gateway, usize)> = Vec::new();
    for entry in entries {
        let Ok(host_key) = entry.validate().and_then(|()| normalized_host_key(&entry.host_key)) else {
            continue;
        };
        match found.iter_mut().find(|(g, _)| {
            g.host == entry.host && g.port == entry.port && g.host_key == host_key
        }) {
            Some((_, count)) => *count += 1,
            None => {
                let alias = format!("airlock-gateway-{}", found.len() + 1);
                let gateway = Gateway { host: entry.host.clone(), port: entry.port, host_key, alias };
                found.push((gateway, 1));
            }
        }
    }
    // Stable: ties keep their order of appearance.
    found.sort_by(|a, b| b.1.cmp(&a.1));
    found.into_iter().map(|(g, _)| g).collect()
}

fn gateway_of<'a>(gateways: &'a [Gateway], entry: &SshEntry) -> Option<&'a Gateway> {
    let key = normalized_host_key(&entry.host_key).ok()?;
    gateways.iter().find(|g| g.host == entry.host && g.port == entry.port && g.host_key == key)
}

fn push_gateway(out: &mut String, gateway: &Gateway) {
    out.push_str(&format!("    HostName {}\n", gateway.host));
    out.push_str(&format!("    Port {}\n", gateway.port));
    out.push_str(&format!("    HostKeyAlias {}\n", gateway.alias));
}

/// Renders the ssh_config: a small block per environment (its `User`, which OpenSSH cannot
/// derive from the host name, and its gateway when that is not the usual one), then one
/// `Host *.airlock.environment` block with the usual gateway, its pinned key and the
/// settings every environment shares. An environment started later, on the usual gateway,
/// needs no rerun: `ssh ENV_ID@ENV_ID.airlock.environment`. Entries that fail
/// [`SshEntry::validate`] (and everything, if a path cannot be written) are left out with a
/// comment saying why; [`write_files`] refuses them outright instead.
pub fn render_config(
    entries: &[SshEntry],
    identity_file: Option<&Path>,
    known_hosts_path: &Path,
) -> String {
    let mut out = String::from(HEADER);
    let paths = quote_path(known_hosts_path)
        .and_then(|known_hosts| Ok((known_hosts, identity_file.map(quote_path).transpose()?)));
    let (known_hosts, identity) = match paths {
        Ok(quoted) => quoted,
        Err(e) => {
            out.push_str(&format!(
                "# skipped every environment: {}\n",
                comment_text(&e)
            ));
            return out;
        }
    };
    let gateways = gateways(entries);
    for entry in entries {
        out.push('\n');
        if let Err(e) = entry.validate() {
            out.push_str(&format!("# skipped an environment: {}\n", comment_text(&e)));
            continue;
        }
        out.push_str(&format!(
            "# airlock environment {} ({})\n",
            comment_text(&entry.env_name),
            entry.env_id
        ));
        out.push_str(&format!("Host {}\n", entry.host_alias()));
        out.push_str(&format!("    User {}\n", entry.env_id));
        match gateway_of(&gateways, entry) {
            // Another runner's gateway: its own address and pinned key.
            Some(gateway) if Some(gateway) != gateways.first() => push_gateway(&mut out, gateway),
            _ => {}
        }
    }
    let Some(usual) = gateways.first() else {
        return out;
    };
    out.push_str(&format!(
        "\n# Every airlock environment (later ones too), through the gateway at {}:{}\n",
        usual.host, usual.port
    ));
    out.push_str(&format!("Host *{HOST_SUFFIX}\n"));
    push_gateway(&mut out, usual);
    out.push_str(&format!("    UserKnownHostsFile {known_hosts}\n"));
    out.push_str("    StrictHostKeyChecking yes\n");
    // The pinned key comes from the control plane; the client must not rewrite the file.
    out.push_str("    UpdateHostKeys no\n");
    // The gateway only does public keys: do not prompt for anything else.
    out.push_str("    PreferredAuthentications publickey\n");
    out.push_str("    PasswordAuthentication no\n");
    out.push_str("    KbdInteractiveAuthentication no\n");
    if let Some(identity) = &identity {
        out.push_str("    IdentitiesOnly yes\n");
        out.push_str(&format!("    IdentityFile {identity}\n"));
    }
    out
}

/// Renders known_hosts: each gateway's host key under its `HostKeyAlias`. Invalid entries
/// are left out (with a comment).
pub fn render_known_hosts(entries: &[SshEntry]) -> String {
    let mut out = String::from(HEADER);
    for entry in entries {
        if let Err(e) = entry.validate() {
            out.push_str(&format!("# skipped an environment: {}\n", comment_text(&e)));
        }
    }
    for gateway in gateways(entries) {
        out.push_str(&format!("{} {}\n", gateway.alias, gateway.host_key));
    }
    out
}

/// The files [`write_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshFiles {
    /// `DIR/config`, for an `Include` line in `~/.ssh/config` (see [`include_directive`]).
    pub config: PathBuf,
    /// `DIR/known_hosts`, referenced from the config.
    pub known_hosts: PathBuf,
}

/// Writes `DIR/known_hosts` and `DIR/config` (mode 0600, each atomically: temp file, fsync,
/// rename), creating DIR (mode 0700) if needed. Refuses, with `InvalidInput`, entries or paths
/// that cannot be written faithfully.
pub fn write_files(
    dir: &Path,
    entries: &[SshEntry],
    identity: Option<&Path>,
) -> io::Result<SshFiles> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    for entry in entries {
        entry.validate().map_err(invalid)?;
    }
    // Relative paths in ssh_config are not relative to the config file: make them absolute.
    let dir = std::path::absolute(dir)?;
    let identity = identity.map(std::path::absolute).transpose()?;
    let files = SshFiles {
        config: dir.join("config"),
        known_hosts: dir.join("known_hosts"),
    };
    quote_path(&files.known_hosts).map_err(invalid)?;
    if let Some(identity) = &identity {
        quote_path(identity).map_err(invalid)?;
    }

    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    // known_hosts first: a config never points at keys that are not there yet.
    write_atomic(&files.known_hosts, render_known_hosts(entries).as_bytes())?;
    write_atomic(
        &files.config,
        render_config(entries, identity.as_deref(), &files.known_hosts).as_bytes(),
    )?;
    Ok(files)
}

/// The line to put in `~/.ssh/config` (at the top: ssh_config takes the first value it sees).
pub fn include_directive(config: &Path) -> io::Result<String> {
    let quoted = quote_path(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Include does not expand % tokens: undo the doubling.
    Ok(format!("Include {}", quoted.replace("%%", "%")))
}

fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key_line(seed: u8) -> String {
        let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
        let key = russh::keys::PrivateKey::from(pair);
        format!("{} runner-{seed}", key.public_key().to_openssh().unwrap())
    }

    fn entry(env: &str, port: u16, seed: u8) -> SshEntry {
        SshEntry {
            env_id: env.into(),
            env_name: format!("backend-{env}"),
            host: "127.0.0.1".into(),
            port,
            host_key: key_line(seed),
        }
    }

    #[test]
    fn one_wildcard_block_carries_the_gateway_and_its_pinned_key() {
        let entries = [entry("env_a", 2222, 1), entry("env_b", 2222, 1)];
        let cfg = render_config(
            &entries,
            Some(Path::new("/home/u/.ssh/id 50%")),
            Path::new("/x/known_hosts"),
        );
        assert!(cfg.contains("# airlock environment backend-env_a (env_a)\nHost env_a.airlock.environment\n    User env_a\n\n"), "{cfg}");
        assert!(cfg.contains("Host env_b.airlock.environment\n    User env_b\n\n"), "{cfg}");
        assert!(cfg.contains("Host *.airlock.environment\n    HostName 127.0.0.1\n    Port 2222\n    HostKeyAlias airlock-gateway-1\n    UserKnownHostsFile \"/x/known_hosts\"\n    StrictHostKeyChecking yes\n"), "{cfg}");
        assert_eq!(cfg.matches("HostName").count(), 1, "{cfg}");
        assert!(
            cfg.ends_with("    IdentitiesOnly yes\n    IdentityFile \"/home/u/.ssh/id 50%%\"\n"),
            "{cfg}"
        );
        let without = render_config(&entries, None, Path::new("/x/known_hosts"));
        assert!(!without.contains("IdentityFile") && !without.contains("IdentitiesOnly"));
        // No environment yet: no gateway is known, so there is nothing to point at.
        assert!(!render_config(&[], None, Path::new("/k")).contains("Host "));
    }

    #[test]
    fn environments_on_another_runner_name_its_gateway() {
        let entries = [entry("env_a", 2222, 1), entry("env_b", 3333, 2), entry("env_c", 2222, 1)];
        let cfg = render_config(&entries, None, Path::new("/x/known_hosts"));
        // The wildcard goes to the gateway most environments use; env_b gets its own.
        assert!(cfg.contains("Host env_b.airlock.environment\n    User env_b\n    HostName 127.0.0.1\n    Port 3333\n    HostKeyAlias airlock-gateway-2\n"), "{cfg}");
        assert!(cfg.contains("Host *.airlock.environment\n    HostName 127.0.0.1\n    Port 2222\n    HostKeyAlias airlock-gateway-1\n"), "{cfg}");
        let kh = render_known_hosts(&entries);
        let lines: Vec<&str> = kh.lines().filter(|l| !l.starts_with('#')).collect();
        let bare = |seed| key_line(seed).rsplit_once(' ').unwrap().0.to_owned();
        assert_eq!(lines, [format!("airlock-gateway-1 {}", bare(1)), format!("airlock-gateway-2 {}", bare(2))]);
    }

    #[test]
    fn injection_attempts_are_left_out_or_refused() {
        let mut bad = entry("env_a", 22, 1);
        bad.host = "x\n    ProxyCommand evil".into();
        let mut bad_id = entry("env_a ProxyCommand", 22, 1);
        bad_id.env_name = "name\nHost *".into();
        let cfg = render_config(&[bad.clone(), bad_id.clone()], None, Path::new("/k"));
        assert!(
            !cfg.contains("ProxyCommand evil\n") && !cfg.contains("\nHost *"),
            "{cfg}"
        );
        assert!(!cfg.lines().any(|l| l.starts_with("Host ")), "{cfg}");
        let dir = tempfile::tempdir().unwrap();
        let err = write_files(dir.path(), &[bad], None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let mut bad_key = entry("env_a", 22, 1);
        bad_key.host_key = "ssh-ed25519 notbase64".into();
        assert!(write_files(dir.path(), &[bad_key], None).is_err());
        assert!(write_files(
            dir.path(),
            &[entry("env_a", 22, 1)],
            Some(Path::new("/a\"b"))
        )
        .is_err());
    }

    #[test]
    fn writes_both_files_private() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("airlock/ssh");
        let files = write_files(&target, &[entry("env_a", 2222, 1)], None).unwrap();
        for path in [&files.config, &files.known_hosts] {
            assert_eq!(
                fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let cfg = fs::read_to_string(&files.config).unwrap();
        assert!(cfg.contains(&format!(
            "UserKnownHostsFile \"{}\"",
            files.known_hosts.display()
        )));
        // Rewriting replaces the files and leaves no temp file behind.
        write_files(&target, &[], None).unwrap();
        assert!(!fs::read_to_string(&files.config).unwrap().contains("Host "));
        assert_eq!(fs::read_dir(&target).unwrap().count(), 2);
        assert_eq!(
            include_directive(&files.config).unwrap(),
            format!("Include \"{}\"", files.config.display())
        );
    }
}
