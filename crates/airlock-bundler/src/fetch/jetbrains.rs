//! `[[jetbrains]]`: IDE archives from the products API, each checked against the sha256 its
//! `checksumLink` publishes (so `bundle lock` downloads no archive).

use std::collections::BTreeMap;

use serde_json::Value;

use super::https::parse_checksum_line;
use super::{file_name_of, Ctx, FetchError};
use airlock_bundle::{guess_media_type, ArtifactKind};
use crate::lock::LockedFile;
use crate::sources::JetBrainsSource;

/// Repository-friendly names for the common product codes.
fn product_name(code: &str) -> String {
    match code {
        "IIU" => "intellij-idea-ultimate".into(),
        "IIC" => "intellij-idea-community".into(),
        "GO" => "goland".into(),
        "PCP" => "pycharm-professional".into(),
        "PCC" => "pycharm-community".into(),
        "WS" => "webstorm".into(),
        "PS" => "phpstorm".into(),
        "RM" => "rubymine".into(),
        "CL" => "clion".into(),
        "RD" => "rider".into(),
        other => other.to_ascii_lowercase(),
    }
}

pub(super) async fn resolve(ctx: &Ctx, source: &JetBrainsSource) -> Result<Vec<LockedFile>, FetchError> {
    let base = source.base_url.trim_end_matches('/');
    let mut files = Vec::new();
    for code in &source.products {
        let latest = source.version == "latest";
        let url = format!("{base}/products/releases?code={code}&type=release{}", if latest { "&latest=true" } else { "" });
        let answer: Value = ctx.http.get_json(&url).await?;
        let upstream = |message: String| FetchError::Upstream { what: url.clone(), message };
        // The key may differ from the code asked for: read the first one.
        let releases = answer
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_array)
            .ok_or_else(|| upstream(format!("no releases of product `{code}`")))?;
        let release = if latest {
            releases.first()
        } else {
            releases.iter().find(|r| r["version"].as_str() == Some(&source.version))
        }
        .ok_or_else(|| {
            let known: Vec<&str> = releases.iter().filter_map(|r| r["version"].as_str()).take(10).collect();
            upstream(format!("product `{code}` has no release `{}` (recent: {})", source.version, known.join(", ")))
        })?;
        let version = release["version"].as_str().ok_or_else(|| upstream("a release has no version".into()))?.to_string();
        for platform in &source.platforms {
            let download = &release["downloads"][platform.as_str()];
            let (Some(link), Some(checksum_link)) = (download["link"].as_str(), download["checksumLink"].as_str()) else {
                let have: Vec<&String> = release["downloads"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
                return Err(upstream(format!(
                    "{code} {version} has no `{platform}` download with a checksumLink (platforms: {})",
                    have.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            };
            let checksum = ctx.http.get(checksum_link).await?;
            let sha256 = parse_checksum_line(&checksum).map_err(|message| FetchError::Upstream { what: checksum_link.to_string(), message })?;
            let file_name = file_name_of(link);
            let mut annotations = BTreeMap::from([("vnd.airlock.jetbrains.product-code".to_string(), code.clone())]);
            if let Some(build) = release["build"].as_str() {
                annotations.insert("vnd.airlock.jetbrains.build".into(), build.into());
            }
            files.push(LockedFile {
                kind: ArtifactKind::JetbrainsIde,
                name: product_name(code),
                version: version.clone(),
                platform: Some(platform.clone()),
                url: link.to_string(),
                sha256,
                size: download["size"].as_u64(),
                media_type: guess_media_type(&file_name).to_string(),
                file_name,
                verified_by: "checksumLink".into(),
                annotations,
                inline: None,
            });
        }
    }
    Ok(files)
}
