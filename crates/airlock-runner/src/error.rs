//! The engine's errors: each says what was wrong, where, and what to do about it.

use std::io;
use std::path::PathBuf;

use crate::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("environment {env}: network: {source}")]
    Network { env: String, source: crate::network::NetworkError },
    #[error("runner network: {0}")]
    RunnerNetwork(#[from] crate::network::NetworkError),
    #[error("invalid environment id `{0}`: an id is `env_` followed by 1 to 40 lowercase letters or digits")]
    InvalidId(String),

    #[error("environment {env}: {reason}")]
    InvalidSpec { env: String, reason: String },

    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("registry {registry} is not an allowed destination for this runner (allowed: {allowed}); add it to the registry options or use the mirror's address")]
    RegistryNotAllowed { registry: String, allowed: String },

    #[error("registry {registry}: {message} (while fetching {url})")]
    Registry { registry: String, url: String, message: String },

    #[error("{what} {digest} from registry {registry} failed verification: expected {expected}, got {actual}; the registry or something between served corrupt or tampered content, nothing of it was kept")]
    Verification { what: String, digest: String, registry: String, expected: String, actual: String },

    #[error("image {reference}: {reason}")]
    Manifest { reference: String, reason: String },

    #[error("image {image}: layer {layer}: {source}; the image was not unpacked")]
    Layer {
        image: String,
        layer: String,
        #[source]
        source: UnpackError,
    },

    #[error("environment {0} does not exist on this runner")]
    NotFound(String),

    #[error("environment {env} is not running ({state}); start it first")]
    NotRunning { env: String, state: String },

    #[error("cannot connect to {addr} inside environment {env}: {source}; is a server listening on the environment's loopback at that port?")]
    Forward {
        env: String,
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("environment {env} was created from image {existing}; {requested} was asked: delete the environment to change its image")]
    ImageChanged { env: String, existing: String, requested: String },

    #[error("`{command}` failed for {env} ({status}): {stderr}")]
    Runc { env: String, command: String, status: String, stderr: String },

    #[error("cannot run {runc}: {source}; install runc or set EngineOptions::runc")]
    RuncMissing {
        runc: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} at {path}: {source}")]
    Mount {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{action} {path}: {source}")]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("no free uid range: all {0} slots of 65536 uids above uid_base are in use; delete environments or lower uid_base")]
    NoFreeSlot(u32),

    #[error("data dir {data_dir} cannot be used: {path} has mode {mode:o}, so environments (unprivileged host uids) cannot pass through it to their root filesystems; allow traversal (`chmod o+x {path}`) or choose a data dir below traversable folders")]
    DataDirUnreachable { data_dir: PathBuf, path: PathBuf, mode: u32 },

    #[error("data dir {0} is in use by another runner process; stop it or choose another data dir")]
    Locked(PathBuf),

    #[error("state file {path} is unreadable: {reason}; delete the environment or restore the file")]
    State { path: PathBuf, reason: String },

    #[error("devcontainer feature {feature}: install.sh exited with {status}; nothing was cached, the next start installs again. Its output ended with:\n{tail}")]
    FeatureInstall { feature: String, status: i32, tail: String },

    #[error("devcontainer feature {feature}: {reason}")]
    Feature { feature: String, reason: String },

    #[error("environment {env}: user `{user}` cannot be resolved: {reason}")]
    User { env: String, user: String, reason: String },
}

impl EngineError {
    pub(crate) fn io(action: impl Into<String>, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> EngineError {
        let (action, path) = (action.into(), path.into());
        move |source| EngineError::Io { action, path, source }
    }

    pub(crate) fn mount(what: impl Into<String>, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> EngineError {
        let (what, path) = (what.into(), path.into());
        move |source| EngineError::Mount { what, path, source }
    }
}

impl From<airlock_oci::ReferenceError> for EngineError {
    fn from(e: airlock_oci::ReferenceError) -> Self {
        EngineError::InvalidReference { reference: e.reference, reason: e.reason }
    }
}
