//! The site's trust anchor: the keys and threshold of the site configuration
//! (`mirror.trusted_keys`, `mirror.threshold`). The server pins it into the mirror's metadata
//! when it starts, so every import on that folder checks it, whoever runs the import and
//! however (in-process or through the admin socket). Keys an importer names add
//! requirements; they never replace or relax the anchor.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use airlock_bundle::format;
use airlock_bundle::{KeyError, PublicKey, Requirement, Requirements, TrustError, TrustPolicy};
use serde::{Deserialize, Serialize};

use crate::store::{AnchorRecord, Changes, HistoryRecord, Store, StoreError};

/// Keys (as the text of their files) and how many of them must have signed, with where
/// they came from. This is what crosses the admin socket and what is pinned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRequirement {
    pub source: String,
    /// Public key files' text, with the file name for messages.
    pub keys: Vec<(String, String)>,
    pub threshold: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read trusted key {path} ({source_name}): {error}")]
    Read { path: PathBuf, source_name: String, error: std::io::Error },
    #[error("{source_name}: {error}")]
    Key { source_name: String, error: KeyError },
    #[error("{source_name}: {error}")]
    Policy { source_name: String, error: TrustError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyRequirement {
    /// Reads key files; `None` when there are none (the source then adds no requirement).
    pub fn read(paths: &[PathBuf], threshold: usize, source: &str) -> Result<Option<KeyRequirement>, AnchorError> {
        if paths.is_empty() {
            return Ok(None);
        }
        let keys = paths
            .iter()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map(|text| (text, path.display().to_string()))
                    .map_err(|error| AnchorError::Read { path: path.clone(), source_name: source.to_string(), error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let requirement = KeyRequirement { source: source.to_string(), keys, threshold };
        requirement.requirement()?;
        Ok(Some(requirement))
    }

    /// The requirement as the signature check uses it.
    pub fn requirement(&self) -> Result<Requirement, AnchorError> {
        let keys = self
            .keys
            .iter()
            .map(|(text, origin)| PublicKey::decode(text, origin))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| AnchorError::Key { source_name: self.source.clone(), error })?;
        let policy = TrustPolicy::new(keys, self.threshold).map_err(|error| AnchorError::Policy { source_name: self.source.clone(), error })?;
        Ok(Requirement { source: self.source.clone(), policy })
    }
}

/// The source name of the site configuration's anchor.
pub fn config_source(config_file: Option<&Path>) -> String {
    match config_file {
        Some(file) => format!("mirror.trusted_keys and mirror.threshold in {}", file.display()),
        None => "mirror.trusted_keys and mirror.threshold (AIRLOCK_MIRROR_* variables)".to_string(),
    }
}

/// Pins the configured anchor into the store, recording a change in the history. A
/// configuration without keys leaves a pinned anchor in place: it is replaced, never dropped
/// by omission. Returns the anchor in force.
pub fn pin(store: &Store, configured: Option<&KeyRequirement>, actor: &str) -> Result<Option<AnchorRecord>, AnchorError> {
    let _exclusive = store.exclusive.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let pinned = store.trust_anchor()?;
    let Some(configured) = configured else {
        if let Some(anchor) = &pinned {
            tracing::warn!(source = %anchor.requirement.source, "the configuration names no mirror.trusted_keys; the pinned trust anchor stays in force");
        }
        return Ok(pinned);
    };
    if pinned.as_ref().is_some_and(|p| &p.requirement == configured) {
        return Ok(pinned);
    }
    let time = format::format_time(SystemTime::now());
    let describe = |r: &KeyRequirement| r.requirement().map(|r| r.describe());
    let message = match &pinned {
        None => format!("pinned: {}", describe(configured)?),
        Some(previous) => format!(
            "replaced: {} (was: {})",
            describe(configured)?,
            describe(&previous.requirement).unwrap_or_else(|e| e.to_string())
        ),
    };
    let anchor = AnchorRecord { requirement: configured.clone(), pinned: time.clone() };
    let record = HistoryRecord {
        id: store.next_id()?,
        time,
        actor: actor.to_string(),
        action: "trust-anchor".into(),
        result: if pinned.is_none() { "pinned" } else { "replaced" }.into(),
        bundle_id: None,
        channel: None,
        sequence: None,
        signers: Vec::new(),
        overrides: Vec::new(),
        source: Some(configured.source.clone()),
        message: Some(message),
    };
    tracing::info!(message = record.message.as_deref().unwrap_or_default(), "trust anchor");
    let mut changes = Changes::default();
    changes.trust_anchor(&anchor);
    changes.history(&record);
    store.commit(changes)?;
    Ok(Some(anchor))
}

/// Pins on a data folder no server holds (done by a server before it serves the folder).
pub fn pin_in(data_dir: &Path, configured: Option<&KeyRequirement>, actor: &str) -> Result<Option<AnchorRecord>, AnchorError> {
    let store = Store::open(data_dir)?;
    let pinned = pin(&store, configured, actor);
    store.close()?;
    pinned
}

/// Everything an import on this store must meet: the pinned anchor first, then what the
/// importer added. Nothing the importer sends can remove or relax the anchor.
pub fn requirements(store: &Store, added: &[KeyRequirement]) -> Result<Requirements, AnchorError> {
    let mut all = Vec::new();
    if let Some(anchor) = store.trust_anchor()? {
        all.push(anchor.requirement.requirement()?);
    }
    for requirement in added {
        all.push(requirement.requirement()?);
    }
    Ok(Requirements(all))
}

/// What every import on this store enforces whoever runs it, in the words of
/// [`Requirement::describe`]; `None` when no anchor is pinned.
pub fn enforced(anchor: Option<&AnchorRecord>) -> Result<Option<String>, AnchorError> {
    anchor.map(|a| a.requirement.requirement().map(|r| format!("{} (pinned {})", r.describe(), a.pinned))).transpose()
}
