//! `devcontainer.json`: the properties airlock acts on, typed; every other property is kept
//! out of the config and reported in [`Parsed::ignored`] so nothing is silently dropped.

use std::collections::BTreeMap;

use jsonc_parser::{JsonObject, JsonValue};
use serde_json::Value;

use crate::feature::{FeatureOptionValue, FeatureRef};
use crate::json::{self, Reader};
use crate::vars::{self, Variables};
use crate::DevcontainerError;

/// A parsed devcontainer.json and what in it airlock does not act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub config: DevContainer,
    /// Property paths present but not acted on (`runArgs`, `customizations.jetbrains`,
    /// `hostRequirements.gpu`, `containerEnv.X: ${localEnv:Y} ...`), in file order.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DevContainer {
    pub name: Option<String>,
    pub image: Option<String>,
    /// `build` (or the older top-level `dockerFile`): refused by the runner and the bundler.
    pub build: Option<Build>,
    /// `dockerComposeFile`: refused the same way (one container per environment here).
    pub docker_compose_file: Vec<String>,
    pub container_env: BTreeMap<String, String>,
    /// `null` unsets a variable.
    pub remote_env: BTreeMap<String, Option<String>>,
    pub remote_user: Option<String>,
    pub container_user: Option<String>,
    pub workspace_folder: Option<String>,
    pub forward_ports: Vec<ForwardPort>,
    pub ports_attributes: BTreeMap<String, PortAttributes>,
    pub on_create_command: Option<LifecycleCommand>,
    pub update_content_command: Option<LifecycleCommand>,
    pub post_create_command: Option<LifecycleCommand>,
    pub post_start_command: Option<LifecycleCommand>,
    pub post_attach_command: Option<LifecycleCommand>,
    /// Which lifecycle command the tool waits for before connecting (`updateContentCommand` by default).
    pub wait_for: Option<String>,
    pub host_requirements: Option<HostRequirements>,
    pub vscode_extensions: Vec<String>,
    pub vscode_settings: serde_json::Map<String, Value>,
    /// In file order, options as written (string shorthand = `version`).
    pub features: Vec<(FeatureRef, BTreeMap<String, FeatureOptionValue>)>,
    /// Feature ids without version.
    pub override_feature_install_order: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Build {
    pub dockerfile: Option<String>,
    pub context: Option<String>,
    pub target: Option<String>,
    pub args: BTreeMap<String, String>,
}

/// `3000` or `"db:5432"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPort {
    /// `None`: the container itself (`localhost`).
    pub host: Option<String>,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortAttributes {
    pub label: Option<String>,
    /// `notify`, `openBrowser`, `openBrowserOnce`, `openPreview`, `silent` or `ignore`.
    pub on_auto_forward: Option<String>,
    /// `http` or `https`.
    pub protocol: Option<String>,
}

/// A lifecycle command in its three spec forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleCommand {
    /// A string: run through `/bin/sh -c`.
    Shell(String),
    /// An array: run directly, no shell.
    Exec(Vec<String>),
    /// An object: named commands run in parallel (each a string or an array).
    Parallel(Vec<(String, LifecycleCommand)>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRequirements {
    pub cpus: Option<u32>,
    /// Bytes (`"8gb"` → 8 GiB; the spec's units are powers of 1024).
    pub memory: Option<u64>,
    /// Bytes.
    pub storage: Option<u64>,
    /// `gpu: true` or a GPU description: the container needs one (`"optional"` does not).
    pub gpu_required: bool,
}

/// The lifecycle properties in the order the spec runs them.
pub const LIFECYCLE_PROPERTIES: [&str; 5] = [
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "postStartCommand",
    "postAttachCommand",
];

impl DevContainer {
    /// The image to start from, or why there is none usable: a `build` or compose
    /// devcontainer is refused with the alternative, a missing `image` says what to set.
    pub fn require_image(&self, origin: &str) -> Result<&str, DevcontainerError> {
        if let Some(build) = &self.build {
            let how = match &build.dockerfile {
                Some(file) => format!("`build.dockerfile` = `{file}`"),
                None => "`build`".to_string(),
            };
            return Err(DevcontainerError::NeedsBuild {
                origin: origin.to_string(),
                how,
            });
        }
        if !self.docker_compose_file.is_empty() {
            let how = format!(
                "with Docker Compose, `dockerComposeFile` = `{}`",
                self.docker_compose_file.join(", ")
            );
            return Err(DevcontainerError::NeedsBuild {
                origin: origin.to_string(),
                how,
            });
        }
        self.image
            .as_deref()
            .ok_or_else(|| DevcontainerError::NoImage {
                origin: origin.to_string(),
            })
    }

    /// Replaces the container-side variables the runner knows (see [`crate::substitute`]) in
    /// the environment, user, workspace and lifecycle properties.
    pub fn substitute(&mut self, vars: &Variables) {
        let sub = |s: &mut String| *s = vars::substitute(s, vars);
        self.container_env.values_mut().for_each(sub);
        self.remote_env.values_mut().flatten().for_each(sub);
        self.workspace_folder.iter_mut().for_each(sub);
        self.remote_user.iter_mut().for_each(sub);
        self.container_user.iter_mut().for_each(sub);
        for command in [
            &mut self.on_create_command,
            &mut self.update_content_command,
            &mut self.post_create_command,
            &mut self.post_start_command,
            &mut self.post_attach_command,
        ]
        .into_iter()
        .flatten()
        {
            command.substitute(vars);
        }
    }
}

impl LifecycleCommand {
    fn substitute(&mut self, vars: &Variables) {
        match self {
            LifecycleCommand::Shell(s) => *s = vars::substitute(s, vars),
            LifecycleCommand::Exec(args) => {
                args.iter_mut().for_each(|a| *a = vars::substitute(a, vars))
            }
            LifecycleCommand::Parallel(named) => {
                named.iter_mut().for_each(|(_, c)| c.substitute(vars))
            }
        }
    }

    /// Reads the three forms; `property` names the place in errors.
    pub(crate) fn read(
        r: &Reader<'_>,
        property: &str,
        value: JsonValue<'_>,
        nested: bool,
    ) -> Result<Self, DevcontainerError> {
        match value {
            JsonValue::String(s) => Ok(LifecycleCommand::Shell(s.into_owned())),
            JsonValue::Array(_) => {
                let args = r.strings(property, value)?;
                if args.is_empty() {
                    return Err(r.invalid(property, "an empty array names no program to run; remove the property or name a command"));
                }
                Ok(LifecycleCommand::Exec(args))
            }
            JsonValue::Object(object) if !nested => {
                let mut named = Vec::new();
                for (name, command) in object {
                    let path = format!("{property}.{name}");
                    named.push((
                        name.into_owned(),
                        LifecycleCommand::read(r, &path, command, true)?,
                    ));
                }
                Ok(LifecycleCommand::Parallel(named))
            }
            other => Err(r.wrong(
                property,
                if nested {
                    "a string or an array of strings"
                } else {
                    "a string, an array of strings or an object of named commands"
                },
                &other,
            )),
        }
    }
}

/// `"4gb"`, `"512mb"`, `"1tb"`, `"1048576"` (bytes) → bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, shift) = match lower.len().checked_sub(2).map(|i| lower.split_at(i)) {
        Some((d, "tb")) => (d, 40),
        Some((d, "gb")) => (d, 30),
        Some((d, "mb")) => (d, 20),
        Some((d, "kb")) => (d, 10),
        _ => (lower.strip_suffix('b').unwrap_or(&lower), 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

pub(crate) fn parse(text: &str, origin: &str) -> Result<Parsed, DevcontainerError> {
    let top = json::parse_object(text, origin)?;
    let r = Reader { origin };
    let mut config = DevContainer::default();
    let mut ignored = Vec::new();
    let mut legacy_context = None;
    for (key, value) in top {
        let key = key.into_owned();
        let k = key.as_str();
        match k {
            "name" => config.name = Some(r.string(k, value)?),
            "image" => config.image = Some(r.string(k, value)?),
            "build" => config.build = Some(read_build(&r, value)?),
            "dockerFile" => {
                let file = r.string(k, value)?;
                config.build.get_or_insert_with(Build::default).dockerfile = Some(file);
            }
            "context" => legacy_context = Some(r.string(k, value)?),
            "dockerComposeFile" => {
                config.docker_compose_file = match value {
                    JsonValue::String(s) => vec![s.into_owned()],
                    other => r.strings(k, other)?,
                }
            }
            "containerEnv" => {
                for (name, v) in r.string_map(k, value)? {
                    let path = format!("containerEnv.{name}");
                    config
                        .container_env
                        .insert(name, vars::drop_local_env(v, &path, &mut ignored));
                }
            }
            "remoteEnv" => {
                for (name, v) in r.object(k, value)? {
                    let path = format!("remoteEnv.{name}");
                    let v = match v {
                        JsonValue::Null => None,
                        other => Some(vars::drop_local_env(
                            r.string(&path, other)?,
                            &path,
                            &mut ignored,
                        )),
                    };
                    config.remote_env.insert(name.into_owned(), v);
                }
            }
            "remoteUser" => config.remote_user = Some(r.string(k, value)?),
            "containerUser" => config.container_user = Some(r.string(k, value)?),
            "workspaceFolder" => {
                config.workspace_folder =
                    Some(vars::drop_local_env(r.string(k, value)?, k, &mut ignored))
            }
            "forwardPorts" => config.forward_ports = read_forward_ports(&r, value)?,
            "portsAttributes" => {
                for (port, attributes) in r.object(k, value)? {
                    let path = format!("portsAttributes.{port}");
                    let attributes = read_port_attributes(&r, &path, attributes, &mut ignored)?;
                    config
                        .ports_attributes
                        .insert(port.into_owned(), attributes);
                }
            }
            "onCreateCommand"
            | "updateContentCommand"
            | "postCreateCommand"
            | "postStartCommand"
            | "postAttachCommand" => {
                let command = Some(LifecycleCommand::read(&r, k, value, false)?);
                match k {
                    "onCreateCommand" => config.on_create_command = command,
                    "updateContentCommand" => config.update_content_command = command,
                    "postCreateCommand" => config.post_create_command = command,
                    "postStartCommand" => config.post_start_command = command,
                    _ => config.post_attach_command = command,
                }
            }
            "waitFor" => {
                let wait_for = r.string(k, value)?;
                if !LIFECYCLE_PROPERTIES.contains(&wait_for.as_str()) {
                    return Err(r.invalid(
                        k,
                        format!(
                            "`{wait_for}` is not one of {}",
                            LIFECYCLE_PROPERTIES.join(", ")
                        ),
                    ));
                }
                config.wait_for = Some(wait_for);
            }
            "hostRequirements" => {
                config.host_requirements = Some(read_host_requirements(&r, value, &mut ignored)?)
            }
            "customizations" => read_customizations(&r, value, &mut config, &mut ignored)?,
            "features" => {
                for (id, options) in r.object(k, value)? {
                    let path = format!("features.{id}");
                    let reference =
                        FeatureRef::parse(&id).map_err(|message| r.invalid(&path, message))?;
                    let options = match options {
                        // The spec's shorthand: a string is the `version` option.
                        JsonValue::String(v) => BTreeMap::from([(
                            "version".to_string(),
                            FeatureOptionValue::String(v.into_owned()),
                        )]),
                        JsonValue::Boolean(true) => BTreeMap::new(),
                        JsonValue::Boolean(false) => {
                            ignored.push(format!("{path}: false (the feature is left out)"));
                            continue;
                        }
                        other => read_feature_options(&r, &path, other)?,
                    };
                    config.features.push((reference, options));
                }
            }
            "overrideFeatureInstallOrder" => {
                config.override_feature_install_order = r.strings(k, value)?
            }
            _ => ignored.push(key),
        }
    }
    if let Some(context) = legacy_context {
        match &mut config.build {
            Some(build) if build.context.is_none() => build.context = Some(context),
            _ => ignored.push("context".to_string()),
        }
    }
    Ok(Parsed { config, ignored })
}

fn read_build(r: &Reader<'_>, value: JsonValue<'_>) -> Result<Build, DevcontainerError> {
    let mut build = Build::default();
    for (key, v) in r.object("build", value)? {
        let path = format!("build.{key}");
        match key.as_ref() {
            "dockerfile" | "dockerFile" => build.dockerfile = Some(r.string(&path, v)?),
            "context" => build.context = Some(r.string(&path, v)?),
            "target" => build.target = Some(r.string(&path, v)?),
            "args" => build.args = r.string_map(&path, v)?,
            // Options of a build that is refused as a whole: nothing more to check.
            _ => {}
        }
    }
    Ok(build)
}

fn read_forward_ports(
    r: &Reader<'_>,
    value: JsonValue<'_>,
) -> Result<Vec<ForwardPort>, DevcontainerError> {
    let JsonValue::Array(items) = value else {
        return Err(r.wrong(
            "forwardPorts",
            "an array of port numbers or \"host:port\" strings",
            &value,
        ));
    };
    let port_number = |path: &str, text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| r.invalid(path, format!("`{text}` is not a port number (1-65535)")))
    };
    let mut ports = Vec::new();
    for (i, item) in items.take_inner().into_iter().enumerate() {
        let path = format!("forwardPorts[{i}]");
        let port = match item {
            JsonValue::Number(n) => ForwardPort {
                host: None,
                port: port_number(&path, n)?,
            },
            JsonValue::String(s) => match s.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() => ForwardPort {
                    host: Some(host.to_string()),
                    port: port_number(&path, port)?,
                },
                Some(_) => {
                    return Err(r.invalid(
                        &path,
                        format!("`{s}` has no host before `:`; write `host:port` or a number"),
                    ))
                }
                None => ForwardPort {
                    host: None,
                    port: port_number(&path, &s)?,
                },
            },
            other => return Err(r.wrong(&path, "a port number or a \"host:port\" string", &other)),
        };
        ports.push(port);
    }
    Ok(ports)
}

fn read_port_attributes(
    r: &Reader<'_>,
    path: &str,
    value: JsonValue<'_>,
    ignored: &mut Vec<String>,
) -> Result<PortAttributes, DevcontainerError> {
    const ON_AUTO_FORWARD: [&str; 6] = [
        "notify",
        "openBrowser",
        "openBrowserOnce",
        "openPreview",
        "silent",
        "ignore",
    ];
    let mut attributes = PortAttributes::default();
    for (key, v) in r.object(path, value)? {
        let property = format!("{path}.{key}");
        match key.as_ref() {
            "label" => attributes.label = Some(r.string(&property, v)?),
            "onAutoForward" => {
                let action = r.string(&property, v)?;
                if !ON_AUTO_FORWARD.contains(&action.as_str()) {
                    return Err(r.invalid(
                        &property,
                        format!("`{action}` is not one of {}", ON_AUTO_FORWARD.join(", ")),
                    ));
                }
                attributes.on_auto_forward = Some(action);
            }
            "protocol" => {
                let protocol = r.string(&property, v)?;
                if protocol != "http" && protocol != "https" {
                    return Err(
                        r.invalid(&property, format!("`{protocol}` is not `http` or `https`"))
                    );
                }
                attributes.protocol = Some(protocol);
            }
            _ => ignored.push(property),
        }
    }
    Ok(attributes)
}

fn read_host_requirements(
    r: &Reader<'_>,
    value: JsonValue<'_>,
    ignored: &mut Vec<String>,
) -> Result<HostRequirements, DevcontainerError> {
    let mut requirements = HostRequirements::default();
    for (key, v) in r.object("hostRequirements", value)? {
        let property = format!("hostRequirements.{key}");
        let size = |v: JsonValue<'_>| -> Result<u64, DevcontainerError> {
            let text = r.string(&property, v)?;
            parse_size(&text).ok_or_else(|| {
                r.invalid(
                    &property,
                    format!("`{text}` is not a size like `4gb`, `512mb` or `1tb`"),
                )
            })
        };
        match key.as_ref() {
            "cpus" => {
                let cpus = r.unsigned(&property, v)?;
                let cpus = u32::try_from(cpus).ok().filter(|c| *c > 0);
                requirements.cpus = Some(cpus.ok_or_else(|| {
                    r.invalid(&property, "must be a whole number of CPUs, at least 1")
                })?);
            }
            "memory" => requirements.memory = Some(size(v)?),
            "storage" => requirements.storage = Some(size(v)?),
            "gpu" if matches!(v, JsonValue::Boolean(true) | JsonValue::Object(_)) => requirements.gpu_required = true,
            "gpu" if matches!(v, JsonValue::Boolean(false)) => {}
            _ => ignored.push(property),
        }
    }
    Ok(requirements)
}

fn read_customizations(
    r: &Reader<'_>,
    value: JsonValue<'_>,
    config: &mut DevContainer,
    ignored: &mut Vec<String>,
) -> Result<(), DevcontainerError> {
    for (tool, v) in r.object("customizations", value)? {
        let tool_path = format!("customizations.{tool}");
        if tool != "vscode" {
            ignored.push(tool_path);
            continue;
        }
        for (key, v) in r.object(&tool_path, v)? {
            let property = format!("{tool_path}.{key}");
            match key.as_ref() {
                "extensions" => config.vscode_extensions = r.strings(&property, v)?,
                "settings" => {
                    config.vscode_settings = r
                        .object(&property, v)?
                        .into_iter()
                        .map(|(k, v)| (k.into_owned(), json::to_serde(v)))
                        .collect()
                }
                _ => ignored.push(property),
            }
        }
    }
    Ok(())
}

pub(crate) fn read_feature_options(
    r: &Reader<'_>,
    path: &str,
    value: JsonValue<'_>,
) -> Result<BTreeMap<String, FeatureOptionValue>, DevcontainerError> {
    let object: JsonObject<'_> = r.object(path, value)?;
    let mut options = BTreeMap::new();
    for (name, v) in object {
        let property = format!("{path}.{name}");
        let value = match v {
            JsonValue::String(s) => FeatureOptionValue::String(s.into_owned()),
            JsonValue::Boolean(b) => FeatureOptionValue::Bool(b),
            other => return Err(r.wrong(&property, "a string or a boolean", &other)),
        };
        options.insert(name.into_owned(), value);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the public devcontainers templates (image + features + lifecycle +
    /// customizations), with the comments and trailing commas they carry.
    const TEMPLATE: &str = r#"// For format details, see the devcontainers reference.
{
    "name": "Node.js & TypeScript",
    // Or use a Dockerfile or Docker Compose file.
    "image": "mcr.microsoft.com/devcontainers/typescript-node:1-22-bookworm",
    "features": {
        "ghcr.io/devcontainers/features/common-utils:2": { "installZsh": true, "username": "node" },
        "ghcr.io/devcontainers/features/python:1": "3.12",
        "ghcr.io/devcontainers/features/docker-in-docker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": {},
    },
    "overrideFeatureInstallOrder": ["ghcr.io/devcontainers/features/python"],
    "forwardPorts": [3000, "db:5432"],
    "portsAttributes": { "3000": { "label": "App", "onAutoForward": "openBrowser", "requireLocalPort": true } },
    "postCreateCommand": "yarn install",
    "postStartCommand": ["git", "config", "--global", "core.editor", "vim"],
    "postAttachCommand": { "server": "yarn start", "watch": ["yarn", "watch"] },
    "containerEnv": { "NODE_ENV": "development", "HOME_COPY": "${localEnv:HOME:/home/node}" },
    "remoteEnv": { "PATH": "${containerEnv:PATH}:/opt/tools", "NO_PROXY": null },
    "remoteUser": "node",
    "workspaceFolder": "/workspaces/app",
    "hostRequirements": { "cpus": 4, "memory": "8gb", "storage": "32GB", "gpu": "optional" },
    "customizations": {
        "vscode": {
            "extensions": ["dbaeumer.vscode-eslint", "esbenp.prettier-vscode"],
            "settings": { "editor.formatOnSave": true, "files.eol": "\n" },
        },
        "jetbrains": { "backend": "WebStorm" },
    },
    "runArgs": ["--privileged"],
}
"#;

    #[test]
    fn template_shaped_file_parses_into_every_property() {
        let parsed = parse(TEMPLATE, ".devcontainer/devcontainer.json").unwrap();
        let c = &parsed.config;
        assert_eq!(
            c.image.as_deref(),
            Some("mcr.microsoft.com/devcontainers/typescript-node:1-22-bookworm")
        );
        assert_eq!(
            c.require_image("x").unwrap(),
            "mcr.microsoft.com/devcontainers/typescript-node:1-22-bookworm"
        );
        let ids: Vec<String> = c.features.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(
            ids,
            [
                "ghcr.io/devcontainers/features/common-utils:2",
                "ghcr.io/devcontainers/features/python:1",
                "ghcr.io/devcontainers/features/docker-in-docker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ],
            "file order kept"
        );
        assert_eq!(
            c.features[0].1["installZsh"],
            FeatureOptionValue::Bool(true)
        );
        assert_eq!(
            c.features[1].1["version"],
            FeatureOptionValue::String("3.12".into())
        );
        assert_eq!(
            c.features[2].0.reference,
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            c.features[2].0.mirror_repository(),
            "devcontainers/features/docker-in-docker"
        );
        assert_eq!(
            c.override_feature_install_order,
            ["ghcr.io/devcontainers/features/python"]
        );
        assert_eq!(
            c.forward_ports,
            [
                ForwardPort {
                    host: None,
                    port: 3000
                },
                ForwardPort {
                    host: Some("db".into()),
                    port: 5432
                }
            ]
        );
        assert_eq!(
            c.ports_attributes["3000"].on_auto_forward.as_deref(),
            Some("openBrowser")
        );
        assert_eq!(
            c.post_create_command,
            Some(LifecycleCommand::Shell("yarn install".into()))
        );
        assert_eq!(
            c.post_start_command,
            Some(LifecycleCommand::Exec(vec![
                "git".into(),
                "config".into(),
                "--global".into(),
                "core.editor".into(),
                "vim".into()
            ]))
        );
        assert_eq!(
            c.post_attach_command,
            Some(LifecycleCommand::Parallel(vec![
                (
                    "server".into(),
                    LifecycleCommand::Shell("yarn start".into())
                ),
                (
                    "watch".into(),
                    LifecycleCommand::Exec(vec!["yarn".into(), "watch".into()])
                ),
            ]))
        );
        assert_eq!(
            c.container_env["HOME_COPY"], "/home/node",
            "localEnv falls back to its default"
        );
        assert_eq!(c.remote_env["NO_PROXY"], None);
        assert_eq!(c.remote_user.as_deref(), Some("node"));
        let req = c.host_requirements.as_ref().unwrap();
        assert_eq!(
            (req.cpus, req.memory, req.storage),
            (Some(4), Some(8 << 30), Some(32 << 30))
        );
        assert_eq!(
            c.vscode_extensions,
            ["dbaeumer.vscode-eslint", "esbenp.prettier-vscode"]
        );
        assert_eq!(c.vscode_settings["editor.formatOnSave"], Value::Bool(true));
        assert_eq!(
            parsed.ignored,
            [
                "portsAttributes.3000.requireLocalPort".to_string(),
                "containerEnv.HOME_COPY: ${localEnv:HOME} (no local machine on the high side; replaced by its default `/home/node`)".into(),
                "hostRequirements.gpu".into(),
                "customizations.jetbrains".into(),
                "runArgs".into(),
            ]
        );
    }

    #[test]
    fn container_variables_are_substituted_by_the_runner() {
        let mut c = parse(TEMPLATE, "d").unwrap().config;
        assert_eq!(
            c.remote_env["PATH"].as_deref(),
            Some("${containerEnv:PATH}:/opt/tools"),
            "kept for the runner"
        );
        let vars = Variables {
            container_env: BTreeMap::from([("PATH".into(), "/usr/bin".into())]),
            ..Default::default()
        };
        c.substitute(&vars);
        assert_eq!(c.remote_env["PATH"].as_deref(), Some("/usr/bin:/opt/tools"));
    }

    #[test]
    fn invalid_json_names_file_line_and_column() {
        let err = parse(
            "{\n  \"image\": \"x\"\n  \"name\": \"y\"\n}",
            ".devcontainer/devcontainer.json",
        )
        .unwrap_err();
        let DevcontainerError::Syntax {
            origin,
            line,
            column,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        // The comma is missing right after `"x"` on line 2.
        assert_eq!(
            (origin.as_str(), *line, *column),
            (".devcontainer/devcontainer.json", 2, 15),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(".devcontainer/devcontainer.json:2:15: "),
            "{err}"
        );
        let err = parse("{\n  \"image\": \"x\",\n  \"name\": nope\n}", "dc.json").unwrap_err();
        assert!(err.to_string().starts_with("dc.json:3:11: "), "{err}");
        // Looser JSON5 forms are refused, as VS Code refuses them.
        assert!(matches!(
            parse("{ 'image': 'x' }", "d"),
            Err(DevcontainerError::Syntax { .. })
        ));
        assert!(matches!(
            parse("[1]", "d"),
            Err(DevcontainerError::WrongType { .. })
        ));
        assert!(matches!(
            parse("  // nothing\n", "d"),
            Err(DevcontainerError::InvalidValue { .. })
        ));
    }

    #[test]
    fn wrong_types_name_the_property() {
        let cases = [
            (r#"{"image": 3}"#, "image"),
            (r#"{"forwardPorts": [3000, true]}"#, "forwardPorts[1]"),
            (r#"{"forwardPorts": [70000]}"#, "forwardPorts[0]"),
            (r#"{"containerEnv": {"A": 1}}"#, "containerEnv.A"),
            (
                r#"{"postCreateCommand": {"a": {"b": "c"}}}"#,
                "postCreateCommand.a",
            ),
            (r#"{"postCreateCommand": []}"#, "postCreateCommand"),
            (
                r#"{"features": {"ghcr.io/a/b:1": {"x": 1}}}"#,
                "features.ghcr.io/a/b:1.x",
            ),
            (r#"{"features": {"./local": {}}}"#, "features../local"),
            (
                r#"{"hostRequirements": {"memory": "lots"}}"#,
                "hostRequirements.memory",
            ),
            (
                r#"{"hostRequirements": {"cpus": 0}}"#,
                "hostRequirements.cpus",
            ),
            (
                r#"{"portsAttributes": {"80": {"protocol": "ftp"}}}"#,
                "portsAttributes.80.protocol",
            ),
            (r#"{"waitFor": "never"}"#, "waitFor"),
            (
                r#"{"customizations": {"vscode": {"extensions": "a.b"}}}"#,
                "customizations.vscode.extensions",
            ),
        ];
        for (text, property) in cases {
            let err = parse(text, "dc.json").unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{property}`")),
                "{text}: {err}"
            );
            assert!(err.to_string().starts_with("dc.json: "), "{err}");
        }
    }

    #[test]
    fn build_and_compose_devcontainers_are_refused_with_the_alternative() {
        let parsed = parse(
            r#"{"build": {"dockerfile": "Dockerfile", "context": ".."}}"#,
            "dc.json",
        )
        .unwrap();
        let err = parsed.config.require_image("dc.json").unwrap_err();
        assert!(matches!(err, DevcontainerError::NeedsBuild { .. }));
        let message = err.to_string();
        assert!(
            message.contains("`build.dockerfile` = `Dockerfile`")
                && message.contains("name it in `image`"),
            "{message}"
        );
        let legacy = parse(r#"{"dockerFile": "Dockerfile", "context": "."}"#, "dc.json")
            .unwrap()
            .config;
        assert_eq!(legacy.build.as_ref().unwrap().context.as_deref(), Some("."));
        assert!(legacy.require_image("dc.json").is_err());
        let compose = parse(
            r#"{"dockerComposeFile": "compose.yml", "service": "app"}"#,
            "dc.json",
        )
        .unwrap();
        assert!(compose
            .config
            .require_image("dc.json")
            .unwrap_err()
            .to_string()
            .contains("Docker Compose"));
        assert_eq!(compose.ignored, ["service"]);
        assert!(matches!(
            parse("{}", "d").unwrap().config.require_image("d"),
            Err(DevcontainerError::NoImage { .. })
        ));
    }

    #[test]
    fn files_over_a_mebibyte_are_refused_before_parsing() {
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_FILE_BYTES));
        let err = parse(&big, "dc.json").unwrap_err();
        assert!(
            matches!(err, DevcontainerError::TooLarge { size, .. } if size == big.len()),
            "{err}"
        );
    }

    #[test]
    fn sizes_use_the_spec_units() {
        assert_eq!(parse_size("4gb"), Some(4 << 30));
        assert_eq!(parse_size("512MB"), Some(512 << 20));
        assert_eq!(parse_size("1tb"), Some(1 << 40));
        assert_eq!(parse_size("2048"), Some(2048));
        assert_eq!(parse_size("1kb"), Some(1024));
        for bad in ["", "gb", "4 gb", "-1gb", "4.5gb", "99999999999999999999tb"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    use crate::MAX_FILE_BYTES;
}
