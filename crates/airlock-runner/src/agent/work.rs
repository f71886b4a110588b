//! What a worker does for one environment: start, stop, delete, adopt, fail, forget. Each
//! reports the phases it reaches and the events users should see; any error becomes a
//! `failed` phase with a reason the user can act on.

use std::fs;

use airlock_api::{Delivery, EnvPhase, RunnerEnvironment};
use airlock_ssh_gateway::ExecRequest;

use super::backup;
use super::error::WorkError;
use super::shared::Shared;
use crate::devcontainer::{self, DevcontainerError};
use crate::engine::{EngineEvent, EnvironmentSpec, Resources, SecretFile};

pub enum Job {
    Start,
    Stop,
    Delete,
    /// Running here already (e.g. after a runner restart): report it.
    Adopt,
    Fail(String),
    /// Here but no longer assigned: remove it without reporting.
    Forget,
}

/// Marks a workspace that has been filled (restored or cloned) on this runner.
const WORKSPACE_READY: &str = "workspace-ready";
/// The workspace being filled before the environment's first start (agent folder).
const STAGING: &str = "workspace-staging";
/// The devcontainer.json the environment was created with: (origin, text) as JSON.
const DEVCONTAINER_KEPT: &str = "devcontainer.json";
/// Marks that the creation lifecycle commands (onCreate…postCreate) ran.
const LIFECYCLE_CREATED: &str = "lifecycle-created";
/// Output kept from each task for its event.
const TASK_OUTPUT_TAIL: usize = 3000;

pub fn run(shared: &Shared, id: &str, job: Job) {
    let outcome = match job {
        Job::Start => start(shared, id),
        Job::Stop => stop(shared, id),
        Job::Delete => delete(shared, id),
        Job::Adopt => adopt(shared, id),
        Job::Fail(reason) => Err(WorkError::Failed(reason)),
        Job::Forget => forget(shared, id),
    };
    if let Err(e) = outcome {
        let reason = e.to_string();
        tracing::warn!(env = id, "{reason}");
        let _ = shared.event(id, "error", &reason);
        if let Err(e) = shared.cp.report(id, EnvPhase::Failed, Some(&reason)) {
            tracing::warn!(env = id, error = %e, "cannot report the failure");
        }
    }
}

/// Running here already (the runner restarted): serve its git sockets again and report it.
fn adopt(shared: &Shared, id: &str) -> Result<(), WorkError> {
    let env = assigned(shared, id)?;
    super::git::serve(shared, &env)?;
    report(shared, id, EnvPhase::Running)
}

fn report(shared: &Shared, id: &str, phase: EnvPhase) -> Result<(), WorkError> {
    let updated = shared.cp.report(id, phase, None)?;
    // The gateway admits logins by this view: it must not wait for the next poll.
    if let Some(env) = shared.assigned.lock().unwrap().get_mut(id) {
        *env = updated;
    }
    Ok(())
}

fn assigned(shared: &Shared, id: &str) -> Result<RunnerEnvironment, WorkError> {
    if let Some(env) = shared.assigned.lock().unwrap().get(id) {
        return Ok(env.clone());
    }
    Ok(shared.cp.environment(id)?)
}

fn start(shared: &Shared, id: &str) -> Result<(), WorkError> {
    let env = assigned(shared, id)?;
    if env.phase == EnvPhase::Creating {
        report(shared, id, EnvPhase::Starting)?;
    }
    // First start on this runner: the workspace is filled in a staging folder first, so that
    // its devcontainer.json can choose the image and features.
    let first = !shared.env_dir(id).join(WORKSPACE_READY).exists();
    if first {
        fill_staging(shared, &env)?;
    }
    let plan = devcontainer_plan(shared, &env, first)?;
    let image_ref = plan.as_ref().map_or(env.spec.image.clone(), |p| p.image.clone());
    check_registry(shared, &image_ref)?;
    let _ = shared.event(id, "image-pull", &format!("pulling {image_ref}"));
    let (mut downloaded, mut downloads, mut cached) = (0u64, 0usize, 0usize);
    let image = shared
        .engine
        .pull_image(&image_ref, &mut |e| match e {
            EngineEvent::BlobDownloaded { size, .. } => {
                downloaded += size;
                downloads += 1;
            }
            EngineEvent::BlobCached { .. } => cached += 1,
            _ => {}
        })
        .map_err(|source| WorkError::PullImage { image: image_ref.clone(), source })?;
    shared.metrics.image_pulled(downloaded, downloads);
    let _ = shared.event(
        id,
        "image-pull",
        &format!(
            "image {} ready as {} ({} downloaded, {cached} blob(s) from the runner's cache)",
            image_ref,
            image.digest,
            human_bytes(downloaded)
        ),
    );
    let ide_mounts = super::ide::mounts(shared, &env)?;
    let secrets = shared
        .cp
        .secrets(id)
        .map_err(WorkError::Secrets)?;
    let mut spec = EnvironmentSpec {
        id: id.to_string(),
        image: env.spec.image.clone(),
        resources: Resources {
            cpu_millis: env.spec.resources.cpu_millis,
            memory_mib: env.spec.resources.memory_mib,
            pids: env.spec.resources.pids,
        },
        hostname: Some(env.name.clone()),
        ide: ide_mounts.clone(),
        network_allow: env.spec.network.allow.clone(),
        ..EnvironmentSpec::default()
    };
    for s in secrets {
        match s.delivery {
            Delivery::File { path } => spec.secret_files.push(SecretFile {
                path,
                value: s.value.into_bytes(),
            }),
            Delivery::Env { name } => spec.secret_env.push((name, s.value)),
            // Served over the environment's sockets (agent/git.rs), never placed inside.
            Delivery::GitHttps { .. } | Delivery::GitSsh { .. } => {}
        }
    }
    spec.env.push(crate::git::environment());
    // pip, uv, npm and cargo install from the mirror the image came from, with no flags.
    let registry = airlock_oci::Reference::parse(&image_ref).map_err(crate::error::EngineError::from)?.registry;
    let mirror = shared.engine.registry_base_url(&registry);
    spec.config_files = airlock_packages::clients::config_files(&mirror).into_iter().map(|(path, text)| (path.to_string(), text)).collect();
    spec.env.extend(airlock_packages::clients::variables().into_iter().map(|(name, value)| (name.to_string(), value)));
    let mut events = |kind: &str, message: &str| {
        let _ = shared.event(id, kind, message);
    };
    if let Some(plan) = &plan {
        let features = devcontainer::build_features(&shared.engine, plan, &mut events)?;
        plan.apply(&mut spec, &features);
    }
    shared
        .engine
        .start(&spec, &mut |_| {})
        .map_err(WorkError::Start)?;
    super::git::serve(shared, &env)?;
    if first {
        move_staging(shared, &env)?;
    }
    if let Err(e) = super::ide::start_code_server(shared, &env, &ide_mounts) {
        let _ = shared.event(id, "ide-failed", &e.to_string());
    }
    if let Some(plan) = &plan {
        if let Err(e) = devcontainer::write_vscode_files(&shared.engine, id, plan) {
            let _ = shared.event(id, "devcontainer-failed", &e.to_string());
        }
        let created = shared.env_dir(id).join(LIFECYCLE_CREATED);
        let start = if created.exists() { devcontainer::Start::Again } else { devcontainer::Start::First };
        devcontainer::run_lifecycle(&shared.engine, id, plan, start, &mut events);
        // Creation commands run once per environment on this runner, failed or not.
        fs::write(&created, b"").map_err(WorkError::io("write", &created))?;
    }
    run_tasks(shared, &env);
    report(shared, id, EnvPhase::Running)?;
    let _ = shared.event(id, "started", "the environment is running; reach it with `ssh` (see `airlock ssh-config`)");
    Ok(())
}

/// Fills the staging workspace on the first start on this runner: from the latest snapshot if
/// the environment has one (it ran elsewhere before), else by cloning the project's
/// repository. Owners stay as unpacked; [`move_staging`] shifts them.
fn fill_staging(shared: &Shared, env: &RunnerEnvironment) -> Result<(), WorkError> {
    let dir = shared.env_dir(&env.id);
    let workspace = dir.join(STAGING);
    // Left by a start that failed before the environment ran.
    match fs::remove_dir_all(&workspace) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(WorkError::io("remove", &workspace)(e)),
        _ => {}
    }
    fs::create_dir_all(&workspace).map_err(WorkError::io("create", &workspace))?;
    if let Some(snapshot) = &env.backup {
        let partial = dir.join("restore.tar.zst");
        let stream = shared
            .cp
            .download_backup(&env.id)
            .map_err(WorkError::DownloadSnapshot)?
            .ok_or_else(|| WorkError::SnapshotMissing(snapshot.digest.clone()))?;
        backup::receive(stream, &partial, &snapshot.digest)?;
        let restored = backup::restore(&partial, &snapshot.digest, &workspace, 0);
        let _ = fs::remove_file(&partial);
        restored?;
        let _ = shared.event(
            &env.id,
            "workspace",
            &format!("restored workspace snapshot {} ({})", snapshot.digest, human_bytes(snapshot.size)),
        );
    } else if !env.spec.repository_url.is_empty() {
        shared
            .egress
            .check_git_url(&env.spec.repository_url)
            .map_err(WorkError::RepositoryRefused)?;
        super::git::clone(shared, env, &workspace)?;
        let _ = shared.event(&env.id, "workspace", &format!("cloned {}", env.spec.repository_url));
    }
    Ok(())
}

/// Moves the staged workspace into the environment's (same filesystem: both are in the data
/// dir) and hands it to the environment's users.
fn move_staging(shared: &Shared, env: &RunnerEnvironment) -> Result<(), WorkError> {
    let dir = shared.env_dir(&env.id);
    let staging = dir.join(STAGING);
    let workspace = shared.engine.workspace_dir(&env.id);
    let id_base = shared.engine.host_uid(&env.id)?;
    let entries = fs::read_dir(&staging).map_err(WorkError::io("list", &staging))?;
    for entry in entries {
        let entry = entry.map_err(WorkError::io("list", &staging))?;
        let to = workspace.join(entry.file_name());
        fs::rename(entry.path(), &to).map_err(WorkError::io(format!("move {} to", entry.path().display()), &to))?;
        backup::shift_owners(&to, id_base).map_err(WorkError::ShiftOwners)?;
    }
    let _ = fs::remove_dir(&staging);
    let marker = dir.join(WORKSPACE_READY);
    fs::write(&marker, b"").map_err(WorkError::io("write", &marker))
}

/// The devcontainer.json that drives this environment: read from the staged workspace on the
/// first start (and kept in the agent's folder), the kept copy on later starts (a changed
/// file takes effect in a new environment). None: the project's image and tasks only.
fn devcontainer_plan(shared: &Shared, env: &RunnerEnvironment, first: bool) -> Result<Option<devcontainer::Plan>, WorkError> {
    let dir = shared.env_dir(&env.id);
    let kept = dir.join(DEVCONTAINER_KEPT);
    let found = if first {
        let found = devcontainer::read_config(&dir.join(STAGING))?;
        if let Some(found) = &found {
            // Two strings always serialise.
            let text = serde_json::to_vec(&(&found.origin, &found.text)).unwrap_or_default();
            fs::write(&kept, text).map_err(WorkError::io("write", &kept))?;
        }
        found
    } else {
        match fs::read(&kept) {
            Ok(bytes) => {
                let (origin, text): (String, String) =
                    serde_json::from_slice(&bytes).map_err(|source| WorkError::KeptDevcontainer { path: kept.clone(), source })?;
                Some(devcontainer::Found { origin, text })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(WorkError::io("read", &kept)(e)),
        }
    };
    let Some(found) = found else { return Ok(None) };
    let parsed = airlock_devcontainer::parse(&found.text, &found.origin).map_err(DevcontainerError::from)?;
    let plan = devcontainer::Plan::new(parsed, &found.origin, &env.spec.image, &env.spec.resources)?;
    if first {
        let _ = shared.event(&env.id, "devcontainer", &format!("using {} (image {})", found.origin, plan.image));
        if !plan.ignored.is_empty() {
            let _ = shared.event(&env.id, "devcontainer-ignored", &format!("not applied by airlock: {}", plan.ignored.join(", ")));
        }
        let ports = plan.ports();
        if !ports.is_empty() {
            let _ = shared.event(&env.id, "ports", &format!("forwarded ports: {}", ports.join(", ")));
        }
        if !plan.config.vscode_extensions.is_empty() {
            let _ = shared.event(&env.id, "extensions", &format!("VS Code extensions asked for: {}", plan.config.vscode_extensions.join(", ")));
        }
    }
    Ok(Some(plan))
}

/// The registry an image reference names must be an allowed destination.
fn check_registry(shared: &Shared, image: &str) -> Result<(), WorkError> {
    let registry = image.split('/').next().unwrap_or_default();
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || registry.starts_with('[') => (h, p.parse().unwrap_or(443)),
        _ => (registry, 443),
    };
    shared
        .egress
        .check(host.trim_start_matches('[').trim_end_matches(']'), port)
        .map(|_| ())
        .map_err(|source| WorkError::RegistryRefused { image: image.to_string(), source })
}

/// Runs the project's tasks in order in /workspace; each one's outcome and the tail of its
/// output become an event. A failing task is reported but does not fail the environment:
/// the user can fix things from inside.
fn run_tasks(shared: &Shared, env: &RunnerEnvironment) {
    for task in &env.spec.tasks {
        let (message, kind) = match run_task(shared, &env.id, &task.command) {
            Ok((0, out)) => (format!("task `{}` succeeded\n{out}", task.name), "task"),
            Ok((code, out)) => (format!("task `{}` exited with {code}\n{out}", task.name), "task-failed"),
            Err(e) => (format!("task `{}` could not run: {e}", task.name), "task-failed"),
        };
        let _ = shared.event(&env.id, kind, message.trim_end());
    }
}

fn run_task(shared: &Shared, id: &str, command: &str) -> Result<(i32, String), WorkError> {
    let req = ExecRequest {
        command: Some(format!("cd /workspace 2>/dev/null; {command}")),
        ..ExecRequest::default()
    };
    let process = shared.engine.exec(id, &req)?;
    crate::session::wait_with_tail(process, TASK_OUTPUT_TAIL).map_err(WorkError::Exec)
}

fn stop(shared: &Shared, id: &str) -> Result<(), WorkError> {
    let here = shared
        .engine
        .list()?
        .into_iter()
        .any(|l| l.id == id);
    super::git::stop(shared, id);
    if here {
        shared
            .engine
            .stop(id)
            .map_err(WorkError::Stop)?;
        snapshot(shared, id);
    }
    report(shared, id, EnvPhase::Stopped)
}

/// Stores the workspace with the control plane, so the environment can start on any runner.
/// A failed snapshot is reported but does not block the stop: the workspace stays here.
fn snapshot(shared: &Shared, id: &str) {
    let outcome = (|| -> Result<String, WorkError> {
        let dir = shared.env_dir(id);
        fs::create_dir_all(&dir).map_err(WorkError::io("create", &dir))?;
        let archive = dir.join("snapshot.tar.zst");
        let id_base = shared.engine.host_uid(id)?;
        let digest = backup::snapshot(&shared.engine.workspace_dir(id), id_base, &archive)?;
        let size = fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
        let sent = shared.cp.upload_backup(id, &archive, &digest);
        let _ = fs::remove_file(&archive);
        sent?;
        Ok(format!("workspace snapshot {digest} ({}) stored", human_bytes(size)))
    })();
    match outcome {
        Ok(message) => {
            let _ = shared.event(id, "backup", &message);
        }
        Err(e) => {
            let _ = shared.event(id, "backup-failed", &format!("workspace snapshot failed: {e}; the workspace is kept on this runner"));
        }
    }
}

fn delete(shared: &Shared, id: &str) -> Result<(), WorkError> {
    forget(shared, id)?;
    report(shared, id, EnvPhase::Deleted)
}

fn forget(shared: &Shared, id: &str) -> Result<(), WorkError> {
    super::git::stop(shared, id);
    shared
        .engine
        .delete(id)
        .map_err(WorkError::Delete)?;
    let dir = shared.env_dir(id);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(WorkError::io("remove", &dir)(e)),
        _ => Ok(()),
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
