//! The agent's side of git credentials (`crate::git`): serve an environment's sockets while it
//! runs, asking the control plane for the owner's credentials at each request, and clone the
//! project's repository at first start through the same sockets.
//!
//! The first clone runs on the host before the environment exists (its devcontainer.json
//! chooses the image), through sockets served like the environment's own but in a root-only
//! folder (`CLONE_SOCKETS`) for the clone's duration (`git::clone`): it uses exactly the credentials,
//! host keys and refusals the user later sees inside.

use std::path::Path;
use std::sync::Arc;

use airlock_api::RunnerEnvironment;

use super::error::WorkError;
use super::shared::Shared;
use crate::git::{self, GitSockets, Identity};

/// Serves (again) the sockets of a running environment; replaces any earlier ones.
pub(super) fn serve(shared: &Shared, env: &RunnerEnvironment) -> Result<(), WorkError> {
    stop(shared, &env.id);
    let owner = shared.engine.session_owner(&env.id)?;
    let sockets = open(shared, env, &shared.engine.git_socket_dir(&env.id), owner)?;
    shared.git.lock().unwrap().insert(env.id.clone(), Arc::new(sockets));
    Ok(())
}

/// Sockets in `dir` answering for the environment's owner, owned by `owner` (host ids).
fn open(shared: &Shared, env: &RunnerEnvironment, dir: &Path, owner: (u32, u32)) -> Result<GitSockets, WorkError> {
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
    let ca = match &shared.ca_cert {
        Some(path) => Some(std::fs::read(path).map_err(|source| WorkError::SiteCa { path: path.clone(), source })?),
        None => None,
    };
    GitSockets::serve(dir, owner, &identity, &known_hosts, ca.as_deref(), source, on_miss)
        .map_err(WorkError::GitSockets)
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

/// Where the first clone's sockets live: short (host git connects by path, which must fit
/// in sun_path) and root-only.
const CLONE_SOCKETS: &str = "/run/airlock-git";

/// Clones the project's repository into `workspace` with the owner's credentials, through
/// sockets only root on the host can reach, removed when the clone ends.
pub(super) fn clone(shared: &Shared, env: &RunnerEnvironment, workspace: &Path) -> Result<(), WorkError> {
    let parent = Path::new(CLONE_SOCKETS);
    std::fs::create_dir_all(parent)
        .and_then(|()| std::fs::set_permissions(parent, std::os::unix::fs::PermissionsExt::from_mode(0o700)))
        .map_err(WorkError::io("prepare", parent))?;
    let dir = parent.join(&env.id);
    let sockets = open(shared, env, &dir, (0, 0))?;
    let cloned = git::clone(&sockets, &env.spec.repository_url, workspace, &env.owner.email, shared.ca_cert.as_deref());
    drop(sockets);
    let _ = std::fs::remove_dir_all(&dir);
    cloned.map_err(WorkError::Clone)
}
