//! `[[https]]` release artifacts: pinned sha256, a `.sha256` sidecar, or (for documents such
//! as channel `manifest.json` files that have neither) the digest `bundle lock` measured.

use std::collections::BTreeMap;

use super::{file_name_of, Ctx, FetchError};
use airlock_bundle::guess_media_type;
use crate::lock::LockedFile;
use crate::sources::{parse_sha256, HttpsSource};

pub(super) async fn resolve(ctx: &Ctx, source: &HttpsSource) -> Result<LockedFile, FetchError> {
    let file_name = file_name_of(&source.url);
    let label = format!("{} {} {}", source.kind, source.name, source.version);
    let (sha256, size, verified_by) = if let Some(pinned) = &source.sha256 {
        (parse_sha256(pinned).expect("validated with the manifest"), None, "pinned")
    } else if source.sidecar {
        let sidecar_url = format!("{}.sha256", source.url);
        let text = ctx.http.get(&sidecar_url).await?;
        let digest = parse_checksum_line(&text).map_err(|message| FetchError::Upstream { what: sidecar_url, message })?;
        (digest, None, "sidecar")
    } else {
        let done = ctx.http.download(&source.url, &label, None, &ctx.cache).await?;
        (done.digest, Some(done.size), "downloaded")
    };
    Ok(LockedFile {
        kind: source.kind,
        name: source.name.clone(),
        version: source.version.clone(),
        platform: source.platform.clone(),
        url: source.url.clone(),
        sha256,
        size,
        media_type: source.media_type.clone().unwrap_or_else(|| guess_media_type(&file_name).to_string()),
        file_name,
        verified_by: verified_by.into(),
        annotations: BTreeMap::new(),
        inline: None,
    })
}

/// `<sha256>  <filename>` or `<sha256> *<filename>` (sha256sum's text and binary modes), or
/// the bare digest.
pub(crate) fn parse_checksum_line(body: &[u8]) -> Result<airlock_oci::Digest, String> {
    let text = String::from_utf8_lossy(body);
    let first = text.split_whitespace().next().unwrap_or("");
    parse_sha256(first).map_err(|_| format!("expected `<sha256>  <filename>`, found `{}`", text.trim().chars().take(100).collect::<String>()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_lines_in_both_modes_parse() {
        let hex = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        for line in [format!("{hex}  gitpod-linux-amd64\n"), format!("{hex} *goland-2024.3.tar.gz"), hex.to_string()] {
            assert_eq!(super::parse_checksum_line(line.as_bytes()).unwrap().hex(), hex);
        }
        assert!(super::parse_checksum_line(b"<html>").is_err());
    }
}
