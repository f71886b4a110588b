//! Why a worker's job for an environment failed. The message becomes the environment's
//! failure reason, so each says what went wrong and, where it can, what to do.

use std::io;
use std::path::PathBuf;

use airlock_egress::EgressError;

use super::api::ApiError;
use super::backup::BackupError;
use crate::devcontainer::DevcontainerError;
use crate::error::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The control plane failed the environment (its reason, as given).
    #[error("{0}")]
    Failed(String),
    /// Reporting to or asking the control plane failed.
    #[error(transparent)]
    ControlPlane(#[from] ApiError),
    #[error("cannot fetch the environment's secrets: {0}")]
    Secrets(ApiError),
    #[error("cannot pull image {image}: {source}")]
    RegistryRefused { image: String, source: EgressError },
    #[error("cannot pull image {image}: {source}")]
    PullImage { image: String, source: EngineError },
    #[error("cannot pull IDE {reference}: {source}")]
    PullIde { reference: String, source: EngineError },
    #[error("code-server did not start ({0})")]
    CodeServer(std::process::ExitStatus),
    #[error("cannot clone the project's repository: {0}")]
    RepositoryRefused(EgressError),
    /// git's own account of a failed clone (`crate::git::clone`).
    #[error("{0}")]
    Clone(String),
    #[error("cannot read the site CA {path}: {source}")]
    SiteCa { path: PathBuf, source: io::Error },
    #[error("cannot serve the git credential sockets: {0}")]
    GitSockets(io::Error),
    #[error("cannot download the workspace snapshot: {0}")]
    DownloadSnapshot(ApiError),
    #[error("the control plane lists snapshot {0} but has none to give")]
    SnapshotMissing(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("cannot hand the workspace to the environment user: {0}")]
    ShiftOwners(io::Error),
    #[error("cannot {action} {path}: {source}")]
    Io { action: String, path: PathBuf, source: io::Error },
    #[error("{path} is unreadable: {source}")]
    KeptDevcontainer { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Devcontainer(#[from] DevcontainerError),
    #[error("cannot start the environment: {0}")]
    Start(EngineError),
    #[error("cannot stop the environment: {0}")]
    Stop(EngineError),
    #[error("cannot delete the environment: {0}")]
    Delete(EngineError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the command could not run: {0}")]
    Exec(io::Error),
}

impl WorkError {
    /// `map_err` helper for file operations: `cannot <action> <path>: <error>`.
    pub(super) fn io(action: impl Into<String>, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WorkError {
        let (action, path) = (action.into(), path.into());
        move |source| WorkError::Io { action, path, source }
    }
}
