//! The extension gallery VS Code and code-server speak (Open VSX's `/vscode/…` adapter, and
//! the same under the Marketplace's paths): `extensionquery`, the `latest` lookups, asset
//! downloads, `vspackage` and the item page.
//!
//! Client rules this follows (PROTOCOLS.md): asset URLs are `{assetUri}/{assetType}` whatever
//! the query string, so the target platform travels in the asset path; `flags` is a string;
//! the Manifest asset is always listed; `extensionId`, `assetUri`, `targetPlatform` and the
//! Engine property are always present, whatever the request's flags ask for.

use axum::http::Method;
use serde_json::{json, Value};

use super::extensions::{self, Build, ASSET_VSIX, UNIVERSAL};
use super::http::{epoch_millis, seg, AdapterError, Origin, Reply, Req, Result};
use crate::serve::AppState;

/// Where a face serves the gallery.
pub struct Paths {
    /// The `serviceUrl` path (`extensionquery` and `latest` live below it).
    pub service: &'static str,
    pub item: &'static str,
    pub asset: &'static str,
}

pub const OPEN_VSX: Paths = Paths { service: "/vscode/gallery", item: "/vscode/item", asset: "/vscode/asset" };
pub const MARKETPLACE: Paths = Paths { service: "/_apis/public/gallery", item: "/items", asset: "/vscode/asset" };

/// Query flags (the Marketplace's `ExtensionQueryFlags`).
const INCLUDE_VERSIONS: u64 = 0x1;
const INCLUDE_LATEST_VERSION_ONLY: u64 = 0x200;

/// Filter types.
const TAG: u64 = 1;
const EXTENSION_ID: u64 = 4;
const CATEGORY: u64 = 5;
const EXTENSION_NAME: u64 = 7;
const SEARCH_TEXT: u64 = 10;

const MAX_PAGE_SIZE: usize = 1000;

pub fn handle(state: &AppState, req: &Req, paths: &Paths) -> Result<Option<Reply>> {
    if req.path.strip_prefix(paths.service).is_some_and(|r| r.is_empty() || r.starts_with('/')) {
        let segments: Vec<String> = req.segments().into_iter().skip(segment_count(paths.service)).collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        return match s.as_slice() {
            ["extensionquery"] => query(state, req, paths).map(Some),
            [publisher, name, "latest"] | ["vscode", publisher, name, "latest"] => {
                read_only(req)?;
                latest(state, req, paths, publisher, name).map(Some)
            }
            ["publishers", publisher, "vsextensions", name, version, "vspackage"] => {
                read_only(req)?;
                let platform = req.param("targetPlatform");
                download(state, publisher, name, version, platform.as_deref(), true).map(Some)
            }
            _ => Err(AdapterError::not_found(format!("no gallery endpoint at {}", req.path))),
        };
    }
    if req.path.starts_with(&format!("{}/", paths.asset)) {
        read_only(req)?;
        let segments: Vec<String> = req.segments().into_iter().skip(segment_count(paths.asset)).collect();
        return asset(state, req, &segments).map(Some);
    }
    if req.path == paths.item {
        read_only(req)?;
        return item(state, req, paths).map(Some);
    }
    Ok(None)
}

fn segment_count(path: &str) -> usize {
    path.split('/').filter(|s| !s.is_empty()).count()
}

fn read_only(req: &Req) -> Result<()> {
    if req.is_read() {
        Ok(())
    } else {
        Err(AdapterError::MethodNotAllowed(format!("{} is not allowed here", req.method)))
    }
}

/// `extensionquery`: POST with a JSON body, or GET with the same JSON (or plain search
/// text) in `q`.
fn query(state: &AppState, req: &Req, paths: &Paths) -> Result<Reply> {
    let body: Value = match req.method {
        Method::POST => serde_json::from_slice(&req.body)
            .map_err(|e| AdapterError::BadRequest(format!("the extension query is not valid JSON: {e}")))?,
        Method::GET | Method::HEAD => match req.param("q") {
            Some(q) => serde_json::from_str::<Value>(&q).ok().filter(|v| v.is_object()).unwrap_or_else(|| {
                json!({ "filters": [{ "criteria": [{ "filterType": SEARCH_TEXT, "value": q }] }], "flags": INCLUDE_LATEST_VERSION_ONLY })
            }),
            None => json!({ "filters": [{}] }),
        },
        _ => return Err(AdapterError::MethodNotAllowed("extensionquery takes GET or POST".into())),
    };
    let flags = number(&body["flags"]).unwrap_or(0);
    let builds = extensions::load(state)?;
    let groups = extensions::grouped(&builds);
    let filters = body["filters"].as_array().cloned().filter(|f| !f.is_empty()).unwrap_or_else(|| vec![json!({})]);
    let mut results = Vec::new();
    for filter in &filters {
        let criteria: Vec<(u64, String)> = filter["criteria"]
            .as_array()
            .map(|list| list.iter().filter_map(|c| Some((number(&c["filterType"])?, c["value"].as_str().unwrap_or("").to_string()))).collect())
            .unwrap_or_default();
        let mut matched: Vec<&Vec<&Build>> = groups.iter().filter(|group| matches(group, &criteria)).collect();
        sort(&mut matched, number(&filter["sortBy"]).unwrap_or(0), number(&filter["sortOrder"]).unwrap_or(0));
        let total = matched.len();
        let size = number(&filter["pageSize"]).map_or(50, |n| n as usize).clamp(1, MAX_PAGE_SIZE);
        let page = number(&filter["pageNumber"]).unwrap_or(1).max(1) as usize;
        let extensions: Vec<Value> = matched
            .into_iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(|group| {
                let versions = if flags & INCLUDE_LATEST_VERSION_ONLY == 0 && flags & INCLUDE_VERSIONS != 0 {
                    group.clone()
                } else {
                    extensions::latest_per_platform(group)
                };
                extension_json(&req.origin, paths, group, &versions)
            })
            .collect();
        results.push(json!({
            "extensions": extensions,
            "pagingToken": null,
            "resultMetadata": [{ "metadataType": "ResultCount", "metadataItems": [{ "name": "TotalCount", "count": total }] }],
        }));
    }
    Ok(Reply::json(json!({ "results": results })))
}

/// Numbers arrive as numbers or as strings, depending on the client.
fn number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Criteria of one type are alternatives (several names in one query); different types
/// must all hold. Target (8) and exclude-flags (12) filter nothing here: every extension
/// is a VS Code one and none is unpublished.
fn matches(group: &[&Build], criteria: &[(u64, String)]) -> bool {
    let head = group[0];
    let of_type = |t: u64| criteria.iter().filter(move |(ty, _)| *ty == t).map(|(_, v)| v.to_lowercase());
    let any_of = |t: u64, test: &dyn Fn(&str) -> bool| {
        let mut values = of_type(t).peekable();
        values.peek().is_none() || values.any(|v| test(&v))
    };
    let lower = |list: Vec<String>| list.into_iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    let (tags, categories) = (lower(head.keywords()), lower(head.categories()));
    any_of(EXTENSION_NAME, &|v| v == head.id)
        && any_of(EXTENSION_ID, &|v| v == head.extension_uuid())
        && any_of(TAG, &|v| tags.iter().any(|t| t == v))
        && any_of(CATEGORY, &|v| categories.iter().any(|c| c == v))
        && of_type(SEARCH_TEXT).all(|text| text_matches(head, &tags, &categories, &text))
}

/// Search text as VS Code writes it: words (all must appear), `tag:x`, `category:"x y"`,
/// and `@…` view modifiers (ignored).
fn text_matches(build: &Build, tags: &[String], categories: &[String], text: &str) -> bool {
    let haystack = format!("{} {} {} {}", build.id, build.display_name(), build.description(), tags.join(" ")).to_lowercase();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (token, after) = next_token(rest);
        rest = after.trim_start();
        let ok = if let Some(tag) = token.strip_prefix("tag:") {
            tags.iter().any(|t| t == tag)
        } else if let Some(category) = token.strip_prefix("category:") {
            categories.iter().any(|c| c == category)
        } else if token.starts_with('@') || token.is_empty() {
            true
        } else {
            haystack.contains(&token)
        };
        if !ok {
            return false;
        }
    }
    true
}

/// One whitespace-separated token, with `"quoted parts"` kept whole and unquoted.
fn next_token(text: &str) -> (String, &str) {
    let mut token = String::new();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (token, &text[i..]),
            c => token.push(c),
        }
    }
    (token, "")
}

fn sort(groups: &mut [&Vec<&Build>], sort_by: u64, sort_order: u64) {
    let newest = |g: &Vec<&Build>| g.iter().map(|b| epoch_millis(&b.file.imported)).max().unwrap_or(0);
    match sort_by {
        // Title.
        2 => groups.sort_by_key(|g| g[0].display_name().to_lowercase()),
        // Last updated, published date.
        1 | 10 => groups.sort_by_key(|g| std::cmp::Reverse(newest(g))),
        // Relevance, installs, ratings: no statistics here, so a stable order by id.
        _ => {}
    }
    // 1 ascending, 2 descending; 0 is each sort's natural order.
    if sort_order == 2 && sort_by == 2 || sort_order == 1 && matches!(sort_by, 1 | 10) {
        groups.reverse();
    }
}

/// `assetUri`: the target platform is part of the path, so asset URLs built by appending
/// `/{assetType}` name the right build whatever query string the client adds.
fn asset_uri(origin: &Origin, paths: &Paths, build: &Build) -> String {
    let platform = if build.platform == UNIVERSAL { String::new() } else { format!("/{}", seg(&build.platform)) };
    origin.link(&format!("{}/{}/{}/{}{platform}", paths.asset, seg(&build.publisher), seg(&build.name), seg(&build.version)))
}

fn extension_json(origin: &Origin, paths: &Paths, group: &[&Build], versions: &[&Build]) -> Value {
    let head = group[0];
    let times: Vec<&str> = group.iter().map(|b| b.file.imported.as_str()).collect();
    let first = times.iter().min().copied().unwrap_or_default();
    let last = times.iter().max().copied().unwrap_or_default();
    let flags = if head.preview() { "validated, public, preview" } else { "validated, public" };
    json!({
        "extensionId": head.extension_uuid(),
        "extensionName": head.name,
        "displayName": head.display_name(),
        "shortDescription": head.description(),
        "publisher": {
            "publisherId": head.publisher_uuid(),
            "publisherName": head.publisher,
            "displayName": head.publisher,
            "domain": null,
            "isDomainVerified": false,
        },
        "versions": versions.iter().map(|b| version_json(origin, paths, b)).collect::<Vec<_>>(),
        "statistics": [
            { "statisticName": "install", "value": 0.0 },
            { "statisticName": "averagerating", "value": 0.0 },
            { "statisticName": "ratingcount", "value": 0.0 },
        ],
        "tags": head.keywords(),
        "categories": head.categories(),
        "releaseDate": first,
        "publishedDate": first,
        "lastUpdated": last,
        "flags": flags,
        "installationTargets": [{ "target": "Microsoft.VisualStudio.Code", "targetVersion": "" }],
        "deploymentType": 0,
    })
}

fn version_json(origin: &Origin, paths: &Paths, build: &Build) -> Value {
    let uri = asset_uri(origin, paths, build);
    let files: Vec<Value> = build
        .asset_types()
        .into_iter()
        .map(|t| json!({ "assetType": t, "source": format!("{uri}/{t}") }))
        .collect();
    let mut properties = vec![
        ("Microsoft.VisualStudio.Code.Engine", build.engine().to_string()),
        ("Microsoft.VisualStudio.Code.ExtensionDependencies", build.dependencies().join(",")),
        ("Microsoft.VisualStudio.Code.ExtensionPack", build.pack().join(",")),
        ("Microsoft.VisualStudio.Code.LocalizedLanguages", String::new()),
    ];
    let kinds = build.extension_kind();
    if !kinds.is_empty() {
        properties.push(("Microsoft.VisualStudio.Code.ExtensionKind", kinds.join(",")));
    }
    if build.vsix.pre_release {
        properties.push(("Microsoft.VisualStudio.Code.PreRelease", "true".into()));
    }
    if let Some(repository) = build.repository() {
        properties.push(("Microsoft.VisualStudio.Services.Links.Source", repository));
    }
    json!({
        "version": build.version,
        "targetPlatform": build.platform,
        "flags": "validated",
        "lastUpdated": build.file.imported,
        "assetUri": uri,
        "fallbackAssetUri": uri,
        "files": files,
        "properties": properties.into_iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
    })
}

fn unknown(publisher: &str, name: &str) -> AdapterError {
    AdapterError::not_found(format!("Extension not found: {publisher}.{name}"))
}

/// `…/{publisher}/{name}/latest`: one extension, the newest build per platform.
fn latest(state: &AppState, req: &Req, paths: &Paths, publisher: &str, name: &str) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let group = extensions::of(&builds, publisher, name);
    if group.is_empty() {
        return Err(unknown(publisher, name));
    }
    let versions = extensions::latest_per_platform(&group);
    Ok(Reply::json(extension_json(&req.origin, paths, &group, &versions)))
}

/// `{asset}/{publisher}/{name}/{version}[/{platform}]/{assetType}[/{resource path}]`.
fn asset(state: &AppState, req: &Req, segments: &[String]) -> Result<Reply> {
    let [publisher, name, version, next, rest @ ..] = segments else {
        return Err(AdapterError::not_found(format!("no asset at {}", req.path)));
    };
    // Asset types all start with `Microsoft.`; anything else is our platform segment.
    let (path_platform, asset_type, resource) = if next.starts_with("Microsoft.") {
        (None, next.as_str(), rest)
    } else {
        let Some((asset_type, resource)) = rest.split_first() else {
            return Err(AdapterError::not_found(format!("no asset type in {}", req.path)));
        };
        (Some(next.as_str()), asset_type.as_str(), resource)
    };
    let resource = (!resource.is_empty()).then(|| resource.join("/"));
    let builds = extensions::load(state)?;
    let group = extensions::of(&builds, publisher, name);
    if group.is_empty() {
        return Err(unknown(publisher, name));
    }
    let build = match path_platform {
        Some(platform) => extensions::pick(&group, Some(version), Some(platform)),
        // A platform only in the query is a preference: fall back to the universal build.
        None => {
            let wanted = req.param("targetPlatform");
            wanted.as_deref().and_then(|p| extensions::pick(&group, Some(version), Some(p))).or_else(|| extensions::pick(&group, Some(version), None))
        }
    }
    .ok_or_else(|| {
        AdapterError::not_found(format!("{publisher}.{name} has no version {version}{}", path_platform.map(|p| format!(" for {p}")).unwrap_or_default()))
    })?;
    extensions::asset(state, build, asset_type, resource.as_deref())
}

/// The VSIX of a version, served directly (clients have failed on redirects to blob stores).
fn download(state: &AppState, publisher: &str, name: &str, version: &str, platform: Option<&str>, fallback: bool) -> Result<Reply> {
    let builds = extensions::load(state)?;
    let group = extensions::of(&builds, publisher, name);
    if group.is_empty() {
        return Err(unknown(publisher, name));
    }
    let build = platform
        .and_then(|p| extensions::pick(&group, Some(version), Some(p)))
        .or_else(|| if fallback || platform.is_none() { extensions::pick(&group, Some(version), None) } else { None })
        .ok_or_else(|| AdapterError::not_found(format!("{publisher}.{name} has no version {version}")))?;
    extensions::asset(state, build, ASSET_VSIX, None)
}

/// `item?itemName=publisher.name`: a small page about the extension (upstream redirects to
/// its web site, which does not exist here).
fn item(state: &AppState, req: &Req, paths: &Paths) -> Result<Reply> {
    let item = req.param("itemName").ok_or_else(|| AdapterError::BadRequest("itemName is required (publisher.name)".into()))?;
    let (publisher, name) = item.split_once('.').ok_or_else(|| AdapterError::BadRequest(format!("itemName `{item}` is not publisher.name")))?;
    let builds = extensions::load(state)?;
    let group = extensions::of(&builds, publisher, name);
    let Some(head) = group.first() else {
        return Err(unknown(publisher, name));
    };
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut rows = String::new();
    for build in &group {
        let link = format!("{}/{ASSET_VSIX}", asset_uri(&req.origin, paths, build));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a></td></tr>\n",
            escape(&build.version),
            escape(&build.platform),
            escape(&link),
            escape(&build.vsix_file_name())
        ));
    }
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\n<h1>{title}</h1>\n<p>{id} — {description}</p>\n<table><tr><th>version</th><th>platform</th><th>download</th></tr>\n{rows}</table>\n</body></html>\n",
        title = escape(head.display_name()),
        id = escape(&head.id),
        description = escape(head.description()),
    );
    Ok(Reply::Text { content_type: "text/html; charset=utf-8", body })
}

#[cfg(test)]
mod tests {
    use super::next_token;

    #[test]
    fn search_tokens_keep_quoted_parts() {
        assert_eq!(next_token("category:\"Programming Languages\" go"), ("category:Programming Languages".to_string(), " go"));
        assert_eq!(next_token("python"), ("python".to_string(), ""));
    }
}
