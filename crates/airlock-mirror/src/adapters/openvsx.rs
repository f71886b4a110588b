//! Open VSX's registry API (`/api/…`), the one `ovsx get` and the bundler use:
//! `/api/{ns}/{name}[/{targetPlatform}][/{version}]`, files under `…/file/{fileName}`,
//! `version-references`, the namespace listing, `/api/-/query` and `/api/-/search`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::extensions::{self, Build, TARGET_PLATFORMS, UNIVERSAL};
use super::http::{compare_versions, seg, AdapterError, Origin, Reply, Req, Result};
use crate::serve::AppState;

pub fn handle(state: &AppState, req: &Req) -> Result<Option<Reply>> {
    if !(req.path == "/api" || req.path.starts_with("/api/")) {
        return Ok(None);
    }
    if !req.is_read() {
        return Err(AdapterError::MethodNotAllowed("this mirror's registry API is read-only".into()));
    }
    let segments = req.segments();
    let s: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
    let is_platform = |p: &str| TARGET_PLATFORMS.contains(&p);
    let reply = match s.as_slice() {
        ["-", "query"] => query(state, req)?,
        ["-", "search"] => search(state, req)?,
        [namespace] => namespace_json(state, req, namespace)?,
        [ns, name] => metadata(state, req, ns, name, None, None)?,
        [ns, name, "version-references"] => references(state, req, ns, name, None)?,
        [ns, name, target, "version-references"] if is_platform(target) => references(state, req, ns, name, Some(target))?,
        [ns, name, target] if is_platform(target) => metadata(state, req, ns, name, Some(target), None)?,
        [ns, name, version] => metadata(state, req, ns, name, None, Some(version))?,
        [ns, name, target, version] if is_platform(target) => metadata(state, req, ns, name, Some(target), Some(version))?,
        [ns, name, version, "file", file_name] => file(state, ns, name, None, version, file_name)?,
        [ns, name, target, version, "file", file_name] if is_platform(target) => file(state, ns, name, Some(target), version, file_name)?,
        _ => return Err(AdapterError::not_found(format!("no registry API endpoint at {}", req.path))),
    };
    Ok(Some(reply))
}

fn not_found(ns: &str, name: &str) -> AdapterError {
    AdapterError::not_found(format!("Extension not found: {ns}.{name}"))
}

/// The builds of an extension, or Open VSX's 404.
fn builds_of(builds: &[Build], ns: &str, name: &str) -> Result<Vec<Build>> {
    let group: Vec<Build> = extensions::of(builds, ns, name).into_iter().cloned().collect();
    if group.is_empty() {
        return Err(not_found(ns, name));
    }
    Ok(group)
}

/// The build a metadata path names. An explicit target platform matches only that
/// platform's builds, as upstream does (clients ask again without it for the universal one).
fn select<'a>(group: &'a [Build], ns: &str, name: &str, target: Option<&str>, version: Option<&str>) -> Result<&'a Build> {
    let refs: Vec<&Build> = group.iter().filter(|b| target.is_none_or(|t| b.platform == t)).collect();
    let version = version.filter(|v| *v != "latest");
    extensions::pick(&refs, version, target).ok_or_else(|| {
        let what = match (target, version) {
            (Some(t), Some(v)) => format!("Extension not found: {ns}.{name} {v} ({t})"),
            (Some(t), None) => format!("Extension not found: {ns}.{name} ({t})"),
            (None, Some(v)) => format!("Extension not found: {ns}.{name} {v}"),
            (None, None) => format!("Extension not found: {ns}.{name}"),
        };
        AdapterError::not_found(what)
    })
}

/// `/api/{ns}/{name}[/{target}][/{version}]`.
fn metadata(state: &AppState, req: &Req, ns: &str, name: &str, target: Option<&str>, version: Option<&str>) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let group = builds_of(&builds, ns, name)?;
    let build = select(&group, ns, name, target, version)?;
    Ok(Reply::json(extension_json(&req.origin, &group, build, target)))
}

/// The path of a build's metadata; with the platform when the caller asked by platform or
/// the build is platform-specific.
fn metadata_path(build: &Build, version: &str, target: Option<&str>) -> String {
    let platform = target.map(str::to_string).or_else(|| (build.platform != UNIVERSAL).then(|| build.platform.clone()));
    match platform {
        Some(p) => format!("/api/{}/{}/{}/{}", seg(&build.publisher), seg(&build.name), seg(&p), seg(version)),
        None => format!("/api/{}/{}/{}", seg(&build.publisher), seg(&build.name), seg(version)),
    }
}

fn file_link(origin: &Origin, build: &Build, file_name: &str) -> String {
    origin.link(&format!("{}/file/{}", metadata_path(build, &build.version, None), seg(file_name)))
}

fn files_json(origin: &Origin, build: &Build) -> Value {
    let names = build.file_names();
    let key = |asset: &str| match asset {
        extensions::ASSET_VSIX => "download",
        extensions::ASSET_MANIFEST => "manifest",
        extensions::ASSET_DETAILS => "readme",
        extensions::ASSET_CHANGELOG => "changelog",
        extensions::ASSET_LICENSE => "license",
        extensions::ASSET_ICON => "icon",
        extensions::ASSET_VSIX_MANIFEST => "vsixmanifest",
        _ => "",
    };
    let mut files = serde_json::Map::new();
    for (asset, file_name) in &names {
        let k = key(asset);
        if !k.is_empty() {
            files.insert(k.to_string(), json!(file_link(origin, build, file_name)));
        }
    }
    files.insert("sha256".into(), json!(file_link(origin, build, &format!("{}.sha256", build.vsix_file_name()))));
    Value::Object(files)
}

fn references_json(origin: &Origin, list: &[String]) -> Vec<Value> {
    list.iter()
        .map(|id| {
            let (namespace, extension) = id.split_once('.').unwrap_or((id, ""));
            json!({ "namespace": namespace, "extension": extension, "url": origin.link(&format!("/api/{}/{}", seg(namespace), seg(extension))) })
        })
        .collect()
}

fn extension_json(origin: &Origin, group: &[Build], build: &Build, target: Option<&str>) -> Value {
    let newest = extensions::newest_version(&group.iter().collect::<Vec<_>>()).unwrap_or_default().to_string();
    let mut all_versions = serde_json::Map::new();
    all_versions.insert("latest".into(), json!(origin.link(&metadata_path(build, "latest", target))));
    let mut versions: Vec<&str> = group
        .iter()
        .filter(|b| target.is_none_or(|t| b.platform == t))
        .map(|b| b.version.as_str())
        .collect();
    versions.sort_by(|a, b| compare_versions(b, a));
    versions.dedup();
    for version in &versions {
        all_versions.insert(version.to_string(), json!(origin.link(&metadata_path(build, version, target))));
    }
    let package = &build.vsix.package;
    let platforms: Vec<&str> = group.iter().filter(|b| b.version == build.version).map(|b| b.platform.as_str()).collect();
    json!({
        "url": origin.link(&metadata_path(build, &build.version, target)),
        "namespaceUrl": origin.link(&format!("/api/{}", seg(&build.publisher))),
        "files": files_json(origin, build),
        "name": build.name,
        "namespace": build.publisher,
        "targetPlatform": build.platform,
        "allTargetPlatformVersions": [{ "version": build.version, "targetPlatforms": platforms }],
        "version": build.version,
        "preRelease": build.vsix.pre_release,
        "versionAlias": if build.version == newest { vec!["latest"] } else { Vec::new() },
        "timestamp": build.file.imported,
        "verified": false,
        "unrelatedPublisher": false,
        "namespaceAccess": "public",
        "publishedBy": { "loginName": build.publisher },
        "allVersions": all_versions,
        "displayName": build.display_name(),
        "description": build.description(),
        "engines": package["engines"].clone(),
        "categories": build.categories(),
        "tags": build.keywords(),
        "extensionKind": build.extension_kind(),
        "license": package["license"].clone(),
        "homepage": package["homepage"].clone(),
        "repository": build.repository(),
        "bugs": package["bugs"]["url"].as_str().or(package["bugs"].as_str()),
        "galleryColor": package["galleryBanner"]["color"].clone(),
        "galleryTheme": package["galleryBanner"]["theme"].clone(),
        "dependencies": references_json(origin, &build.dependencies()),
        "bundledExtensions": references_json(origin, &build.pack()),
        "downloadCount": 0,
        "reviewCount": 0,
    })
}

/// `/api/{ns}/{name}[/{target}]/version-references?size=&offset=`: every version and
/// platform, newest first.
fn references(state: &AppState, req: &Req, ns: &str, name: &str, target: Option<&str>) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let group = builds_of(&builds, ns, name)?;
    let all: Vec<&Build> = group.iter().filter(|b| target.is_none_or(|t| b.platform == t)).collect();
    let offset: usize = req.param("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size: usize = req.param("size").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 1000);
    let versions: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(size)
        .map(|b| {
            json!({
                "url": req.origin.link(&metadata_path(b, &b.version, None)),
                "files": files_json(&req.origin, b),
                "version": b.version,
                "targetPlatform": b.platform,
                "engines": b.vsix.package["engines"].clone(),
            })
        })
        .collect();
    Ok(Reply::json(json!({ "offset": offset, "totalSize": all.len(), "versions": versions })))
}

/// `…/file/{fileName}`: the VSIX (under its Open VSX name or the name it was carried
/// with), its `.sha256`, or one of its assets by the file name `files` gives.
fn file(state: &AppState, ns: &str, name: &str, target: Option<&str>, version: &str, file_name: &str) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let group = builds_of(&builds, ns, name)?;
    let from_name = file_name.strip_suffix(".sha256").unwrap_or(file_name);
    // `name-1.2.3@linux-x64.vsix` names its platform.
    let named_platform = from_name.strip_suffix(".vsix").and_then(|stem| stem.rsplit_once('@')).map(|(_, p)| p);
    let build = select(&group, ns, name, target.or(named_platform), Some(version))?;
    let not_found = || AdapterError::not_found(format!("{}.{} {} has no file {file_name}", build.publisher, build.name, build.version));
    let is_vsix = |n: &str| n.eq_ignore_ascii_case(&build.vsix_file_name()) || n == build.file.file_name;
    if let Some(vsix_name) = file_name.strip_suffix(".sha256") {
        if !is_vsix(vsix_name) {
            return Err(not_found());
        }
        return Ok(Reply::Text { content_type: "text/plain; charset=utf-8", body: build.file.layer.hex() });
    }
    if is_vsix(file_name) {
        return extensions::asset(state, build, extensions::ASSET_VSIX, None);
    }
    let by_name: BTreeMap<String, &str> = build.file_names().into_iter().map(|(asset, n)| (n, asset)).collect();
    match by_name.get(file_name) {
        Some(asset) => extensions::asset(state, build, asset, None),
        None => Err(not_found()),
    }
}

/// `/api/{ns}`: the namespace and its extensions.
fn namespace_json(state: &AppState, req: &Req, namespace: &str) -> Result<Reply> {
    if namespace == "-" {
        return Err(AdapterError::not_found("no registry API endpoint at /api/-"));
    }
    let builds = extensions::load(state)?;
    let lower = namespace.to_ascii_lowercase();
    let mut found = serde_json::Map::new();
    for build in builds.iter().filter(|b| b.publisher.to_ascii_lowercase() == lower) {
        found
            .entry(build.name.clone())
            .or_insert_with(|| json!(req.origin.link(&format!("/api/{}/{}", seg(&build.publisher), seg(&build.name)))));
    }
    if found.is_empty() {
        return Err(AdapterError::not_found(format!("Namespace not found: {namespace}")));
    }
    Ok(Reply::json(json!({ "name": namespace, "extensions": found, "verified": false, "access": "public" })))
}

/// `/api/-/query?extensionId=ns.name&extensionVersion=&targetPlatform=&includeAllVersions=`.
fn query(state: &AppState, req: &Req) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let id = req.param("extensionId").map(|s| s.to_ascii_lowercase());
    let ns = req.param("namespaceName").map(|s| s.to_ascii_lowercase());
    let name = req.param("extensionName").map(|s| s.to_ascii_lowercase());
    let version = req.param("extensionVersion");
    let target = req.param("targetPlatform");
    let all = req.param("includeAllVersions").is_some_and(|v| v == "true");
    let mut out = Vec::new();
    for group in extensions::grouped(&builds) {
        let head = group[0];
        let (head_ns, head_name) = head.id.split_once('.').unwrap_or((&head.id, ""));
        if id.as_ref().is_some_and(|id| *id != head.id)
            || ns.as_ref().is_some_and(|n| n != head_ns)
            || name.as_ref().is_some_and(|n| n != head_name)
        {
            continue;
        }
        let owned: Vec<Build> = group.iter().map(|b| (*b).clone()).collect();
        let candidates: Vec<&Build> = group
            .iter()
            .copied()
            .filter(|b| target.as_ref().is_none_or(|t| b.platform == *t))
            .filter(|b| version.as_ref().is_none_or(|v| b.version == *v))
            .collect();
        let chosen = if all { candidates } else { extensions::latest_per_platform(&candidates).into_iter().take(1).collect() };
        out.extend(chosen.into_iter().map(|b| extension_json(&req.origin, &owned, b, target.as_deref())));
    }
    Ok(Reply::json(json!({ "offset": 0, "totalSize": out.len(), "extensions": out })))
}

/// `/api/-/search?query=&category=&size=&offset=`: summaries, one per extension.
fn search(state: &AppState, req: &Req) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let text = req.param("query").unwrap_or_default().to_lowercase();
    let category = req.param("category").map(|c| c.to_lowercase());
    let target = req.param("targetPlatform");
    let offset: usize = req.param("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size: usize = req.param("size").and_then(|v| v.parse().ok()).unwrap_or(18).clamp(1, 1000);
    let mut matched = Vec::new();
    for group in extensions::grouped(&builds) {
        let candidates: Vec<&Build> = group.iter().copied().filter(|b| target.as_ref().is_none_or(|t| b.platform == *t)).collect();
        let Some(head) = candidates.first() else { continue };
        let haystack = format!("{} {} {} {}", head.id, head.display_name(), head.description(), head.keywords().join(" ")).to_lowercase();
        let in_category = category.as_ref().is_none_or(|c| head.categories().iter().any(|x| x.to_lowercase() == *c));
        if haystack.contains(&text) && in_category {
            matched.push(json!({
                "url": req.origin.link(&metadata_path(head, &head.version, None)),
                "files": files_json(&req.origin, head),
                "name": head.name,
                "namespace": head.publisher,
                "version": head.version,
                "timestamp": head.file.imported,
                "displayName": head.display_name(),
                "description": head.description(),
                "targetPlatform": head.platform,
            }));
        }
    }
    let total = matched.len();
    let page: Vec<Value> = matched.into_iter().skip(offset).take(size).collect();
    Ok(Reply::json(json!({ "offset": offset, "totalSize": total, "extensions": page })))
}
