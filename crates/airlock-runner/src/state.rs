//! What the engine remembers of an environment (`DATA/envs/<id>/state.json`, written
//! atomically): enough to list, adopt, stop and restart it after the runner process died.
//! Never secrets: they live in the environment's tmpfs only and are given again at start.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::image::{write_atomic, ImageConfig};
use crate::spec::Resources;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Desired {
    Running,
    Stopped,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EnvRecord {
    pub(crate) id: String,
    pub(crate) slot: u32,
    pub(crate) host_uid: u32,
    /// The reference the environment was created from.
    pub(crate) image: String,
    /// The manifest digest it was created with; a restart uses the same one.
    pub(crate) image_digest: String,
    pub(crate) image_config: ImageConfig,
    pub(crate) hostname: String,
    pub(crate) resources: Resources,
    pub(crate) desired: Desired,
    /// Unix seconds.
    pub(crate) created: u64,
    pub(crate) started: Option<u64>,
    /// The devcontainer feature layer (DATA/images/features/<key>) stacked above the image.
    #[serde(default)]
    pub(crate) features_layer: Option<String>,
    /// Sessions' user, extra variables and working dir (a devcontainer's remoteUser,
    /// remoteEnv, workspaceFolder); the image's when absent.
    #[serde(default)]
    pub(crate) session_user: Option<String>,
    #[serde(default)]
    pub(crate) session_env: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) working_dir: Option<String>,
}

impl EnvRecord {
    pub(crate) fn load(path: &Path) -> Result<Option<EnvRecord>, EngineError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io("read", path)(e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| EngineError::State { path: path.to_path_buf(), reason: e.to_string() })
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec_pretty(self).expect("records serialize");
        write_atomic(path, &bytes)
    }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
