//! The Cargo sparse index protocol, from stored `cargo-crate` artifacts of every bundle:
//!
//! - `/cargo/index/config.json`: `dl` points at this mirror's crate downloads;
//! - `/cargo/index/{1/a, 2/ab, 3/a/abc, ab/cd/abcd}`: one JSON line per stored version, built
//!   from the normalized `Cargo.toml` inside the `.crate`, with `cksum` the sha256 of the
//!   stored bytes, so the index always matches what is served;
//! - `/cargo/crates/{name}/{version}/download`: the `.crate`.
//!
//! A crate never imported answers 404 at once (cargo then says "no matching package named
//! …"); nothing is fetched from elsewhere.

use airlock_bundle::ArtifactKind;
use airlock_packages::cargo;
use serde_json::json;

use super::catalog::{self, StoredFile};
use super::http::{compare_versions, AdapterError, Reply, Req, Result};
use crate::serve::AppState;

pub const PREFIX: &str = "/cargo";
const CARGO_NAME: &str = "vnd.airlock.cargo.name";

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    let rest = match req.path.strip_prefix(PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Ok(None),
    };
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed(
            "the Cargo registry is read-only (publishing happens on the connected side)".into(),
        ));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let reply = match parts.as_slice() {
        ["index", "config.json"] => Reply::json(json!({
            "dl": req.origin.link(&format!("{PREFIX}/crates/{{crate}}/{{version}}/download")),
        })),
        ["index", folders @ .., name] if index_path_matches(folders, name) => {
            index_file(state, name)?
        }
        ["crates", name, version, "download"] => {
            let file = versions_of(state, name)?
                .into_iter()
                .find(|f| f.version == *version)
                .ok_or_else(|| {
                    AdapterError::not_found(format!(
                        "{name} {version} was not imported into this mirror"
                    ))
                })?;
            Reply::file(file)
        }
        _ => {
            return Err(AdapterError::not_found(format!(
                "nothing is served at {}",
                req.path
            )))
        }
    };
    Ok(Some(reply))
}

/// Whether `folders/name` is where the sparse index keeps `name`.
fn index_path_matches(folders: &[&str], name: &str) -> bool {
    cargo::is_valid_name(name)
        && cargo::index_path(name) == format!("{}/{}", folders.join("/"), name)
}

/// Every stored version of the crate (names compare case-insensitively, as on crates.io).
fn versions_of(state: &AppState, name: &str) -> Result<Vec<StoredFile>> {
    let mut found: Vec<StoredFile> = catalog::files(state, ArtifactKind::CargoCrate)?
        .into_iter()
        .filter(|f| {
            f.annotation(CARGO_NAME)
                .unwrap_or(&f.name)
                .eq_ignore_ascii_case(name)
        })
        .collect();
    if found.is_empty() {
        return Err(AdapterError::not_found(format!(
            "crate {name} was not imported into this mirror; ask for it to be added to a bundle's Cargo.lock"
        )));
    }
    found.sort_by(|a, b| compare_versions(&a.version, &b.version));
    found.dedup_by(|a, b| a.version == b.version);
    Ok(found)
}

/// The index file: one line per version. A version whose `Cargo.toml` cannot be read is left
/// out with a warning (cargo then reports that version as missing).
fn index_file(state: &AppState, name: &str) -> Result<Reply> {
    let mut body = String::new();
    for file in versions_of(state, name)? {
        let facts = catalog::package_facts(state, &file);
        let entry = match facts.cargo_manifest.as_deref() {
            Some(toml) => cargo::index_entry(toml, &file.layer.hex()),
            None => Err("the .crate has no Cargo.toml".into()),
        };
        match entry {
            Ok(entry) => {
                body.push_str(&entry.to_string());
                body.push('\n');
            }
            Err(e) => {
                tracing::warn!(artifact = %file.reference(), error = %e, "crate version left out of the index")
            }
        }
    }
    Ok(Reply::Text {
        content_type: "application/json",
        body,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_paths_are_recognised() {
        assert!(super::index_path_matches(&["ai", "rl"], "airlock-alpha"));
        assert!(super::index_path_matches(&["3", "a"], "abc"));
        assert!(super::index_path_matches(&["1"], "a"));
        assert!(!super::index_path_matches(&["xx", "rl"], "airlock-alpha"));
        assert!(!super::index_path_matches(&["..", ".."], "..."));
    }
}
