//! A repository's devcontainer.json applied to an environment (docs/environments.md,
//! "devcontainer.json"): the image from the mirror, features as a cached layer
//! (`engine/features.rs`), users and variables for sessions, lifecycle commands, VS Code
//! settings and the extensions list. Parsing is `airlock_devcontainer`'s; this module
//! decides what the runner does with the result.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use airlock_devcontainer::{DevContainer, FeatureRef, LifecycleCommand, Parsed};
use airlock_ssh_gateway::ExecRequest;

/// An environment class's resources, which `hostRequirements` are checked against.
pub use airlock_api::Resources as ClassResources;

use crate::engine::{Engine, EngineEvent, EnvironmentSpec, FeatureStep};
use crate::error::EngineError;
use crate::session;

/// Why a repository's devcontainer.json cannot be applied; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DevcontainerError {
    #[error("cannot open the repository at {path}: {source}")]
    OpenRepository { path: String, source: rustix::io::Errno },
    #[error("{origin} is a symlink that leads out of the repository; make it a regular file in the repository")]
    LeavesRepository { origin: &'static str },
    #[error("cannot open {origin} in the repository: {source}")]
    Open { origin: &'static str, source: rustix::io::Errno },
    #[error("{origin} is not a regular file; make it one (or remove it to use the project's image and tasks)")]
    NotRegular { origin: &'static str },
    #[error("{origin} is {size} bytes, more than the {MAX_CONFIG_BYTES} read")]
    TooLarge { origin: &'static str, size: u64 },
    #[error("cannot read {origin}: {source}")]
    Read { origin: String, source: std::io::Error },
    #[error("{origin} is not UTF-8 text")]
    NotUtf8 { origin: &'static str },
    /// The file, or a feature's metadata or options, does not follow the spec.
    #[error(transparent)]
    Invalid(#[from] airlock_devcontainer::DevcontainerError),
    #[error(
        "{origin} builds its image (`build`/`dockerfile`); airlock environments run images from the mirror: \
         build the image on the connected side, carry it in the offline manifest and name it in `image`"
    )]
    BuildsImage { origin: String },
    /// `hostRequirements` asks for more than the environment class gives.
    #[error("{origin} requires {asked} (hostRequirements.{requirement}); the environment class gives {gives}: choose a larger class or lower the requirement")]
    ExceedsClass { origin: String, requirement: &'static str, asked: String, gives: String },
    #[error("{origin} requires a GPU (hostRequirements.gpu); airlock environments have none: write `\"gpu\": \"optional\"` if the project works without one")]
    GpuRequired { origin: String },
    #[error("cannot pull feature {feature}: {source}")]
    PullFeature { feature: String, source: EngineError },
    #[error("feature {feature}: {source}")]
    Feature { feature: String, source: Box<DevcontainerError> },
    #[error("feature {feature}: the artifact has no devcontainer-feature.json, or not as a regular file of at most 1 MiB")]
    NoFeatureMetadata { feature: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{what} could not run: {source}")]
    Exec { what: &'static str, source: std::io::Error },
    #[error("{what} exited with {code}: {output}")]
    Failed { what: &'static str, code: i32, output: String },
}

/// The largest devcontainer.json read (the file is user content).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Where devcontainer.json may be, in the order looked at (relative to the repository).
pub const CONFIG_PATHS: [&str; 2] = [".devcontainer/devcontainer.json", ".devcontainer.json"];
/// Output kept from each lifecycle command for its event.
const OUTPUT_TAIL: usize = 3000;
/// VS Code server's machine settings, relative to the session user's home.
pub const VSCODE_SETTINGS: &str = ".vscode-server/data/Machine/settings.json";
/// The extensions the devcontainer asks for, for the IDE step (a JSON list of ids).
pub const EXTENSIONS_FILE: &str = ".airlock/devcontainer/extensions.json";

/// A devcontainer.json found in a repository.
#[derive(Clone, Debug)]
pub struct Found {
    /// Relative to the repository, e.g. `.devcontainer/devcontainer.json`.
    pub origin: String,
    pub text: String,
}

/// Reads the repository's devcontainer.json without following a symlink out of it, without
/// blocking on a FIFO and without reading more than [`MAX_CONFIG_BYTES`].
pub fn read_config(repo_root: &Path) -> Result<Option<Found>, DevcontainerError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(repo_root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|source| DevcontainerError::OpenRepository { path: repo_root.display().to_string(), source })?;
    for origin in CONFIG_PATHS {
        let opened = rustix::fs::openat2(
            &root,
            origin,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        );
        let fd = match opened {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => continue,
            Err(rustix::io::Errno::XDEV) => return Err(DevcontainerError::LeavesRepository { origin }),
            Err(source) => return Err(DevcontainerError::Open { origin, source }),
        };
        let mut file = File::from(fd);
        let read = |source| DevcontainerError::Read { origin: origin.to_string(), source };
        let meta = file.metadata().map_err(read)?;
        if !meta.is_file() {
            return Err(DevcontainerError::NotRegular { origin });
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(DevcontainerError::TooLarge { origin, size: meta.len() });
        }
        let mut bytes = Vec::new();
        file.by_ref().take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(read)?;
        let text = String::from_utf8(bytes).map_err(|_| DevcontainerError::NotUtf8 { origin })?;
        return Ok(Some(Found { origin: origin.to_string(), text }));
    }
    Ok(None)
}

/// `image` as the mirror at `mirror` serves it: the same repository without its host
/// (`mcr.microsoft.com/devcontainers/base:1` → `<mirror>/devcontainers/base:1`; Docker Hub's
/// one-word names under `library/`).
pub fn mirror_reference(image: &str, mirror: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let hosted = first.contains('.') || first.contains(':') || first == "localhost";
    let path = match (hosted, first) {
        (true, _) => rest.to_string(),
        (false, "") => format!("library/{image}"),
        (false, _) => image.to_string(),
    };
    format!("{mirror}/{path}")
}

/// What the runner applies from a devcontainer.json.
#[derive(Clone, Debug)]
pub struct Plan {
    pub origin: String,
    pub config: DevContainer,
    /// Properties not applied (the parser's, plus the runner's own refusals).
    pub ignored: Vec<String>,
    /// The image to pull from the mirror.
    pub image: String,
    pub working_dir: Option<String>,
}

impl Plan {
    /// Checks what must hold before anything starts: no `build`, `hostRequirements` within
    /// the environment class (`class`). `project_image` is used when the file names no image;
    /// its registry is the mirror.
    pub fn new(parsed: Parsed, origin: &str, project_image: &str, class: &ClassResources) -> Result<Plan, DevcontainerError> {
        let Parsed { mut config, mut ignored } = parsed;
        // What the high side knows: where the repository is inside the environment.
        config.substitute(&airlock_devcontainer::Variables {
            container_workspace_folder: Some("/workspace".into()),
            container_env: config.container_env.clone(),
            ..Default::default()
        });
        if config.build.is_some() {
            return Err(DevcontainerError::BuildsImage { origin: origin.to_string() });
        }
        if let Some(req) = &config.host_requirements {
            check_host_requirements(origin, req, class)?;
        }
        let mirror = project_image.split('/').next().unwrap_or_default();
        let image = match &config.image {
            Some(image) => mirror_reference(image, mirror),
            None => project_image.to_string(),
        };
        let working_dir = match config.workspace_folder.as_deref() {
            Some(dir) if dir == "/workspace" || dir.starts_with("/workspace/") => Some(dir.to_string()),
            Some(_) => {
                ignored.push("workspaceFolder (the repository is always at /workspace)".into());
                None
            }
            None => None,
        };
        Ok(Plan { origin: origin.to_string(), config, ignored, image, working_dir })
    }

    /// The user sessions and lifecycle commands run as.
    pub fn session_user(&self) -> Option<String> {
        self.config.remote_user.clone().or_else(|| self.config.container_user.clone())
    }

    /// Fills the environment spec: image, variables, users, working dir, feature layer.
    pub fn apply(&self, spec: &mut EnvironmentSpec, features: &Features) {
        spec.image = self.image.clone();
        spec.env.extend(features.container_env.iter().cloned());
        spec.env.extend(self.config.container_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        spec.session_env = self.config.remote_env.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        spec.session_user = self.session_user();
        spec.working_dir = self.working_dir.clone();
        spec.features_layer = features.layer.clone();
    }

    /// The forwarded ports, one line each (`3000 (label App, onAutoForward notify)`).
    pub fn ports(&self) -> Vec<String> {
        self.config
            .forward_ports
            .iter()
            .map(|port| {
                let name = match &port.host {
                    Some(host) => format!("{host}:{}", port.port),
                    None => port.port.to_string(),
                };
                let Some(attrs) = self.config.ports_attributes.get(&name) else { return name };
                let described: Vec<String> = [("label", &attrs.label), ("onAutoForward", &attrs.on_auto_forward), ("protocol", &attrs.protocol)]
                    .into_iter()
                    .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key} {v}")))
                    .collect();
                if described.is_empty() { name } else { format!("{name} ({})", described.join(", ")) }
            })
            .collect()
    }

    fn cwd(&self) -> &str {
        self.working_dir.as_deref().unwrap_or("/workspace")
    }
}

fn check_host_requirements(origin: &str, req: &airlock_devcontainer::HostRequirements, class: &ClassResources) -> Result<(), DevcontainerError> {
    let exceeds = |requirement, asked: String, gives: String| DevcontainerError::ExceedsClass { origin: origin.to_string(), requirement, asked, gives };
    if let Some(cpus) = req.cpus {
        if class.cpu_millis > 0 && u64::from(cpus) * 1000 > u64::from(class.cpu_millis) {
            return Err(exceeds("cpus", format!("{cpus} CPUs"), format!("{} CPUs", f64::from(class.cpu_millis) / 1000.0)));
        }
    }
    if let Some(memory) = req.memory {
        if class.memory_mib > 0 && memory > u64::from(class.memory_mib) << 20 {
            return Err(exceeds("memory", format!("{} MiB of memory", memory >> 20), format!("{} MiB", class.memory_mib)));
        }
    }
    if let Some(storage) = req.storage {
        if class.disk_gib > 0 && storage > u64::from(class.disk_gib) << 30 {
            return Err(exceeds("storage", format!("{} GiB of storage", storage.div_ceil(1 << 30)), format!("{} GiB", class.disk_gib)));
        }
    }
    if req.gpu_required {
        return Err(DevcontainerError::GpuRequired { origin: origin.to_string() });
    }
    Ok(())
}

/// The features of a plan as built: the layer and the variables they add.
#[derive(Clone, Debug, Default)]
pub struct Features {
    pub layer: Option<String>,
    pub container_env: Vec<(String, String)>,
}

/// Pulls the plan's features (and those they depend on) from the mirror, orders them as the
/// spec says, and builds (or finds cached) their layer on the plan's image. `report` gets
/// (event kind, message).
pub fn build_features(engine: &Engine, plan: &Plan, report: &mut dyn FnMut(&str, &str)) -> Result<Features, DevcontainerError> {
    if plan.config.features.is_empty() {
        return Ok(Features::default());
    }
    let mirror = plan.image.split('/').next().unwrap_or_default();
    let mut resolved: Vec<airlock_devcontainer::ResolvedFeature> = Vec::new();
    let mut pulled = Vec::new();
    let mut wanted: Vec<(FeatureRef, BTreeMap<String, airlock_devcontainer::FeatureOptionValue>)> = plan.config.features.clone();
    let mut next = 0;
    while next < wanted.len() {
        let (feature, options) = wanted[next].clone();
        next += 1;
        let separator = if feature.is_digest() { '@' } else { ':' };
        let reference = format!("{mirror}/{}{separator}{}", feature.mirror_repository(), feature.reference);
        let got = engine
            .pull_feature(&reference, &mut |_: EngineEvent| {})
            .map_err(|source| DevcontainerError::PullFeature { feature: feature.to_string(), source })?;
        let json = read_feature_json(&got.tree).ok_or_else(|| DevcontainerError::NoFeatureMetadata { feature: feature.to_string() })?;
        let meta = airlock_devcontainer::feature_metadata(&json).map_err(|e| in_feature(&feature, e))?;
        if !meta.refused.is_empty() {
            report("feature-refused", &format!("feature {feature} asks for {}, which airlock does not grant; installing it without", meta.refused.join(", ")));
        }
        for (dependency, dep_options) in &meta.depends_on {
            if !wanted.iter().any(|(f, _)| f == dependency) {
                wanted.push((dependency.clone(), dep_options.clone()));
            }
        }
        resolved.push(airlock_devcontainer::ResolvedFeature { reference: feature.clone(), options: options.clone(), metadata: meta.clone() });
        pulled.push((feature, options, meta, got));
    }
    let order = airlock_devcontainer::install_order(&resolved, &plan.config.override_feature_install_order)?;

    let remote_user = plan.config.remote_user.clone().or_else(|| plan.config.container_user.clone()).unwrap_or_else(|| "root".into());
    let container_user = plan.config.container_user.clone().unwrap_or_else(|| "root".into());
    let home = |user: &str| if user == "root" { "/root".to_string() } else { format!("/home/{user}") };
    let mut steps = Vec::new();
    let mut container_env = Vec::new();
    for index in order {
        let (feature, options, meta, got) = &pulled[index];
        let mut env = airlock_devcontainer::feature_env(meta, options).map_err(|e| in_feature(feature, e))?;
        env.push(("_REMOTE_USER".into(), remote_user.clone()));
        env.push(("_CONTAINER_USER".into(), container_user.clone()));
        env.push(("_REMOTE_USER_HOME".into(), home(&remote_user)));
        env.push(("_CONTAINER_USER_HOME".into(), home(&container_user)));
        container_env.extend(meta.container_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        steps.push(FeatureStep { name: feature.to_string(), digest: got.digest.clone(), tree: got.tree.clone(), env });
    }
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    report("features", &format!("installing features in this order: {}", names.join(", ")));
    let layer = engine.build_features(&plan.image, &steps, &mut |_| {})?;
    if layer.built {
        for (name, tail) in &layer.outputs {
            report("feature", format!("feature {name} installed\n{tail}").trim_end());
        }
    } else {
        report("features", &format!("features from the runner's cache (layer {}); no install.sh ran", &layer.key[..12]));
    }
    Ok(Features { layer: Some(layer.key), container_env })
}

fn in_feature(feature: &FeatureRef, e: airlock_devcontainer::DevcontainerError) -> DevcontainerError {
    DevcontainerError::Feature { feature: feature.to_string(), source: Box::new(e.into()) }
}

/// `devcontainer-feature.json` of an unpacked feature (a regular file, not a link, of at most
/// [`MAX_CONFIG_BYTES`]); None when there is no such file.
fn read_feature_json(tree: &Path) -> Option<String> {
    let path = tree.join("devcontainer-feature.json");
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_CONFIG_BYTES {
        return None;
    }
    std::fs::read_to_string(&path).ok()
}

/// Which lifecycle commands a start runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The environment was just created: onCreate, updateContent, postCreate, then the rest.
    First,
    /// A later start: postStart and postAttach only.
    Again,
}

/// Runs the lifecycle commands in the spec's order; each outcome is reported as a
/// `lifecycle` (or `lifecycle-failed`) event with its output's tail. A failing creation
/// command stops the sequence (the environment stays usable). Returns whether all ran.
pub fn run_lifecycle(engine: &Engine, env_id: &str, plan: &Plan, start: Start, report: &mut dyn FnMut(&str, &str)) -> bool {
    let c = &plan.config;
    let mut sequence = Vec::new();
    if start == Start::First {
        sequence.push(("onCreateCommand", &c.on_create_command));
        sequence.push(("updateContentCommand", &c.update_content_command));
        sequence.push(("postCreateCommand", &c.post_create_command));
    }
    sequence.push(("postStartCommand", &c.post_start_command));
    sequence.push(("postAttachCommand", &c.post_attach_command));
    for (name, command) in sequence {
        let Some(command) = command else { continue };
        let outcomes = run_command(engine, env_id, plan.cwd(), name, command);
        let mut failed = false;
        for (label, outcome) in outcomes {
            let (kind, message) = match outcome {
                Ok((0, out)) => ("lifecycle", format!("{label} succeeded\n{out}")),
                Ok((code, out)) => ("lifecycle-failed", format!("{label} exited with {code}\n{out}")),
                Err(e) => ("lifecycle-failed", format!("{label} could not run: {e}")),
            };
            failed |= kind == "lifecycle-failed";
            report(kind, message.trim_end());
        }
        if failed {
            report("lifecycle-failed", &format!("{name} failed: the lifecycle commands after it did not run; the environment is usable"));
            return false;
        }
    }
    true
}

type Outcome = Result<(i32, String), DevcontainerError>;

fn run_command(engine: &Engine, env_id: &str, cwd: &str, label: &str, command: &LifecycleCommand) -> Vec<(String, Outcome)> {
    match command {
        LifecycleCommand::Shell(script) => vec![(label.to_string(), exec(engine, env_id, &format!("cd {} && {script}", quote(cwd))))],
        LifecycleCommand::Exec(args) => {
            let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
            vec![(label.to_string(), exec(engine, env_id, &format!("cd {} && exec {}", quote(cwd), words.join(" "))))]
        }
        LifecycleCommand::Parallel(commands) => std::thread::scope(|scope| {
            let running: Vec<_> = commands
                .iter()
                .map(|(name, command)| {
                    let label = format!("{label} `{name}`");
                    scope.spawn(move || run_command(engine, env_id, cwd, &label, command))
                })
                .collect();
            running.into_iter().flat_map(|handle| handle.join().unwrap_or_default()).collect()
        }),
    }
}

fn exec(engine: &Engine, env_id: &str, command: &str) -> Outcome {
    let req = ExecRequest { command: Some(command.to_string()), ..ExecRequest::default() };
    let process = engine.exec(env_id, &req)?;
    session::wait_with_tail(process, OUTPUT_TAIL).map_err(|source| DevcontainerError::Exec { what: "the command", source })
}

/// Single-quotes a word for a POSIX shell.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Writes VS Code's machine settings and the extensions list into the session user's home,
/// from inside the environment as that user (nothing on the host is written or followed).
pub fn write_vscode_files(engine: &Engine, env_id: &str, plan: &Plan) -> Result<(), DevcontainerError> {
    let c = &plan.config;
    let mut script = String::from("set -e\n");
    let mut env = Vec::new();
    if !c.vscode_settings.is_empty() {
        // A map of JSON values always serialises.
        let settings = serde_json::to_string_pretty(&c.vscode_settings).unwrap_or_default();
        env.push(("AIRLOCK_VSCODE_SETTINGS".to_string(), settings));
        script.push_str(&format!(
            "mkdir -p \"$HOME/{dir}\"\nprintf '%s\\n' \"$AIRLOCK_VSCODE_SETTINGS\" > \"$HOME/{VSCODE_SETTINGS}\"\n",
            dir = parent(VSCODE_SETTINGS)
        ));
    }
    if !c.vscode_extensions.is_empty() {
        let list = serde_json::Value::from(c.vscode_extensions.clone()).to_string();
        env.push(("AIRLOCK_VSCODE_EXTENSIONS".to_string(), list));
        script.push_str(&format!(
            "mkdir -p \"$HOME/{dir}\"\nprintf '%s\\n' \"$AIRLOCK_VSCODE_EXTENSIONS\" > \"$HOME/{EXTENSIONS_FILE}\"\n",
            dir = parent(EXTENSIONS_FILE)
        ));
    }
    if env.is_empty() {
        return Ok(());
    }
    let req = ExecRequest { command: Some(script), env, ..ExecRequest::default() };
    let what = "writing the VS Code settings and extensions list";
    let process = engine.exec(env_id, &req)?;
    match session::wait_with_tail(process, OUTPUT_TAIL).map_err(|source| DevcontainerError::Exec { what, source })? {
        (0, _) => Ok(()),
        (code, out) => Err(DevcontainerError::Failed { what, code, output: out.trim().to_string() }),
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_to_the_mirror_without_their_host() {
        assert_eq!(mirror_reference("mcr.microsoft.com/devcontainers/base:1", "m:5000"), "m:5000/devcontainers/base:1");
        assert_eq!(mirror_reference("ubuntu:22.04", "m:5000"), "m:5000/library/ubuntu:22.04");
        assert_eq!(mirror_reference("org/tool:1", "m:5000"), "m:5000/org/tool:1");
        assert_eq!(mirror_reference("localhost/x@sha256:ab", "m"), "m/x@sha256:ab");
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("it's $HOME"), r"'it'\''s $HOME'");
    }
}
