//! The accreditation package: documents an assessor asks for, generated from what airlock is
//! actually configured with, holds and has logged.
//!
//! `generate` reads the live state once ([`state`]), then writes, into a fresh folder that
//! replaces the output folder only when everything was written:
//!
//! | path | module | what |
//! |---|---|---|
//! | `oscal/component-definition.json` | [`oscal`] | OSCAL component definition, SP 800-53 rev5 statements per component |
//! | `oscal/ssp-draft.json` | [`ssp`] | OSCAL system security plan draft for the site to complete |
//! | `sbom/<bundle-id>.cdx.json`, `.spdx.json` | [`sbom_cdx`], [`sbom_spdx`] | CycloneDX 1.6 and SPDX 2.3 per imported bundle |
//! | `tables/*.csv`, `tables/*.md` | [`tables`] | ports/protocols/services, crypto, software, audit events |
//! | `evidence/*` | [`evidence`] | audit chain verification, bundle imports, configuration baseline |
//! | `diagrams/boundary.dot` (+ `.svg`), `README.md` | [`readme`] | system description and boundary |
//! | `MANIFEST.sha256` (+ `.minisig`) | [`manifest`] | sha256sum lines over every file, signed with the site key |
//!
//! Output is deterministic: the same state and configuration give byte-identical files.
//! Per-subject UUIDs are version 5 from stable names ([`uuid`]); each document's own UUID is
//! version 5 over its content, so it changes exactly when the content does; timestamps are
//! the time of the newest recorded state change (see [`state::AsOf`]).

pub mod audit_catalog;
pub mod controls;
pub mod crypto;
pub mod evidence;
pub mod facts;
pub mod manifest;
pub mod oscal;
pub mod readme;
pub mod sbom_cdx;
pub mod sbom_spdx;
pub mod ssp;
pub mod state;
pub mod statements;
pub mod tables;
pub mod text;
pub mod uuid;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use state::State;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] airlock_config::ConfigError),
    #[error(
        "the control plane data directory {dir} is in use by a running control plane \
         (`airlock control-plane serve` or `airlock server`): stop it and run \
         `airlock docs accreditation` again (the documents read its database directly)"
    )]
    ControlPlaneInUse { dir: PathBuf },
    #[error(
        "the mirror data directory {dir} is locked by another airlock process that does not \
         answer on its admin socket: stop it and run `airlock docs accreditation` again"
    )]
    MirrorInUse { dir: PathBuf },
    #[error("cannot read the control plane data directory {dir}: {message}")]
    ControlPlane { dir: PathBuf, message: String },
    #[error("cannot read the mirror data directory {dir}: {message}")]
    Mirror { dir: PathBuf, message: String },
    #[error("cannot read {what} {path}: {message}")]
    Input { what: &'static str, path: PathBuf, message: String },
    #[error(
        "the output folder {0} exists and is not an accreditation package (it has files but no \
         MANIFEST.sha256); choose a new or empty folder"
    )]
    OutputNotOurs(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot load the site signing key {path}: {message}")]
    SigningKey { path: PathBuf, message: String },
    #[error("the workspace lockfile built into airlock cannot be read: {0}")]
    Lockfile(String),
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
    SourceDateEpoch(String),
}

/// What to generate from, and where to.
pub struct Options {
    /// The configuration file, if any (defaults and `AIRLOCK_*` variables apply either way).
    pub config_path: Option<PathBuf>,
    /// The environment (`std::env::vars()`): `AIRLOCK_*` overrides and `SOURCE_DATE_EPOCH`.
    pub vars: Vec<(String, String)>,
    /// Overrides the configuration's `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Overrides the configuration's `site.signing_key`.
    pub signing_key: Option<PathBuf>,
    /// Password of an encrypted signing key; `None` asks on the terminal if it is encrypted.
    pub key_password: Option<String>,
    pub out: PathBuf,
}

/// What was written, for the command to report.
pub struct Report {
    pub out: PathBuf,
    pub files: Vec<String>,
    /// Key id of the signature over MANIFEST.sha256, or `None` when unsigned.
    pub signed_by: Option<String>,
    /// Things that could not be documented from live state (absent data directories, …).
    pub notes: Vec<String>,
    pub svg_rendered: bool,
}

/// Generated files by path relative to the output folder.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Reads the live state and writes the whole package to `options.out`.
pub fn generate(options: &Options) -> Result<Report, Error> {
    let state = State::gather(options)?;
    let key = manifest::load_key(&state)?;
    let signed_by = key.as_ref().map(|k| k.id.to_string());
    let facts = facts::Facts::of(&state);
    let diagram = readme::Diagram::render(&state, &facts);
    let mut files = Files::new();
    oscal::write(&state, &facts, &mut files);
    ssp::write(&state, &facts, diagram.href(), &mut files);
    for bundle in state.bundles() {
        sbom_cdx::write(&state, &facts, &bundle, &mut files);
        sbom_spdx::write(&state, &bundle, &mut files);
    }
    tables::write(&state, &facts, &mut files);
    evidence::write(&state, &mut files);
    readme::write(&state, &facts, &diagram, signed_by.as_deref(), &mut files);
    manifest::write(&state, key.as_ref(), &mut files);
    write_out(&options.out, &files)?;
    Ok(Report {
        out: options.out.clone(),
        files: files.keys().cloned().collect(),
        signed_by,
        notes: state.notes(),
        svg_rendered: diagram.svg.is_some(),
    })
}

/// Writes every file into a new folder beside `out`, then puts it in place of `out`, so a
/// failure leaves a previous package as it was and no stale file survives a new run.
fn write_out(out: &Path, files: &Files) -> Result<(), Error> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    if out.exists() {
        let ours = out.join(manifest::MANIFEST).is_file();
        let empty = std::fs::read_dir(out).map_err(err(out))?.next().is_none();
        if !ours && !empty {
            return Err(Error::OutputNotOurs(out.to_path_buf()));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(err(&parent))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "accreditation".into());
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(err(&staging))?;
    }
    let result = (|| {
        for (rel, bytes) in files {
            let path = staging.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err(dir))?;
            }
            std::fs::write(&path, bytes).map_err(err(&path))?;
        }
        if out.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(out, &old).map_err(err(out))?;
            if let Err(e) = std::fs::rename(&staging, out) {
                // Put the previous package back rather than leave nothing.
                let _ = std::fs::rename(&old, out);
                return Err(Error::Write { path: out.to_path_buf(), source: e });
            }
            std::fs::remove_dir_all(&old).map_err(err(&old))?;
        } else {
            std::fs::rename(&staging, out).map_err(err(out))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}
