//! Language package formats, shared by the bundler (which reads a project's lock files and
//! an upstream index) and the mirror (which serves the same packages back under each
//! ecosystem's protocol). Formats only: no network, no store.
//!
//! | module     | what                                                                    |
//! |------------|-------------------------------------------------------------------------|
//! | [`python`] | project names (PEP 503), distribution file names, `requirements.txt`, `uv.lock`, `pylock.toml`, core metadata |
//! | [`simple`] | the PyPI simple repository API model (PEP 503 HTML, PEP 691 JSON)       |
//! | [`npm`]    | package names, tarball names, `package-lock.json`, `integrity` strings  |
//! | [`cargo`]  | crate names, `Cargo.lock`, sparse-index paths and entries, `dl` templates |
//! | [`clients`] | the configuration that points pip, uv, npm and cargo at a mirror           |

use std::path::{Path, PathBuf};

pub mod cargo;
pub mod clients;
pub mod npm;
pub mod python;
pub mod simple;

/// A lock file that cannot be used, with the line at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct LockFileError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl LockFileError {
    pub fn new(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        LockFileError {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
