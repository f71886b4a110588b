//! `MANIFEST.sha256`: one `sha256sum` line for every other file of the package, sorted by
//! path, and `MANIFEST.sha256.minisig`, its minisign signature with the site key, made by the
//! bundler's deterministic signer so the stock `minisign -V` verifies it.

use sha2::{Digest as _, Sha256};

use airlock_bundle::SecretKey;

use crate::state::State;
use crate::{Error, Files};

pub const MANIFEST: &str = "MANIFEST.sha256";
pub const SIGNATURE: &str = "MANIFEST.sha256.minisig";

/// The site signing key, when one is configured.
pub fn load_key(state: &State) -> Result<Option<SecretKey>, Error> {
    let Some(path) = &state.signing_key else { return Ok(None) };
    SecretKey::from_file(path, state.key_password.clone())
        .map(Some)
        .map_err(|e| Error::SigningKey { path: path.clone(), message: e.to_string() })
}

/// The manifest's text for `files` (which must not hold the manifest itself).
pub fn manifest(files: &Files) -> String {
    files
        .iter()
        .filter(|(path, _)| path.as_str() != MANIFEST && path.as_str() != SIGNATURE)
        .map(|(path, bytes)| format!("{}  {path}\n", hex::encode(Sha256::digest(bytes))))
        .collect()
}

/// Adds the manifest, and its signature when there is a key.
pub fn write(state: &State, key: Option<&SecretKey>, files: &mut Files) {
    let text = manifest(files);
    if let Some(key) = key {
        let one_line = |s: &str| s.replace(['\r', '\n'], " ");
        let trusted = format!(
            "airlock accreditation package site={} as_of={} files={} config_sha256={}",
            one_line(&state.config.site.name),
            state.as_of.time,
            files.len(),
            state.config_sha256
        );
        let signature = key.sign(text.as_bytes(), &trusted, "signature from the airlock site key");
        files.insert(SIGNATURE.into(), signature.text.into_bytes());
    }
    files.insert(MANIFEST.into(), text.into_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sorted_sha256sum_lines_and_skip_the_manifest() {
        let mut files = Files::new();
        files.insert("b/x.json".into(), b"{}".to_vec());
        files.insert("a.md".into(), b"hello\n".to_vec());
        files.insert(MANIFEST.into(), b"old".to_vec());
        let text = manifest(&files);
        assert_eq!(
            text,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  a.md\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a  b/x.json\n"
        );
    }
}
