//! JetBrains' products API, from stored `jetbrains-ide` artifacts:
//! `/products/releases?code=…` (keyed by product code), `/products` and `/products.json`
//! (what Gateway's `productsInfoUrl` reads), and the archives with their checksums under
//! `/jetbrains/{CODE}/{version}/{platform}/{file}[.sha256]`, which every link points at.
//!
//! Conventions (docs/artifact-conventions.md): the product code comes from
//! `vnd.airlock.jetbrains.product-code`, else the archive's `product-info.json`, else the
//! artifact name (a known product name such as `goland`, or the code itself); the platform
//! is the products API's download key (`linux`, `linuxARM64`, `mac`, `macM1`, `windows`).

use std::collections::BTreeMap;

use airlock_bundle::ArtifactKind;
use serde_json::{json, Value};

use super::catalog::{self, StoredFile};
use super::http::{compare_versions, seg, AdapterError, Origin, Reply, Req, Result};
use crate::serve::AppState;

pub const PRODUCT_CODE: &str = "vnd.airlock.jetbrains.product-code";
pub const BUILD: &str = "vnd.airlock.jetbrains.build";
pub const RELEASE_TYPE: &str = "vnd.airlock.jetbrains.type";
pub const RELEASE_DATE: &str = "vnd.airlock.jetbrains.date";

/// Product codes and the names the bundler gives their repositories.
const PRODUCTS: &[(&str, &str, &str)] = &[
    ("IIU", "intellij-idea-ultimate", "IntelliJ IDEA Ultimate"),
    ("IIC", "intellij-idea-community", "IntelliJ IDEA Community Edition"),
    ("GO", "goland", "GoLand"),
    ("PCP", "pycharm-professional", "PyCharm Professional Edition"),
    ("PCC", "pycharm-community", "PyCharm Community Edition"),
    ("WS", "webstorm", "WebStorm"),
    ("PS", "phpstorm", "PhpStorm"),
    ("RM", "rubymine", "RubyMine"),
    ("CL", "clion", "CLion"),
    ("RD", "rider", "Rider"),
    ("RR", "rustrover", "RustRover"),
    ("DG", "datagrip", "DataGrip"),
    ("GW", "gateway", "JetBrains Gateway"),
];

fn product_name(code: &str) -> String {
    PRODUCTS.iter().find(|(c, _, _)| *c == code).map_or_else(|| code.to_string(), |(_, _, name)| name.to_string())
}

/// One stored IDE archive.
struct Ide {
    file: StoredFile,
    code: String,
    platform: String,
    build: Option<String>,
    release_type: String,
    date: String,
}

fn code_of(state: &AppState, file: &StoredFile) -> String {
    if let Some(code) = file.annotation(PRODUCT_CODE) {
        return code.to_ascii_uppercase();
    }
    if let Some(code) = catalog::json_in_archive(state, file, "product-info.json").and_then(|info| info["productCode"].as_str().map(str::to_string)) {
        return code.to_ascii_uppercase();
    }
    let name = file.name.to_ascii_lowercase();
    PRODUCTS
        .iter()
        .find(|(_, repo_name, _)| *repo_name == name)
        .map_or_else(|| name.to_ascii_uppercase(), |(code, _, _)| code.to_string())
}

fn load(state: &AppState) -> Result<Vec<Ide>> {
    let mut ides = Vec::new();
    for file in catalog::files(state, ArtifactKind::JetbrainsIde)? {
        let Some(platform) = file.platform.clone().filter(|p| !p.is_empty()) else {
            tracing::warn!(artifact = %file.reference(), "jetbrains-ide artifact without a platform left out");
            continue;
        };
        let code = code_of(state, &file);
        let build = file.annotation(BUILD).map(str::to_string).or_else(|| {
            catalog::json_in_archive(state, &file, "product-info.json").and_then(|info| info["buildNumber"].as_str().map(str::to_string))
        });
        let release_type = file.annotation(RELEASE_TYPE).unwrap_or("release").to_string();
        let date = file.annotation(RELEASE_DATE).map(str::to_string).unwrap_or_else(|| file.imported.chars().take(10).collect());
        ides.push(Ide { file, code, platform, build, release_type, date });
    }
    Ok(ides)
}

/// Releases of one product, newest first, each with its downloads by platform.
fn releases(origin: &Origin, ides: &[&Ide]) -> Vec<Value> {
    let mut by_version: BTreeMap<&str, Vec<&Ide>> = BTreeMap::new();
    for ide in ides {
        by_version.entry(ide.file.version.as_str()).or_default().push(ide);
    }
    let mut versions: Vec<&str> = by_version.keys().copied().collect();
    versions.sort_by(|a, b| compare_versions(b, a));
    versions
        .into_iter()
        .map(|version| {
            let builds = &by_version[version];
            let first = builds[0];
            let mut downloads = serde_json::Map::new();
            for ide in builds {
                let path = download_path(ide);
                downloads.insert(
                    ide.platform.clone(),
                    json!({ "link": origin.link(&path), "size": ide.file.size, "checksumLink": origin.link(&format!("{path}.sha256")) }),
                );
            }
            let major: Vec<&str> = version.split('.').take(2).collect();
            json!({
                "date": first.date,
                "type": first.release_type,
                "downloads": downloads,
                "patches": {},
                "notesLink": null,
                "licenseRequired": true,
                "version": version,
                "majorVersion": major.join("."),
                "build": builds.iter().find_map(|i| i.build.clone()),
                "whatsnew": null,
                "uninstallFeedbackLinks": null,
                "printableReleaseType": null,
            })
        })
        .collect()
}

fn download_path(ide: &Ide) -> String {
    format!("/jetbrains/{}/{}/{}/{}", seg(&ide.code), seg(&ide.file.version), seg(&ide.platform), seg(&ide.file.file_name))
}

/// Filters shared by both listings: `latest`, `type`/`release.type`, `major_version`, `build`.
fn filter<'a>(req: &Req, ides: Vec<&'a Ide>) -> Vec<&'a Ide> {
    let types: Option<Vec<String>> = req.param("type").or_else(|| req.param("release.type")).map(|t| t.split(',').map(|s| s.trim().to_lowercase()).collect());
    let major = req.param("major_version");
    let build = req.param("build");
    let mut ides: Vec<&Ide> = ides
        .into_iter()
        .filter(|i| types.as_ref().is_none_or(|t| t.contains(&i.release_type.to_lowercase())))
        .filter(|i| major.as_ref().is_none_or(|m| i.file.version == *m || i.file.version.starts_with(&format!("{m}."))))
        .filter(|i| build.as_ref().is_none_or(|b| i.build.as_deref() == Some(b.as_str())))
        .collect();
    if req.param("latest").is_some_and(|v| v == "true") {
        let newest = ides.iter().map(|i| i.file.version.as_str()).max_by(|a, b| compare_versions(a, b)).map(str::to_string);
        ides.retain(|i| Some(&i.file.version) == newest.as_ref());
    }
    ides
}

fn codes_asked(req: &Req) -> Option<Vec<String>> {
    req.param("code").map(|c| c.split(',').map(|s| s.trim().to_ascii_uppercase()).filter(|s| !s.is_empty()).collect())
}

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    let path = req.path.trim_end_matches('/');
    let route = match path {
        "/products/releases" => Route::Releases,
        "/products" | "/products.json" => Route::Products,
        _ if path.starts_with("/jetbrains/") => Route::Download,
        _ => return Ok(None),
    };
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed("the products API is read-only".into()));
    }
    let ides = load(state)?;
    let reply = match route {
        Route::Releases => {
            let codes = codes_asked(req).ok_or_else(|| AdapterError::BadRequest("code is required, e.g. ?code=GO".into()))?;
            let mut out = serde_json::Map::new();
            for code in codes {
                let of_code: Vec<&Ide> = ides.iter().filter(|i| i.code == code).collect();
                if of_code.is_empty() {
                    continue;
                }
                out.insert(code, json!(releases(&req.origin, &filter(req, of_code))));
            }
            Reply::json(Value::Object(out))
        }
        Route::Products => {
            let codes = codes_asked(req);
            let mut all: Vec<&str> = ides.iter().map(|i| i.code.as_str()).collect();
            all.sort();
            all.dedup();
            let products: Vec<Value> = all
                .into_iter()
                .filter(|c| codes.as_ref().is_none_or(|list| list.iter().any(|x| x == c)))
                .map(|code| {
                    let of_code: Vec<&Ide> = ides.iter().filter(|i| i.code == code).collect();
                    json!({
                        "code": code,
                        "name": product_name(code),
                        "releases": releases(&req.origin, &filter(req, of_code)),
                    })
                })
                .collect();
            Reply::json(json!(products))
        }
        Route::Download => download(&ides, req)?,
    };
    Ok(Some(reply))
}

enum Route {
    Releases,
    Products,
    Download,
}

/// `/jetbrains/{CODE}/{version}/{platform}/{file}`, and `.sha256` beside it.
fn download(ides: &[Ide], req: &Req) -> Result<Reply> {
    let segments = req.segments();
    let [_, code, version, platform, file_name] = segments.as_slice() else {
        return Err(AdapterError::not_found(format!("no JetBrains download at {}", req.path)));
    };
    let (wanted, checksum) = match file_name.strip_suffix(".sha256") {
        Some(archive) => (archive, true),
        None => (file_name.as_str(), false),
    };
    let ide = ides
        .iter()
        .find(|i| i.code.eq_ignore_ascii_case(code) && i.file.version == *version && i.platform == *platform && i.file.file_name == wanted)
        .ok_or_else(|| AdapterError::not_found(format!("{code} {version} has no {platform} download named {wanted}")))?;
    Ok(if checksum {
        checksum_reply(&ide.file)
    } else {
        Reply::file(ide.file.clone())
    })
}

/// JetBrains' checksum file: `<sha256> *<filename>` (sha256sum's binary mode).
pub fn checksum_reply(file: &StoredFile) -> Reply {
    Reply::Text { content_type: "text/plain; charset=utf-8", body: format!("{} *{}\n", file.layer.hex(), file.file_name) }
}
