//! The IDEs a project names, from the mirror the image came from (docs/ide.md): mounted into
//! the environment before it starts, and code-server started on its loopback once it runs.
//! Anything the mirror lacks is named in the environment's events with the offline-manifest
//! lines that bring it; the environment still starts (the shell and forwards work without).

use airlock_api::ide::CODE_SERVER_PORT;
use airlock_api::RunnerEnvironment;
use airlock_oci::Reference;
use airlock_ssh_gateway::ExecIo;

use super::error::WorkError;
use super::shared::Shared;
use crate::error::EngineError;
use crate::ide::{self, IdeArtifact, IdeMount};

/// Pulls (once per digest) what the project's IDE settings name.
pub(super) fn mounts(shared: &Shared, env: &RunnerEnvironment) -> Result<Vec<IdeMount>, WorkError> {
    let settings = &env.spec.ide;
    if settings.is_empty() {
        return Ok(Vec::new());
    }
    let registry = Reference::parse(&env.spec.image).map_err(EngineError::from)?.registry;
    // (artifact, whether a missing one is worth an event: the CLI is optional, clients fetch it
    // through the legacy install when it is absent)
    let mut wanted: Vec<(IdeArtifact, bool)> = Vec::new();
    for commit in &settings.vscode_commits {
        wanted.push((ide::vscode_server(&registry, commit), true));
        wanted.push((ide::vscode_cli(&registry, commit), false));
    }
    if let Some(version) = &settings.code_server {
        wanted.push((ide::code_server(&registry, version), true));
    }
    if let Some((name, version)) = settings
        .jetbrains
        .as_deref()
        .and_then(|j| j.split_once('@'))
    {
        wanted.push((ide::jetbrains(&registry, name, version), true));
    }
    let mut mounts = Vec::new();
    for (artifact, required) in wanted {
        match shared.engine.pull_ide(&artifact.reference, &mut |_| {}) {
            Ok(tree) => mounts.push(IdeMount {
                name: artifact.mount,
                tree,
                home_links: artifact.home_links,
            }),
            Err(e) if ide::is_not_found(&e) => {
                if required {
                    let message = format!(
                        "{} is not on the mirror ({}); the environment starts without it. Add to the offline manifest:\n{}",
                        artifact.mount, artifact.reference, artifact.manifest_lines
                    );
                    let _ = shared.event(&env.id, "ide-missing", &message);
                }
            }
            Err(source) => return Err(WorkError::PullIde { reference: artifact.reference, source }),
        }
    }
    Ok(mounts)
}

/// Starts code-server on the environment's loopback, in the background of the session user:
/// the mirror's gallery, no telemetry, no update checks, no auth of its own (whoever reaches
/// the port came through the gateway or, later, the authenticated proxy).
pub(super) fn start_code_server(
    shared: &Shared,
    env: &RunnerEnvironment,
    mounts: &[IdeMount],
) -> Result<(), WorkError> {
    let Some(version) = &env.spec.ide.code_server else {
        return Ok(());
    };
    let name = format!("code-server-{version}");
    if !mounts.iter().any(|m| m.name == name) {
        return Ok(()); // named missing in the events already
    }
    let registry = Reference::parse(&env.spec.image).map_err(EngineError::from)?.registry;
    let req = ide::code_server_launch(&name, &shared.engine.registry_base_url(&registry));
    let mut process = shared.engine.exec(&env.id, &req)?;
    if let ExecIo::Pipes { stdin, .. } = process.io {
        drop(stdin);
    }
    let status = process.child.wait().map_err(WorkError::Exec)?;
    if !status.success() {
        return Err(WorkError::CodeServer(status));
    }
    let _ = shared.event(
        &env.id,
        "ide",
        &format!("code-server {version} listens on the environment's 127.0.0.1:{CODE_SERVER_PORT}"),
    );
    Ok(())
}
