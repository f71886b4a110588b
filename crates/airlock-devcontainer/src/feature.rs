//! Features: references (`ghcr.io/devcontainers/features/node:1`), `devcontainer-feature.json`,
//! the option environment `install.sh` sees, and the install order.

use std::collections::BTreeMap;
use std::fmt;

use jsonc_parser::JsonValue;

use crate::config::{read_feature_options, LifecycleCommand};
use crate::json::{self, Reader};
use crate::DevcontainerError;

/// Config media type of a feature's OCI manifest (features distribution spec).
pub const FEATURE_CONFIG_MEDIA_TYPE: &str = "application/vnd.devcontainers";
/// Media type of the one layer: a tar holding the feature's folder.
pub const FEATURE_LAYER_MEDIA_TYPE: &str = "application/vnd.devcontainers.layer.v1+tar";
/// The metadata file at the root of that tar.
pub const FEATURE_METADATA_FILE: &str = "devcontainer-feature.json";

/// A feature published to an OCI registry. Only this form is supported: local (`./x`) and
/// tarball URL features cannot be carried across the gap as artifacts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeatureRef {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    /// A tag (`1`, `latest` when omitted) or a digest (`sha256:…`).
    pub reference: String,
}

impl FeatureRef {
    /// Parses a feature id; the error says what is wrong and what to write instead.
    pub fn parse(id: &str) -> Result<FeatureRef, String> {
        if id.starts_with("./") || id.starts_with("../") || id.starts_with('/') {
            return Err(format!(
                "local feature `{id}` is not supported: publish it to an OCI registry (e.g. `devcontainer features publish`) and reference it as `registry/namespace/feature:version`"
            ));
        }
        if id.starts_with("https://") || id.starts_with("http://") {
            return Err(format!(
                "feature tarball URL `{id}` is not supported: publish the feature to an OCI registry and reference it as `registry/namespace/feature:version`"
            ));
        }
        let parsed = airlock_oci::Reference::parse(id).map_err(|e| {
            format!("`{id}` is not a feature reference like `ghcr.io/devcontainers/features/node:1` ({})", e.reason)
        })?;
        let reference = match (&parsed.digest, &parsed.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        };
        Ok(FeatureRef {
            registry: parsed.registry,
            repository: parsed.repository,
            reference,
        })
    }

    /// The repository without the registry host: the name the mirror serves it under.
    pub fn mirror_repository(&self) -> &str {
        &self.repository
    }

    /// `registry/repository` without version: the form `installsAfter` and
    /// `overrideFeatureInstallOrder` use.
    pub fn id(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether `reference` is a digest rather than a tag.
    pub fn is_digest(&self) -> bool {
        self.reference.starts_with("sha256:")
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = if self.is_digest() { '@' } else { ':' };
        write!(
            f,
            "{}/{}{separator}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// An option value as written in devcontainer.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureOptionValue {
    Bool(bool),
    String(String),
}

impl fmt::Display for FeatureOptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureOptionValue::Bool(b) => write!(f, "{b}"),
            FeatureOptionValue::String(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureOptionKind {
    Boolean,
    String,
}

/// One entry of a feature's `options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureOption {
    pub kind: FeatureOptionKind,
    pub default: Option<FeatureOptionValue>,
    /// `enum`: the only values allowed (empty: any).
    pub allowed: Vec<String>,
    /// `proposals`: suggestions only.
    pub proposals: Vec<String>,
    pub description: Option<String>,
}

/// A parsed `devcontainer-feature.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureMetadata {
    pub id: String,
    pub version: String,
    pub name: Option<String>,
    pub options: BTreeMap<String, FeatureOption>,
    pub container_env: BTreeMap<String, String>,
    pub depends_on: Vec<(FeatureRef, BTreeMap<String, FeatureOptionValue>)>,
    /// Feature ids without version.
    pub installs_after: Vec<String>,
    pub legacy_ids: Vec<String>,
    pub on_create_command: Option<LifecycleCommand>,
    pub update_content_command: Option<LifecycleCommand>,
    pub post_create_command: Option<LifecycleCommand>,
    pub post_start_command: Option<LifecycleCommand>,
    pub post_attach_command: Option<LifecycleCommand>,
    pub vscode_extensions: Vec<String>,
    /// Requests for more than an unprivileged container (`privileged: true`, `capAdd`,
    /// `securityOpt`, `mounts`, `init: true`, `entrypoint`): never honoured silently; the
    /// runner refuses the feature or reports it.
    pub refused: Vec<String>,
    /// Other properties present and not acted on.
    pub ignored: Vec<String>,
}

/// Parses a `devcontainer-feature.json`.
pub fn feature_metadata(json: &str) -> Result<FeatureMetadata, DevcontainerError> {
    feature_metadata_at(json, FEATURE_METADATA_FILE)
}

/// Like [`feature_metadata`], naming the file as `origin` in errors (e.g. the feature reference).
pub fn feature_metadata_at(json: &str, origin: &str) -> Result<FeatureMetadata, DevcontainerError> {
    let top = json::parse_object(json, origin)?;
    let r = Reader { origin };
    let mut meta = FeatureMetadata::default();
    let (mut id, mut version) = (None, None);
    for (key, value) in top {
        let key = key.into_owned();
        let k = key.as_str();
        match k {
            "id" => id = Some(r.string(k, value)?),
            "version" => version = Some(r.string(k, value)?),
            "name" => meta.name = Some(r.string(k, value)?),
            "options" => {
                for (name, option) in r.object(k, value)? {
                    let path = format!("options.{name}");
                    meta.options
                        .insert(name.into_owned(), read_option(&r, &path, option)?);
                }
            }
            "containerEnv" => meta.container_env = r.string_map(k, value)?,
            "dependsOn" => {
                for (dep, options) in r.object(k, value)? {
                    let path = format!("dependsOn.{dep}");
                    let reference = FeatureRef::parse(&dep).map_err(|m| r.invalid(&path, m))?;
                    meta.depends_on
                        .push((reference, read_feature_options(&r, &path, options)?));
                }
            }
            "installsAfter" => meta.installs_after = r.strings(k, value)?,
            "legacyIds" => meta.legacy_ids = r.strings(k, value)?,
            "onCreateCommand" => {
                meta.on_create_command = Some(LifecycleCommand::read(&r, k, value, false)?)
            }
            "updateContentCommand" => {
                meta.update_content_command = Some(LifecycleCommand::read(&r, k, value, false)?)
            }
            "postCreateCommand" => {
                meta.post_create_command = Some(LifecycleCommand::read(&r, k, value, false)?)
            }
            "postStartCommand" => {
                meta.post_start_command = Some(LifecycleCommand::read(&r, k, value, false)?)
            }
            "postAttachCommand" => {
                meta.post_attach_command = Some(LifecycleCommand::read(&r, k, value, false)?)
            }
            "customizations" => {
                for (tool, v) in r.object(k, value)? {
                    let tool_path = format!("customizations.{tool}");
                    if tool != "vscode" {
                        meta.ignored.push(tool_path);
                        continue;
                    }
                    for (key, v) in r.object(&tool_path, v)? {
                        let property = format!("{tool_path}.{key}");
                        match key.as_ref() {
                            "extensions" => meta.vscode_extensions = r.strings(&property, v)?,
                            _ => meta.ignored.push(property),
                        }
                    }
                }
            }
            "privileged" | "init" => {
                if r.boolean(k, value)? {
                    meta.refused.push(k.to_string());
                }
            }
            "capAdd" | "securityOpt" | "mounts" => {
                let JsonValue::Array(items) = value else {
                    return Err(r.wrong(k, "an array", &value));
                };
                if !items.is_empty() {
                    meta.refused.push(k.to_string());
                }
            }
            "entrypoint" => {
                r.string(k, value)?;
                meta.refused.push(k.to_string());
            }
            _ => meta.ignored.push(key),
        }
    }
    meta.id = id.ok_or_else(|| r.invalid("id", "missing: a feature must name its `id`"))?;
    meta.version = version.ok_or_else(|| {
        r.invalid(
            "version",
            "missing: a feature must carry its semantic `version`",
        )
    })?;
    Ok(meta)
}

fn read_option(
    r: &Reader<'_>,
    path: &str,
    value: JsonValue<'_>,
) -> Result<FeatureOption, DevcontainerError> {
    let mut object = r.object(path, value)?;
    let kind = match object.take("type") {
        Some(JsonValue::String(t)) if t == "boolean" => FeatureOptionKind::Boolean,
        Some(JsonValue::String(t)) if t == "string" => FeatureOptionKind::String,
        Some(JsonValue::String(t)) => {
            return Err(r.invalid(
                &format!("{path}.type"),
                format!("`{t}` is not `string` or `boolean`"),
            ))
        }
        Some(other) => return Err(r.wrong(&format!("{path}.type"), "a string", &other)),
        None => {
            return Err(r.invalid(
                &format!("{path}.type"),
                "missing: an option is `string` or `boolean`",
            ))
        }
    };
    let mut option = FeatureOption {
        kind,
        default: None,
        allowed: Vec::new(),
        proposals: Vec::new(),
        description: None,
    };
    for (key, v) in object {
        let property = format!("{path}.{key}");
        match key.as_ref() {
            "default" => {
                option.default = Some(match (kind, v) {
                    (FeatureOptionKind::Boolean, JsonValue::Boolean(b)) => {
                        FeatureOptionValue::Bool(b)
                    }
                    (FeatureOptionKind::String, JsonValue::String(s)) => {
                        FeatureOptionValue::String(s.into_owned())
                    }
                    (FeatureOptionKind::Boolean, other) => {
                        return Err(r.wrong(&property, "a boolean", &other))
                    }
                    (FeatureOptionKind::String, other) => {
                        return Err(r.wrong(&property, "a string", &other))
                    }
                })
            }
            "enum" => option.allowed = r.strings(&property, v)?,
            "proposals" => option.proposals = r.strings(&property, v)?,
            "description" => option.description = Some(r.string(&property, v)?),
            _ => {}
        }
    }
    Ok(option)
}

/// The spec's option name → environment variable name: non-word characters become `_`, a
/// leading run of digits and underscores becomes one `_`, then upper case.
pub fn option_env_name(name: &str) -> String {
    let word: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
    let name = if rest.len() < word.len() {
        format!("_{rest}")
    } else {
        word
    };
    name.to_ascii_uppercase()
}

/// Options as `install.sh` sees them: the given values over the defaults, named by
/// [`option_env_name`], in option-name order. Undeclared options, values outside `enum` and
/// non-boolean values of boolean options are errors.
pub fn feature_env(
    meta: &FeatureMetadata,
    given: &BTreeMap<String, FeatureOptionValue>,
) -> Result<Vec<(String, String)>, DevcontainerError> {
    if let Some(unknown) = given.keys().find(|name| !meta.options.contains_key(*name)) {
        return Err(DevcontainerError::UnknownOption {
            feature: meta.id.clone(),
            option: unknown.clone(),
            declared: meta.options.keys().cloned().collect(),
        });
    }
    let mut env = Vec::new();
    for (name, option) in &meta.options {
        let Some(value) = given.get(name).or(option.default.as_ref()) else {
            continue;
        };
        let text = value.to_string();
        match option.kind {
            FeatureOptionKind::Boolean if text != "true" && text != "false" => {
                return Err(DevcontainerError::OptionType {
                    feature: meta.id.clone(),
                    option: name.clone(),
                    expected: "true or false",
                    value: text,
                });
            }
            FeatureOptionKind::String
                if !option.allowed.is_empty() && !option.allowed.contains(&text) =>
            {
                return Err(DevcontainerError::OptionNotInEnum {
                    feature: meta.id.clone(),
                    option: name.clone(),
                    value: text,
                    allowed: option.allowed.clone(),
                });
            }
            _ => {}
        }
        env.push((option_env_name(name), text));
    }
    Ok(env)
}

/// A feature ready to install: where it came from, the options it was given, its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedFeature {
    pub reference: FeatureRef,
    pub options: BTreeMap<String, FeatureOptionValue>,
    pub metadata: FeatureMetadata,
}

/// The spec's install order, as indexes into `features`. Installation goes in rounds: a
/// feature is ready when every `dependsOn` (hard; must be among `features`) and every
/// `installsAfter` present among `features` (soft) is installed. Of the ready ones, those
/// named in `override_order` go first, one priority level per round (the earliest named
/// first); otherwise the whole round installs, ties in the order of `features`. When no
/// feature is ready the rest form a cycle, which the error names.
pub fn install_order(
    features: &[ResolvedFeature],
    override_order: &[String],
) -> Result<Vec<usize>, DevcontainerError> {
    let ids: Vec<String> = features.iter().map(|f| f.reference.id()).collect();
    let matching =
        |id: &str| -> Vec<usize> { (0..features.len()).filter(|&j| ids[j] == id).collect() };
    for id in override_order {
        if matching(id).is_empty() {
            return Err(DevcontainerError::UnknownOverride { id: id.clone() });
        }
    }
    // Edges: before[i] = features that must be installed before i.
    let mut before: Vec<Vec<usize>> = Vec::with_capacity(features.len());
    for (i, feature) in features.iter().enumerate() {
        let mut deps = Vec::new();
        for (dependency, _) in &feature.metadata.depends_on {
            let found = matching(&dependency.id());
            if found.is_empty() {
                return Err(DevcontainerError::MissingDependency {
                    feature: feature.reference.to_string(),
                    dependency: dependency.to_string(),
                });
            }
            deps.extend(found);
        }
        for soft in &feature.metadata.installs_after {
            deps.extend(matching(soft));
        }
        deps.retain(|&j| j != i);
        deps.sort_unstable();
        deps.dedup();
        before.push(deps);
    }
    let priority = |i: usize| -> usize {
        override_order
            .iter()
            .position(|id| *id == ids[i])
            .map(|pos| override_order.len() - pos)
            .unwrap_or(0)
    };
    let mut installed = vec![false; features.len()];
    let mut order = Vec::with_capacity(features.len());
    while order.len() < features.len() {
        let ready: Vec<usize> = (0..features.len())
            .filter(|&i| !installed[i] && before[i].iter().all(|&j| installed[j]))
            .collect();
        if ready.is_empty() {
            return Err(DevcontainerError::DependencyCycle {
                features: find_cycle(&before, &installed, &ids),
            });
        }
        let top = ready.iter().map(|&i| priority(i)).max().unwrap_or(0);
        for i in ready
            .into_iter()
            .filter(|&i| top == 0 || priority(i) == top)
        {
            installed[i] = true;
            order.push(i);
        }
    }
    Ok(order)
}

/// Among the features not installed (each waits on another not installed), follows the
/// waits until one repeats: that loop is the cycle, returned closed (`a -> b -> a`).
fn find_cycle(before: &[Vec<usize>], installed: &[bool], ids: &[String]) -> Vec<String> {
    let Some(start) = (0..before.len()).find(|&i| !installed[i]) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        // Not ready means at least one dependency is not installed.
        let Some(&next) = before[current].iter().find(|&&j| !installed[j]) else {
            return vec![ids[current].clone()];
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|&p| ids[p].clone()).collect();
            cycle.push(ids[next].clone());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = r#"{
        "id": "node",
        "version": "1.6.2",
        "name": "Node.js (via nvm), yarn and pnpm",
        "options": {
            "version": { "type": "string", "proposals": ["lts", "latest", "none"], "default": "lts" },
            "nodeGypDependencies": { "type": "boolean", "default": true },
            "install-tool": { "type": "string", "enum": ["yarn", "pnpm"], "default": "yarn" },
            "9lives": { "type": "string", "default": "x" },
        },
        "containerEnv": { "NVM_DIR": "/usr/local/share/nvm" },
        "dependsOn": { "ghcr.io/devcontainers/features/common-utils:2": { "installZsh": false } },
        "installsAfter": ["ghcr.io/devcontainers/features/python"],
        "customizations": { "vscode": { "extensions": ["dbaeumer.vscode-eslint"] } },
        "postCreateCommand": "nvm use default",
        "privileged": false,
        "capAdd": ["SYS_PTRACE"],
        "documentationURL": "https://example.invalid/node",
    }"#;

    #[test]
    fn feature_metadata_reads_the_published_shape() {
        let meta = feature_metadata(NODE).unwrap();
        assert_eq!((meta.id.as_str(), meta.version.as_str()), ("node", "1.6.2"));
        assert_eq!(meta.options["install-tool"].allowed, ["yarn", "pnpm"]);
        assert_eq!(
            meta.options["nodeGypDependencies"].default,
            Some(FeatureOptionValue::Bool(true))
        );
        assert_eq!(
            meta.depends_on[0].0.to_string(),
            "ghcr.io/devcontainers/features/common-utils:2"
        );
        assert_eq!(
            meta.depends_on[0].1["installZsh"],
            FeatureOptionValue::Bool(false)
        );
        assert_eq!(
            meta.installs_after,
            ["ghcr.io/devcontainers/features/python"]
        );
        assert_eq!(meta.vscode_extensions, ["dbaeumer.vscode-eslint"]);
        assert_eq!(
            meta.post_create_command,
            Some(LifecycleCommand::Shell("nvm use default".into()))
        );
        assert_eq!(
            meta.refused,
            ["capAdd"],
            "privileged: false asks for nothing"
        );
        assert_eq!(meta.ignored, ["documentationURL"]);
    }

    #[test]
    fn feature_metadata_refuses_missing_id_and_bad_defaults() {
        let err = feature_metadata(r#"{"version": "1.0.0"}"#).unwrap_err();
        assert!(err.to_string().contains("`id`"), "{err}");
        let err = feature_metadata(r#"{"id": "a", "version": "1", "options": {"x": {"type": "boolean", "default": "yes"}}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("`options.x.default` must be a boolean"),
            "{err}"
        );
        let err = feature_metadata(
            r#"{"id": "a", "version": "1", "options": {"x": {"type": "number"}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("options.x.type"), "{err}");
    }

    #[test]
    fn feature_env_puts_given_values_over_defaults_with_spec_names() {
        let meta = feature_metadata(NODE).unwrap();
        let given = BTreeMap::from([
            (
                "version".to_string(),
                FeatureOptionValue::String("20".into()),
            ),
            (
                "nodeGypDependencies".to_string(),
                FeatureOptionValue::Bool(false),
            ),
        ]);
        assert_eq!(
            feature_env(&meta, &given).unwrap(),
            [
                ("_LIVES".to_string(), "x".to_string()),
                ("INSTALL_TOOL".into(), "yarn".into()),
                ("NODEGYPDEPENDENCIES".into(), "false".into()),
                ("VERSION".into(), "20".into()),
            ]
        );
        assert_eq!(option_env_name("__2go.version"), "_GO_VERSION");
    }

    #[test]
    fn feature_env_refuses_values_outside_enum_and_unknown_options() {
        let meta = feature_metadata(NODE).unwrap();
        let bad = BTreeMap::from([(
            "install-tool".to_string(),
            FeatureOptionValue::String("npm; rm -rf /".into()),
        )]);
        let err = feature_env(&meta, &bad).unwrap_err();
        assert!(
            matches!(err, DevcontainerError::OptionNotInEnum { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("`yarn`, `pnpm`"), "{err}");
        let unknown = BTreeMap::from([(
            "verison".to_string(),
            FeatureOptionValue::String("20".into()),
        )]);
        assert!(feature_env(&meta, &unknown)
            .unwrap_err()
            .to_string()
            .contains("`verison` is not declared"));
        let not_bool = BTreeMap::from([(
            "nodeGypDependencies".to_string(),
            FeatureOptionValue::String("maybe".into()),
        )]);
        assert!(matches!(
            feature_env(&meta, &not_bool),
            Err(DevcontainerError::OptionType { .. })
        ));
    }

    #[test]
    fn feature_refs_parse_tags_digests_and_refuse_other_sources() {
        let r = FeatureRef::parse("ghcr.io/devcontainers/features/node").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("ghcr.io", "devcontainers/features/node", "latest")
        );
        assert_eq!(r.id(), "ghcr.io/devcontainers/features/node");
        let r = FeatureRef::parse("localhost:5000/f/go:1.2").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.mirror_repository(),
                r.reference.as_str()
            ),
            ("localhost:5000", "f/go", "1.2")
        );
        for bad in [
            "./local",
            "https://example.invalid/f.tgz",
            "node",
            "ghcr.io/UPPER/x:1",
        ] {
            assert!(FeatureRef::parse(bad).is_err(), "{bad}");
        }
    }

    fn resolved(id: &str, depends_on: &[&str], installs_after: &[&str]) -> ResolvedFeature {
        ResolvedFeature {
            reference: FeatureRef::parse(&format!("ghcr.io/f/{id}:1")).unwrap(),
            options: BTreeMap::new(),
            metadata: FeatureMetadata {
                id: id.to_string(),
                version: "1.0.0".into(),
                depends_on: depends_on
                    .iter()
                    .map(|d| {
                        (
                            FeatureRef::parse(&format!("ghcr.io/f/{d}:1")).unwrap(),
                            BTreeMap::new(),
                        )
                    })
                    .collect(),
                installs_after: installs_after
                    .iter()
                    .map(|a| format!("ghcr.io/f/{a}"))
                    .collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn install_order_follows_depends_on_installs_after_and_override() {
        // node depends on common; python installs after node; go is free.
        let features = [
            resolved("python", &[], &["node", "absent"]),
            resolved("node", &["common"], &[]),
            resolved("go", &[], &[]),
            resolved("common", &[], &[]),
        ];
        assert_eq!(install_order(&features, &[]).unwrap(), [2, 3, 1, 0]);
        // go first, then python as early as its soft dependency allows.
        let order = install_order(
            &features,
            &["ghcr.io/f/go".into(), "ghcr.io/f/python".into()],
        )
        .unwrap();
        assert_eq!(order, [2, 3, 1, 0]);
        let order = install_order(&features, &["ghcr.io/f/common".into()]).unwrap();
        assert_eq!(order, [3, 1, 2, 0]);
        let err = install_order(&features, &["ghcr.io/f/ruby".into()]).unwrap_err();
        assert!(matches!(err, DevcontainerError::UnknownOverride { .. }));
    }

    #[test]
    fn install_order_names_a_cycle_and_a_missing_dependency() {
        let features = [
            resolved("a", &["b"], &[]),
            resolved("b", &["c"], &[]),
            resolved("c", &[], &["a"]),
            resolved("d", &[], &[]),
        ];
        let err = install_order(&features, &[]).unwrap_err();
        assert_eq!(
            err,
            DevcontainerError::DependencyCycle {
                features: vec![
                    "ghcr.io/f/a".into(),
                    "ghcr.io/f/b".into(),
                    "ghcr.io/f/c".into(),
                    "ghcr.io/f/a".into()
                ]
            }
        );
        assert!(
            err.to_string()
                .contains("ghcr.io/f/a -> ghcr.io/f/b -> ghcr.io/f/c -> ghcr.io/f/a"),
            "{err}"
        );
        let err = install_order(&[resolved("a", &["z"], &[])], &[]).unwrap_err();
        assert!(
            err.to_string().contains("depends on `ghcr.io/f/z:1`"),
            "{err}"
        );
    }
}
