//! Git with the environment owner's own credentials, without a credential on any disk.
//!
//! The runner serves two Unix sockets per environment in the environment's tmpfs run folder
//! (`DATA/envs/<id>/run/airlock/`, bound read-only at `/run/airlock`):
//!
//! - `git-credentials.sock` speaks the protocol of git's own `credential-cache` daemon, so the
//!   stock `git credential-cache --socket …` client (built into git) asks it: no extra binary in
//!   the image;
//! - `ssh-agent.sock` speaks the ssh-agent protocol for `ssh` (`IdentityAgent`).
//!
//! Each request asks the credential source (the control plane, for this environment only) at
//! that moment: a deleted credential stops working at the next git operation, and nothing is
//! kept in the runner between requests. `gitconfig` (same folder, `GIT_CONFIG_SYSTEM`) names the
//! helper, the SSH command with strict host-key checking against `known_hosts`, and the owner's
//! name and email; it includes the image's own /etc/gitconfig first.

mod credential_cache;
mod ssh_agent;

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{chown, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use airlock_api::{Delivery, SecretValue};

/// Where the socket folder is inside an environment.
pub const GUEST_DIR: &str = "/run/airlock";
pub const CREDENTIAL_SOCKET: &str = "git-credentials.sock";
pub const AGENT_SOCKET: &str = "ssh-agent.sock";
pub const KNOWN_HOSTS: &str = "known_hosts";
pub const GITCONFIG: &str = "gitconfig";
/// The site CA git verifies HTTPS servers with (the runner's `--ca-cert`), when given.
pub const CA_FILE: &str = "ca.pem";

/// The variable that points git at the runner's config (which includes /etc/gitconfig).
pub fn environment() -> (String, String) {
    ("GIT_CONFIG_SYSTEM".into(), format!("{GUEST_DIR}/{GITCONFIG}"))
}

/// One of the owner's git credentials, as fetched for one request.
#[derive(Clone)]
pub enum GitCredential {
    Https { host: String, username: String, token: String },
    Ssh { host: String, private_key: String },
}

impl fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitCredential::Https { host, username, .. } => write!(f, "Https {{ host: {host:?}, username: {username:?}, token: <redacted> }}"),
            GitCredential::Ssh { host, .. } => write!(f, "Ssh {{ host: {host:?}, private_key: <redacted> }}"),
        }
    }
}

/// The git credentials among an environment's secrets.
pub fn credentials_of(secrets: Vec<SecretValue>) -> Vec<GitCredential> {
    secrets
        .into_iter()
        .filter_map(|s| match s.delivery {
            Delivery::GitHttps { host, username } => Some(GitCredential::Https { host, username, token: s.value }),
            Delivery::GitSsh { host, .. } => Some(GitCredential::Ssh { host, private_key: s.value }),
            Delivery::File { .. } | Delivery::Env { .. } => None,
        })
        .collect()
}

/// Asked at each request: the owner's credentials now, or why they cannot be had.
pub type CredentialSource = dyn Fn() -> Result<Vec<GitCredential>, String> + Send + Sync;
/// Told when git asked for a host the owner has no credential for (a message for the user).
pub type MissReport = dyn Fn(&str) + Send + Sync;

/// Who the environment's commits are by.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// The sockets of one environment; served until dropped (which removes them).
pub struct GitSockets {
    dir: PathBuf,
    listeners: Vec<(UnixListener, JoinHandle<()>)>,
    stop: Arc<AtomicBool>,
    last_miss: Arc<Mutex<Option<String>>>,
}

impl GitSockets {
    /// Serves the sockets in `dir` (created root-owned 0755 if missing: the user may pass but
    /// not plant links there), each owned by `owner` (host uid, gid) with mode 0600, and writes
    /// `gitconfig` and `known_hosts` (host keys are public; the file lets ssh check strictly),
    /// and the site CA if given.
    pub fn serve(
        dir: &Path,
        owner: (u32, u32),
        identity: &Identity,
        known_hosts: &str,
        ca_pem: Option<&[u8]>,
        source: Arc<CredentialSource>,
        on_miss: Arc<MissReport>,
    ) -> io::Result<GitSockets> {
        match fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        if let Some(ca) = ca_pem {
            write_public(&dir.join(CA_FILE), ca)?;
        }
        write_public(&dir.join(GITCONFIG), gitconfig(GUEST_DIR, identity, ca_pem.is_some()).as_bytes())?;
        write_public(&dir.join(KNOWN_HOSTS), known_hosts.as_bytes())?;
        let stop = Arc::new(AtomicBool::new(false));
        let last_miss = Arc::new(Mutex::new(None));
        let mut sockets = GitSockets { dir: dir.to_path_buf(), listeners: Vec::new(), stop: stop.clone(), last_miss: last_miss.clone() };
        // A socket's path must fit in sun_path (108 bytes), which a deep data folder
        // exceeds: bind through the folder's descriptor instead (`/proc/self/fd/N/NAME`).
        let dir_handle = fs::File::open(dir)?;
        for name in [CREDENTIAL_SOCKET, AGENT_SOCKET] {
            let path = dir.join(name);
            let _ = fs::remove_file(&path);
            let listener = UnixListener::bind(format!("/proc/self/fd/{}/{name}", dir_handle.as_raw_fd()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            chown(&path, Some(owner.0), Some(owner.1))?;
            let accepting = listener.try_clone()?;
            let (stop, source, on_miss, last_miss) = (stop.clone(), source.clone(), on_miss.clone(), last_miss.clone());
            let name = name.to_string();
            let thread = std::thread::Builder::new().name(format!("git-{name}")).spawn(move || {
                for conn in accepting.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (source, on_miss, last_miss, name) = (source.clone(), on_miss.clone(), last_miss.clone(), name.clone());
                    // One thread per connection: ssh keeps its agent connection for a session.
                    let served = std::thread::Builder::new().name(format!("git-{name}-conn")).spawn(move || {
                        let missed = move |host: &str| {
                            *last_miss.lock().unwrap() = Some(host.to_string());
                            on_miss(host);
                        };
                        let outcome = if name == CREDENTIAL_SOCKET {
                            credential_cache::answer(conn, &*source, &missed)
                        } else {
                            ssh_agent::answer(conn, &*source)
                        };
                        if let Err(e) = outcome {
                            tracing::debug!(socket = name, error = %e, "git credential request ended");
                        }
                    });
                    if let Err(e) = served {
                        tracing::warn!(error = %e, "cannot serve a git credential request");
                    }
                }
            })?;
            sockets.listeners.push((listener, thread));
        }
        Ok(sockets)
    }

    /// Replaces `known_hosts` (the owner added or removed an SSH credential).
    pub fn set_known_hosts(&self, known_hosts: &str) -> io::Result<()> {
        write_public(&self.dir.join(KNOWN_HOSTS), known_hosts.as_bytes())
    }

    /// The last host git asked for that the owner had no credential for, since the last call.
    pub fn take_miss(&self) -> Option<String> {
        self.last_miss.lock().unwrap().take()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for GitSockets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for (listener, thread) in self.listeners.drain(..) {
            // Wakes the blocked accept (Linux answers it with EINVAL); the loop then sees `stop`.
            // SAFETY: shutdown(2) on a socket this struct owns; no memory is passed.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
            let _ = thread.join();
        }
        for name in [CREDENTIAL_SOCKET, AGENT_SOCKET] {
            let _ = fs::remove_file(self.dir.join(name));
        }
    }
}

/// The known_hosts lines of the owner's SSH credentials (their delivery metadata).
pub fn known_hosts_of<'a>(deliveries: impl IntoIterator<Item = &'a Delivery>) -> String {
    let mut out = String::new();
    for d in deliveries {
        if let Delivery::GitSsh { known_hosts, .. } = d {
            for line in known_hosts.lines().map(str::trim).filter(|l| !l.is_empty()) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The environment's git configuration, for the sockets in `dir` (as the reader sees it).
pub fn gitconfig(dir: &str, identity: &Identity, with_ca: bool) -> String {
    let mut out = String::from("# Written by the airlock runner: your own git credentials, served over sockets.\n");
    out.push_str("[include]\n\tpath = /etc/gitconfig\n");
    out.push_str(&format!("[credential]\n\thelper = {}\n", quote(&helper_command(dir))));
    out.push_str(&format!("[core]\n\tsshCommand = {}\n", quote(&ssh_command(dir))));
    if with_ca {
        out.push_str(&format!("[http]\n\tsslCAInfo = {}\n", quote(&format!("{dir}/{CA_FILE}"))));
    }
    let name = if identity.name.trim().is_empty() { &identity.email } else { &identity.name };
    if !identity.email.is_empty() {
        out.push_str(&format!("[user]\n\tname = {}\n\temail = {}\n", quote(name), quote(&identity.email)));
    }
    out
}

/// git's built-in cache client, pointed at the runner's socket.
pub fn helper_command(dir: &str) -> String {
    format!("cache --socket {dir}/{CREDENTIAL_SOCKET}")
}

/// ssh with the runner's agent and strict host-key checking against the owner's host keys
/// only (no user or system ssh configuration can loosen it).
pub fn ssh_command(dir: &str) -> String {
    format!(
        "ssh -F /dev/null -o IdentityAgent={dir}/{AGENT_SOCKET} -o StrictHostKeyChecking=yes -o UserKnownHostsFile={dir}/{KNOWN_HOSTS} -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes"
    )
}

/// Clones `url` into `target` on the host through an environment's sockets, so the runner's
/// first clone uses exactly the credentials, host keys and refusals the user sees inside.
/// `ca_file` verifies HTTPS servers (default: the host's trust store). An error says what
/// git said and, when the owner lacks a credential, how to add one.
pub fn clone(sockets: &GitSockets, url: &str, target: &Path, owner_email: &str, ca_file: Option<&Path>) -> Result<(), String> {
    let dir = sockets.dir().to_string_lossy().into_owned();
    // Only what this clone asks for counts below.
    let _ = sockets.take_miss();
    let mut git = Command::new("git");
    // Global `-c` (not clone's): nothing of it is written into the repository's config.
    git.args(["-c", "credential.helper=", "-c"])
        .arg(format!("credential.helper={}", helper_command(&dir)))
        .arg("-c")
        .arg(format!("core.sshCommand={}", ssh_command(&dir)));
    if let Some(ca) = ca_file {
        // The variable would override the setting.
        git.arg("-c").arg(format!("http.sslCAInfo={}", ca.display())).env_remove("GIT_SSL_CAINFO");
    }
    let out = git
        .args(["clone", "--quiet", "--", url])
        .arg(target)
        .env("GIT_TERMINAL_PROMPT", "0")
        // No credential helpers, proxies or ssh settings from the runner host's configuration.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent")
        .env_remove("GIT_SSH_COMMAND")
        .env_remove("GIT_SSH")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .map_err(|e| format!("cannot run git to clone {url}: {e} (is git installed on the runner?)"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let hint = match sockets.take_miss() {
        Some(host) => format!(
            "; {owner_email} has no git credential for {host}: add one with `airlock admin git-credentials add --host {host} --username NAME` and start the environment again"
        ),
        None if said.contains("Permission denied (publickey") => format!(
            "; {owner_email} has no SSH key the server accepts: add one with `airlock admin git-credentials add --ssh --host HOST --known-hosts-file FILE`"
        ),
        None if said.contains("Host key verification failed") => {
            "; the server's host key is not one stored with your SSH credential (`airlock admin git-credentials list`)".to_string()
        }
        None => String::new(),
    };
    Err(format!("cannot clone {url}: {said}{hint}"))
}

/// A git config value in double quotes (control characters dropped: they cannot be in one).
fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A public file the environment user may read but not change (owned by the host's root).
fn write_public(path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
    file.write_all(content)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gitconfig_quotes_names_and_includes_the_image_config_first() {
        let config = gitconfig("/run/airlock", &Identity { name: "Ada \"the\" Countess\n".into(), email: "ada@site".into() }, true);
        assert!(config.contains("sslCAInfo = \"/run/airlock/ca.pem\""), "{config}");
        assert!(config.find("[include]").unwrap() < config.find("[credential]").unwrap());
        assert!(config.contains("name = \"Ada \\\"the\\\" Countess\""), "{config}");
        assert!(config.contains("helper = \"cache --socket /run/airlock/git-credentials.sock\""));
        assert!(config.contains("StrictHostKeyChecking=yes"));
        let nameless = gitconfig("/x", &Identity { name: String::new(), email: "bob@site".into() }, false);
        assert!(!nameless.contains("sslCAInfo"));
        assert!(nameless.contains("name = \"bob@site\""), "{nameless}");
    }
}
