//! The PyPI simple repository API: the PEP 691 JSON model (which the bundler reads from an
//! upstream index and the mirror writes) and its PEP 503 HTML rendering, with `#sha256=`
//! links, `data-requires-python`, `data-yanked` (PEP 592) and `data-core-metadata` (PEP 714).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const JSON_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+json";
pub const HTML_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+html";
/// What a client that speaks both asks for, as pip and uv do.
pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
pub const API_VERSION: &str = "1.1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "api-version")]
    pub api_version: String,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            api_version: API_VERSION.into(),
        }
    }
}

/// `GET /simple/`: every project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectList {
    pub meta: Meta,
    pub projects: Vec<ProjectName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectName {
    pub name: String,
}

/// `GET /simple/{project}/`: the project's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectPage {
    pub meta: Meta,
    pub name: String,
    pub files: Vec<ProjectFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// A flag that is either a boolean or carries a value (PEP 592 yank reason, PEP 714 hashes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Flag<T> {
    Bool(bool),
    Value(T),
}

impl<T> Default for Flag<T> {
    fn default() -> Self {
        Flag::Bool(false)
    }
}

impl<T> Flag<T> {
    pub fn is_set(&self) -> bool {
        !matches!(self, Flag::Bool(false))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectFile {
    pub filename: String,
    pub url: String,
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
    #[serde(
        rename = "requires-python",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub requires_python: Option<String>,
    /// `true`, or the reason as text.
    #[serde(default, skip_serializing_if = "is_unset")]
    pub yanked: Flag<String>,
    /// PEP 714: the core metadata file at `{url}.metadata`, with its hashes.
    #[serde(rename = "core-metadata", default, skip_serializing_if = "is_unset")]
    pub core_metadata: Flag<BTreeMap<String, String>>,
    /// The PEP 691 name of the same, which older clients read.
    #[serde(
        rename = "dist-info-metadata",
        default,
        skip_serializing_if = "is_unset"
    )]
    pub dist_info_metadata: Flag<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

fn is_unset<T>(flag: &Flag<T>) -> bool {
    !flag.is_set()
}

impl ProjectFile {
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// The PEP 503 page of a project.
pub fn render_project_html(page: &ProjectPage) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{}\">\n    <title>Links for {}</title>\n  </head>\n  <body>\n    <h1>Links for {}</h1>\n",
        page.meta.api_version,
        escape_html(&page.name),
        escape_html(&page.name)
    );
    for file in &page.files {
        let mut href = file.url.clone();
        if let Some(sha) = file.sha256() {
            href = format!("{href}#sha256={sha}");
        }
        let mut attrs = format!("href=\"{}\"", escape_html(&href));
        if let Some(requires) = &file.requires_python {
            attrs.push_str(&format!(
                " data-requires-python=\"{}\"",
                escape_html(requires)
            ));
        }
        match &file.yanked {
            Flag::Bool(false) => {}
            Flag::Bool(true) => attrs.push_str(" data-yanked=\"\""),
            Flag::Value(reason) => {
                attrs.push_str(&format!(" data-yanked=\"{}\"", escape_html(reason)))
            }
        }
        if let Flag::Value(hashes) = &file.core_metadata {
            let value = hashes
                .iter()
                .next()
                .map(|(k, v)| format!("{k}={v}"))
                .unwrap_or_else(|| "true".into());
            attrs.push_str(&format!(
                " data-core-metadata=\"{value}\" data-dist-info-metadata=\"{value}\""
            ));
        }
        html.push_str(&format!(
            "    <a {attrs}>{}</a><br />\n",
            escape_html(&file.filename)
        ));
    }
    html.push_str("  </body>\n</html>\n");
    html
}

/// The PEP 503 root page.
pub fn render_list_html(list: &ProjectList) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{}\">\n    <title>Simple index</title>\n  </head>\n  <body>\n",
        list.meta.api_version
    );
    for project in &list.projects {
        let name = escape_html(&project.name);
        html.push_str(&format!("    <a href=\"{name}/\">{name}</a><br />\n"));
    }
    html.push_str("  </body>\n</html>\n");
    html
}

/// Which form a client asked for in `Accept` (PEP 691 content negotiation): JSON when it
/// ranks the JSON type at least as high as the HTML ones, else HTML (also for no `Accept`).
pub fn wants_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut json, mut html) = (0.0f32, 0.0f32);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            JSON_MEDIA_TYPE => json = json.max(q),
            HTML_MEDIA_TYPE | "text/html" | "*/*" => html = html.max(q),
            _ => {}
        }
    }
    json > 0.0 && json >= html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> ProjectPage {
        ProjectPage {
            meta: Meta::default(),
            name: "airlock-alpha".into(),
            files: vec![ProjectFile {
                filename: "airlock_alpha-1.0.0-py3-none-any.whl".into(),
                url: "../../files/abc/airlock_alpha-1.0.0-py3-none-any.whl".into(),
                hashes: BTreeMap::from([("sha256".into(), "abc".into())]),
                requires_python: Some(">=3.8".into()),
                yanked: Flag::Value("broken \"build\"".into()),
                core_metadata: Flag::Value(BTreeMap::from([("sha256".into(), "def".into())])),
                dist_info_metadata: Flag::Value(BTreeMap::from([("sha256".into(), "def".into())])),
                size: Some(10),
            }],
            versions: vec!["1.0.0".into()],
        }
    }

    #[test]
    fn the_json_form_round_trips_with_pep_691_names() {
        let text = serde_json::to_string(&page()).unwrap();
        assert!(
            text.contains("\"requires-python\":\">=3.8\"")
                && text.contains("\"core-metadata\":{\"sha256\":\"def\"}"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ProjectPage>(&text).unwrap(), page());
        let plain: ProjectFile = serde_json::from_str(
            r#"{"filename":"a-1.tar.gz","url":"a","hashes":{},"yanked":true}"#,
        )
        .unwrap();
        assert!(plain.yanked.is_set() && !plain.core_metadata.is_set());
    }

    #[test]
    fn the_html_form_carries_hash_requires_python_yank_and_metadata() {
        let html = render_project_html(&page());
        assert!(
            html.contains(
                "href=\"../../files/abc/airlock_alpha-1.0.0-py3-none-any.whl#sha256=abc\""
            ),
            "{html}"
        );
        assert!(html.contains("data-requires-python=\"&gt;=3.8\""), "{html}");
        assert!(
            html.contains("data-yanked=\"broken &quot;build&quot;\""),
            "{html}"
        );
        assert!(html.contains("data-core-metadata=\"sha256=def\""), "{html}");
    }

    #[test]
    fn content_negotiation_follows_the_quality_values() {
        assert!(wants_json(Some(ACCEPT)));
        assert!(wants_json(Some(JSON_MEDIA_TYPE)));
        assert!(!wants_json(Some("text/html")));
        assert!(!wants_json(None));
        assert!(!wants_json(Some(
            "application/vnd.pypi.simple.v1+json;q=0.1, text/html"
        )));
    }
}
