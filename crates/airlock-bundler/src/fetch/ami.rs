//! `[ami]`: AMI descriptors, inline or from descriptor URLs. Only images owned by an account
//! in `allowed_owners` are carried; any other is refused, never silently dropped.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Ctx, FetchError};
use airlock_bundle::ArtifactKind;
use airlock_oci::{validate_repository, Digest};
use crate::lock::LockedFile;
use crate::sources::{AmiImage, AmiSource};

pub(super) async fn resolve(ctx: &Ctx, source: &AmiSource) -> Result<Vec<LockedFile>, FetchError> {
    let mut found: Vec<(AmiImage, String)> = source.images.iter().map(|i| (i.clone(), "inline:".to_string())).collect();
    for url in &source.descriptor_urls {
        let document: Value = ctx.http.get_json(url).await?;
        let list = document.get("images").cloned().unwrap_or(document);
        let images: Vec<AmiImage> = serde_json::from_value(list).map_err(|e| FetchError::Upstream {
            what: url.clone(),
            message: format!("not a list of AMI descriptors (name, name_pattern, owner, architecture, purpose, version, regions): {e}"),
        })?;
        found.extend(images.into_iter().map(|i| (i, url.clone())));
    }
    let mut files = Vec::new();
    for (image, origin) in found {
        let what = format!("AMI {} (from {origin})", image.name);
        if !source.allowed_owners.contains(&image.owner) {
            return Err(FetchError::Refused {
                what,
                message: format!(
                    "its owner account {} is not in [ami] allowed_owners ({}); add the account only if site policy allows its images",
                    image.owner,
                    source.allowed_owners.join(", ")
                ),
            });
        }
        validate_repository(&format!("ami-descriptor/{}", image.name)).map_err(|e| FetchError::Upstream { what: what.clone(), message: e.to_string() })?;
        let mut text = serde_json::to_string_pretty(&image).expect("descriptors serialize");
        text.push('\n');
        files.push(LockedFile {
            kind: ArtifactKind::AmiDescriptor,
            name: image.name.clone(),
            version: image.version.clone(),
            platform: Some(image.architecture.clone()),
            url: origin,
            sha256: Digest::of(text.as_bytes()),
            size: Some(text.len() as u64),
            file_name: format!("{}.json", image.name),
            media_type: "application/json".into(),
            verified_by: "inline".into(),
            annotations: BTreeMap::from([("vnd.airlock.ami.owner".to_string(), image.owner.clone())]),
            inline: Some(text),
        });
    }
    Ok(files)
}
