//! Upstream paths, replayed: a request for `https://HOST/PATH` where HOST/PATH is the upstream
//! URL a stored file was fetched from is answered with that file. That is how a client with a
//! compiled-in download link (`download.jetbrains.com/go/goland-2024.3.tar.gz`, a release
//! host's `…/cli/stable/gitpod-linux-amd64`) is served once DNS points the host at the
//! mirror. `PATH.sha256` answers the checksum in the format that upstream uses.

use airlock_bundle::ArtifactKind;

use super::catalog::{self, StoredFile};
use super::hosts::{self, same_content};
use super::http::{Reply, Req, Result};
use super::{jetbrains, releases};
use crate::serve::AppState;

/// Kinds whose upstream URLs are plain downloads (images have their own protocol).
const KINDS: [ArtifactKind; 9] = [
    ArtifactKind::JetbrainsIde,
    ArtifactKind::ReleaseFile,
    ArtifactKind::VscodeServer,
    ArtifactKind::VscodeExtension,
    ArtifactKind::AmiDescriptor,
    ArtifactKind::PythonPackage,
    ArtifactKind::NpmPackage,
    ArtifactKind::CodeServer,
    ArtifactKind::CargoCrate,
];

/// Host and path of an `http(s)://` URL, without query or fragment.
fn split_url(url: &str) -> Option<(String, &str)> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = path.split(['?', '#']).next().unwrap_or("");
    Some((hosts::normalize(authority), if path.is_empty() { "/" } else { path }))
}

pub fn handle(state: &AppState, req: &Req, host: &str) -> Result<Option<Reply>> {
    if !req.is_read() || req.path.len() <= 1 {
        return Ok(None);
    }
    let host = hosts::normalize(host);
    let (wanted, sidecar) = match req.path.strip_suffix(".sha256") {
        Some(path) => (path, true),
        None => (req.path.as_str(), false),
    };
    for kind in KINDS {
        for file in catalog::files(state, kind)? {
            let Some((upstream_host, upstream_path)) = split_url(&file.upstream) else { continue };
            if !same_content(&upstream_host, &host) {
                continue;
            }
            if upstream_path == req.path {
                return Ok(Some(Reply::file(file)));
            }
            if sidecar && upstream_path == wanted {
                return Ok(Some(checksum(&file)));
            }
        }
    }
    Ok(None)
}

/// JetBrains publishes `<sha256> *<file>`; release hosts `<sha256>  <file>`.
fn checksum(file: &StoredFile) -> Reply {
    if file.kind == ArtifactKind::JetbrainsIde {
        jetbrains::checksum_reply(file)
    } else {
        releases::sidecar_reply(file)
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn upstream_urls_split_into_host_and_path() {
        assert_eq!(
            split_url("https://download.jetbrains.com/go/goland-2024.3.tar.gz?x=1"),
            Some(("download.jetbrains.com".to_string(), "/go/goland-2024.3.tar.gz"))
        );
        assert_eq!(split_url("https://Example.org:8443"), Some(("example.org".to_string(), "/")));
        assert_eq!(split_url("file:./dist/airlock"), None);
        assert_eq!(split_url("inline:"), None);
    }
}
