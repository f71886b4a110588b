//! The agent's side of git credentials (`crate::git`): serve an environment's sockets while it
//! runs, asking the control plane for the owner's credentials at each request, and clone the
//! project's repository at first start through the same sockets.
//!
//! The first clone runs on the host (as today) but with the environment's own sockets, so it
//! uses exactly the credentials, host keys and refusals the user later sees inside; running it
//! inside the environment would need the environment's network (not every site gives one).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use airlock_api::RunnerEnvironment;

use super::shared::Shared;
use crate::git::{self, GitSockets, Identity};

/// The variable that points git at the runner's config (it includes the image's /etc/gitconfig).
pub(super) fn environment() -> (String, String) {
    ("GIT_CONFIG_SYSTEM".into(), format!("{}/{}", git::GUEST_DIR, git::GITCONFIG))
}

/// Serves (again) the sockets of a running environment; replaces any earlier ones.
pub(super) fn serve(shared: &Shared, env: &RunnerEnvironment) -> Result<(), String> {
    stop(shared, &env.id);
    let owner = shared.engine.session_owner(&env.id).map_err(|e| e.to_string())?;
    let cp = shared.cp.clone();
    let id = env.id.clone();
    let source: Arc<git::CredentialSource> = Arc::new(move || {
        cp.secrets(&id).map(git::credentials_of).map_err(|e| e.to_string())
    });
    let (cp, id) = (shared.cp.clone(), env.id.clone());
    let on_miss: Arc<git::MissReport> = Arc::new(move |host: &str| {
        let message = format!(
            "git asked for a credential for https://{host} and you have none stored for it: add one with \
             `airlock admin git-credentials add --host {host} --username NAME` (the token from standard input)"
        );
        tracing::info!(env = id, "{message}");
        let event = airlock_api::NewEvent { time: None, kind: "git-credentials".into(), message };
        if let Err(e) = cp.events(&id, &[event]) {
            tracing::warn!(env = id, error = %e, "cannot report a missing git credential");
        }
    });
    let identity = Identity { name: env.owner.name.clone(), email: env.owner.email.clone() };
    let known_hosts = git::known_hosts_of(env.secrets.iter().map(|s| &s.delivery));
    let sockets = GitSockets::serve(&shared.engine.git_socket_dir(&env.id), owner, &identity, &known_hosts, source, on_miss)
        .map_err(|e| format!("cannot serve the git credential sockets: {e}"))?;
    shared.git.lock().unwrap().insert(env.id.clone(), sockets);
    Ok(())
}

/// Stops serving (before the environment's tmpfs is unmounted: a bound socket keeps it busy).
pub(super) fn stop(shared: &Shared, id: &str) {
    let sockets = shared.git.lock().unwrap().remove(id);
    drop(sockets);
}

/// Keeps `known_hosts` in step with the owner's SSH credentials (the view the loop refreshes).
pub(super) fn refresh_known_hosts(shared: &Shared, env: &RunnerEnvironment) {
    if let Some(sockets) = shared.git.lock().unwrap().get(&env.id) {
        let known_hosts = git::known_hosts_of(env.secrets.iter().map(|s| &s.delivery));
        if let Err(e) = sockets.set_known_hosts(&known_hosts) {
            tracing::warn!(env = env.id, error = %e, "cannot update the environment's known_hosts");
        }
    }
}

/// Clones `url` into `workspace` on the host with the environment's sockets.
pub(super) fn clone(shared: &Shared, env: &RunnerEnvironment, workspace: &Path) -> Result<(), String> {
    let url = &env.spec.repository_url;
    let dir = shared.engine.git_socket_dir(&env.id);
    let dir = dir.to_string_lossy();
    let out = Command::new("git")
        // Global `-c` (not clone's): nothing of it is written into the repository's config.
        .args(["-c", "credential.helper=", "-c"])
        .arg(format!("credential.helper={}", git::helper_command(&dir)))
        .arg("-c")
        .arg(format!("core.sshCommand={}", git::ssh_command(&dir)))
        .args(["clone", "--quiet", "--", url])
        .arg(workspace)
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
    let missed = shared.git.lock().unwrap().get(&env.id).and_then(GitSockets::last_miss);
    let hint = match missed {
        Some(host) => format!(
            "; {} has no git credential for {host}: add one with `airlock admin git-credentials add --host {host} --username NAME` and start the environment again",
            env.owner.email
        ),
        None if said.contains("Permission denied (publickey") => format!(
            "; {} has no SSH key the server accepts: add one with `airlock admin git-credentials add --ssh --host HOST --known-hosts-file FILE`",
            env.owner.email
        ),
        None if said.contains("Host key verification failed") => {
            "; the server's host key is not the one stored with your SSH credential (`airlock admin git-credentials list`)".to_string()
        }
        None => String::new(),
    };
    Err(format!("cannot clone {url}: {said}{hint}"))
}
