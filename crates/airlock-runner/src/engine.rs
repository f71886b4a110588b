//! The environment engine: the API the runner agent and the SSH gateway call.
//!
//! ```text
//! DATA/
//!   runner.lock            held (flock) by the one Engine using this data dir
//!   images/                blobs/sha256/<hex>, manifests/<hex>.json, rootfs/<hex>/, tmp/  (image.rs)
//!   envs/<id>/             one environment (rootfs.rs)
//!   slots/<n>              uid range n is taken by the environment named inside (ids.rs)
//!   runc/                  runc's state root (`runc --root`)
//! ```
//!
//! All methods take `&self` and may be called from several threads at once: operations on
//! one environment are serialized, different environments proceed in parallel, and an image
//! wanted by several starts at once is downloaded and unpacked once. Calls block (registry
//! I/O, runc); from async code, call them through `spawn_blocking`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{fchown, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use airlock_ssh_gateway::{ExecProcess, ExecRequest};
use serde_json::json;

use crate::error::EngineError;
use crate::ide::{self, IdeMount};
use crate::ids::{validate_env_id, Slots};
use crate::image::{ImageStore, PulledImage};
use crate::locks::KeyedLocks;
use crate::network::{Network, NetworkConfig, Plan, Refusals};
use crate::registry::RegistryOptions;
use crate::rootfs::{self, EnvPaths};
use crate::runc::Runc;
use crate::state::{now, Desired, EnvRecord};
pub use crate::progress::EngineEvent;
pub use crate::spec::Resources;
use crate::{session, spec, sys, users};

mod features;
pub use features::{FeatureStep, PulledFeature};

/// How to open an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Where images, environments and runc state live. Created if missing (mode 0711).
    pub data_dir: PathBuf,
    /// The runc binary. Default `runc` (from `PATH`).
    pub runc: PathBuf,
    /// First host uid/gid of environment ranges: slot n is `uid_base + n * 65536`, 65536 ids
    /// long. The ids above it must be reserved for this runner. Default 1 000 000.
    pub uid_base: u32,
    pub registry: RegistryOptions,
    /// How long `stop` waits after SIGTERM before SIGKILL. Default 5 s.
    pub stop_timeout: Duration,
    /// The most an image may unpack to (decompression-bomb guard). Default 64 GiB.
    pub max_unpacked_bytes: u64,
    /// cgroup parent of the environments (`/<parent>/<env id>`). Default `airlock`.
    pub cgroup_parent: String,
    /// The longest a runc command (`run -d`, `state`, `kill`, `delete`) may take before it is
    /// killed and reported as failed, so a hung runc cannot stall a worker. Default 120 s.
    pub runc_timeout: Duration,
    /// Each environment's own network under the runner's policy (`network.rs`). None: an
    /// environment has only its loopback.
    pub network: Option<NetworkConfig>,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            data_dir: data_dir.into(),
            runc: PathBuf::from("runc"),
            uid_base: 1_000_000,
            registry: RegistryOptions::default(),
            stop_timeout: Duration::from_secs(5),
            max_unpacked_bytes: 64 << 30,
            cgroup_parent: "airlock".into(),
            runc_timeout: Duration::from_secs(120),
            network: None,
        }
    }
}

/// A file placed in the environment, never written to the host's disk.
#[derive(Clone)]
pub struct SecretFile {
    /// Absolute path in the environment, e.g. `/run/secrets/db`.
    pub path: String,
    pub value: Vec<u8>,
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretFile {{ path: {:?}, value: <{} bytes redacted> }}", self.path, self.value.len())
    }
}

/// What an environment should be. Given again at each `start` (secrets are not stored).
#[derive(Clone, Default)]
pub struct EnvironmentSpec {
    /// `env_[a-z0-9]{1,40}`: a folder name, the runc container id, the cgroup name.
    pub id: String,
    /// Image reference (`registry/repository:tag` or `…@sha256:…`). Fixed at creation.
    pub image: String,
    pub resources: Resources,
    pub env: Vec<(String, String)>,
    pub secret_files: Vec<SecretFile>,
    /// Environment variables for the init process and every exec session, kept on the
    /// environment's tmpfs only.
    pub secret_env: Vec<(String, String)>,
    /// Default: the id with `_` replaced by `-`.
    pub hostname: Option<String>,
    /// IDE trees from the mirror, mounted read-only at `/opt/airlock/ide/<name>` (`ide.rs`).
    pub ide: Vec<IdeMount>,
    /// A devcontainer feature layer from [`Engine::build_features`], stacked above the image.
    /// Fixed at creation.
    pub features_layer: Option<String>,
    /// The user sessions run as (name or uid[:gid]); default the image's `User`.
    pub session_user: Option<String>,
    /// Variables of every session, not of the init process (a devcontainer's `remoteEnv`).
    pub session_env: Vec<(String, String)>,
    /// Sessions' working dir; default the image's, else `/workspace`.
    pub working_dir: Option<String>,
    /// The project's narrowing of the site's allow-list (every entry must be within it);
    /// None: the site's list. Ignored when the runner has no network.
    pub network_allow: Option<Vec<String>>,
    /// Configuration files bound read-only into the environment, readable by every user
    /// (never secrets: see `secret_files`): (absolute path inside, contents).
    pub config_files: Vec<(String, String)>,
}

impl fmt::Debug for EnvironmentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret_names: Vec<&str> = self.secret_env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("EnvironmentSpec")
            .field("id", &self.id)
            .field("image", &self.image)
            .field("resources", &self.resources)
            .field("env", &self.env)
            .field("secret_files", &self.secret_files)
            .field("secret_env (values redacted)", &secret_names)
            .field("hostname", &self.hostname)
            .field("ide", &self.ide)
            .field("features_layer", &self.features_layer)
            .field("session_user", &self.session_user)
            .field("session_env", &self.session_env)
            .field("working_dir", &self.working_dir)
            .field("network_allow", &self.network_allow)
            .field("config_files", &self.config_files.iter().map(|(path, _)| path).collect::<Vec<_>>())
            .finish()
    }
}

/// An environment this runner has on disk.
#[derive(Clone, Debug)]
pub struct LocalEnvironment {
    pub id: String,
    pub image: String,
    pub image_digest: String,
    pub host_uid: u32,
    pub resources: Resources,
    pub status: EnvStatus,
    /// For a running environment: host-side mounts that are gone (the environment itself
    /// keeps running; a stop and start restores them).
    pub missing_mounts: Vec<String>,
}

impl LocalEnvironment {
    fn unreadable(id: &str, reason: String) -> LocalEnvironment {
        LocalEnvironment {
            id: id.to_string(),
            image: String::new(),
            image_digest: String::new(),
            host_uid: 0,
            resources: Resources::default(),
            status: EnvStatus::Lost { reason },
            missing_mounts: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvStatus {
    /// The init process runs (host pid).
    Running { pid: i32 },
    /// Stopped on purpose; `start` brings it back with its workspace.
    Stopped,
    /// Expected to run but does not (`start` brings it back).
    Lost { reason: String },
}

/// Secrets (files and env) of one environment may not exceed this.
const MAX_SECRETS: usize = 16 << 20;
/// A server on an environment's loopback accepts (or refuses) at once; this only bounds one
/// whose accept queue is full.
const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Keeps the environment alive, exits on SIGTERM, and reaps orphans (`wait` in a shell
/// collects any child, adopted ones included).
const INIT: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done";
/// How often refused connections are read from nftables and logged.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(10);

pub struct Engine {
    envs: PathBuf,
    opts: EngineOptions,
    images: ImageStore,
    runc: Runc,
    slots: Slots,
    env_locks: KeyedLocks,
    swap_accounting: bool,
    nofile: u64,
    network: Option<Arc<Network>>,
    _refusal_log: Option<RefusalLog>,
    _lock: File,
}

/// Logs, every few seconds, what the network policy refused each environment (see
/// [`Network::log_refusals`]); stopped with the engine.
struct RefusalLog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RefusalLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Engine {
    /// Opens (creating if needed) a data dir. Only one Engine at a time may use a data dir;
    /// environments left running by a previous one (even killed with -9) are adopted: see
    /// [`Engine::list`].
    pub fn open(opts: EngineOptions) -> Result<Engine, EngineError> {
        fs::create_dir_all(&opts.data_dir).map_err(EngineError::io("create data dir", &opts.data_dir))?;
        let data = fs::canonicalize(&opts.data_dir).map_err(EngineError::io("resolve data dir", &opts.data_dir))?;
        let text = data.to_string_lossy();
        if text.contains([',', ':', '\\']) || text.chars().any(char::is_whitespace) {
            return Err(EngineError::Io {
                action: "use as data dir (overlayfs mount options cannot carry `,` `:` `\\` or spaces in paths)".into(),
                path: data.clone(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
        // runc 1.1 prepares an environment's root from inside its user namespace: every folder
        // above DATA/envs/<id> must let any uid pass.
        for ancestor in data.ancestors().skip(1) {
            let mode = fs::metadata(ancestor).map_err(EngineError::io("inspect", ancestor))?.permissions().mode();
            if mode & 0o001 == 0 {
                return Err(EngineError::DataDirUnreachable { data_dir: data.clone(), path: ancestor.to_path_buf(), mode: mode & 0o7777 });
            }
        }
        // DATA and DATA/envs too (set here); DATA/envs/<id> lets only its own mapped root pass.
        for (dir, mode) in [(&data, 0o711), (&data.join("envs"), 0o711), (&data.join("images"), 0o700), (&data.join("runc"), 0o700), (&data.join("slots"), 0o700)] {
            fs::create_dir_all(dir).map_err(EngineError::io("create", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(EngineError::io("chmod", dir))?;
        }
        let lock_path = data.join("runner.lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(EngineError::io("open", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| EngineError::Locked(data.clone()))?;

        let runc = Runc::new(opts.runc.clone(), data.join("runc"), opts.runc_timeout);
        let version = runc.version()?;
        let images = ImageStore::open(data.join("images"), opts.registry.clone(), opts.max_unpacked_bytes)?;
        let slots = Slots::new(data.join("slots"), opts.uid_base);
        let cgroup = Path::new("/sys/fs/cgroup");
        let swap_accounting = cgroup.join("cgroup.controllers").exists() || cgroup.join("memory/memory.memsw.limit_in_bytes").exists();
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX).min(65536);
        let network = match &opts.network {
            Some(cfg) => Some(Arc::new(Network::open(cfg.clone())?)),
            None => None,
        };
        let refusal_log = network.as_ref().map(|network| {
            let stop = Arc::new(AtomicBool::new(false));
            let (network, flag, slots_dir) = (network.clone(), stop.clone(), data.join("slots"));
            let thread = std::thread::Builder::new()
                .name("network-refusals".into())
                .spawn(move || {
                    let slots = Slots::new(slots_dir, 0);
                    crate::network::every(REFUSAL_LOG_PERIOD, &flag, || {
                        for (slot, env) in slots.taken().unwrap_or_default() {
                            network.log_refusals(&env, slot);
                        }
                    })
                })
                .ok();
            RefusalLog { stop, thread }
        });
        let engine = Engine {
            envs: data.join("envs"),
            opts,
            images,
            runc,
            slots,
            env_locks: KeyedLocks::default(),
            swap_accounting,
            nofile,
            network,
            _refusal_log: refusal_log,
            _lock: lock,
        };
        engine.reconcile()?;
        tracing::info!(data_dir = %data.display(), runc = version, "engine open");
        Ok(engine)
    }

    /// Removes what a runner killed in the middle of creating an environment left behind.
    fn reconcile(&self) -> Result<(), EngineError> {
        for entry in fs::read_dir(&self.envs).map_err(EngineError::io("list", &self.envs))?.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let p = EnvPaths::new(&self.envs, &id);
            if validate_env_id(&id).is_ok() && !p.state.exists() {
                tracing::warn!(env = id, "removing an environment whose creation did not finish");
                let _ = self.runc.delete(&id);
                rootfs::unmount_all(&p)?;
                fs::remove_dir_all(&p.dir).map_err(EngineError::io("remove", &p.dir))?;
            }
        }
        for (slot, owner) in self.slots.taken()? {
            if validate_env_id(&owner).is_err() || !EnvPaths::new(&self.envs, &owner).state.exists() {
                self.slots.free(slot)?;
            }
        }
        if let Some(network) = &self.network {
            // Running environments keep their network (and policy); anything else of ours goes.
            let mut running = Vec::new();
            for (slot, owner) in self.slots.taken()? {
                if self.runc.state(&owner).ok().flatten().is_some_and(|s| s.status == "running") {
                    running.push((owner, slot));
                }
            }
            network.keep_only(&running)?;
        }
        Ok(())
    }

    /// Pulls an image into the shared cache (see `image.rs`) and unpacks it once.
    pub fn pull_image(&self, reference: &str, progress: &mut dyn FnMut(EngineEvent)) -> Result<PulledImage, EngineError> {
        self.images.pull(reference, progress)
    }

    /// Pulls an IDE artifact (one archive layer) from the mirror into the shared cache and
    /// unpacks it once; returns the tree to mount (see `ide.rs`).
    pub fn pull_ide(&self, reference: &str, progress: &mut dyn FnMut(EngineEvent)) -> Result<PathBuf, EngineError> {
        self.images.pull_tree(reference, progress)
    }

    /// The base URL of a registry (`host:port`) as this runner reaches it: `http://` for the
    /// plain-HTTP registries it was given, `https://` for every other.
    pub fn registry_base_url(&self, registry: &str) -> String {
        let plain = crate::registry::matches_host(&self.opts.registry.plain_http, registry);
        format!("{}://{registry}", if plain { "http" } else { "https" })
    }

    /// Creates the environment (first time) or starts it again (after `stop`, or when it was
    /// lost), and returns with its init process running. Starting a running environment does
    /// nothing (new secrets and limits apply at the next start).
    pub fn start(&self, spec: &EnvironmentSpec, progress: &mut dyn FnMut(EngineEvent)) -> Result<(), EngineError> {
        validate_env_id(&spec.id)?;
        validate_spec(spec)?;
        self.env_locks.with(&spec.id, || self.start_locked(spec, progress))
    }

    fn start_locked(&self, spec: &EnvironmentSpec, progress: &mut dyn FnMut(EngineEvent)) -> Result<(), EngineError> {
        let p = self.paths(&spec.id);
        if let Some(mut rec) = EnvRecord::load(&p.state)? {
            if rec.image != spec.image {
                return Err(EngineError::ImageChanged { env: spec.id.clone(), existing: rec.image, requested: spec.image.clone() });
            }
            if self.runc.state(&spec.id)?.is_some_and(|s| s.status == "running") {
                if rec.desired != Desired::Running {
                    rec.desired = Desired::Running;
                    rec.save(&p.state)?;
                }
                return Ok(());
            }
            let image = match self.images.cached(&rec.image, &rec.image_digest)? {
                Some(image) => image,
                // The cache lost it: the same content again, by digest.
                None => {
                    let digest = rec.image_digest.parse::<airlock_oci::Digest>().map_err(|e| EngineError::InvalidReference {
                        reference: rec.image.clone(),
                        reason: e.to_string(),
                    })?;
                    let pinned = airlock_oci::Reference::parse(&rec.image)?.with_digest(digest);
                    self.images.pull(&pinned.to_string(), progress)?
                }
            };
            rec.resources = spec.resources;
            rec.hostname = hostname_of(spec);
            rec.session_user = spec.session_user.clone();
            rec.session_env = spec.session_env.clone();
            rec.working_dir = spec.working_dir.clone();
            return self.launch(&p, &mut rec, &image, spec, false, progress);
        }

        // New: everything that can fail without leaving anything behind comes first.
        let image = self.images.pull(&spec.image, progress)?;
        if !exists_inside(&image.rootfs, "bin/sh") {
            return Err(EngineError::InvalidSpec {
                env: spec.id.clone(),
                reason: format!("image {} has no /bin/sh: the environment's init and sessions need a POSIX shell", spec.image),
            });
        }
        let features = spec.features_layer.as_deref().map(|key| self.feature_layer_dir(key)).transpose()?;
        // The workspace belongs to the user sessions run as (the image's `User`, root if none),
        // who may come from a feature layer (which then holds the whole changed /etc/passwd).
        let session_user = spec.session_user.clone().unwrap_or_else(|| image.config.user.clone());
        let user = features
            .as_deref()
            .filter(|layer| layer.join("etc/passwd").is_file())
            .map_or_else(|| users::resolve_in(&image.rootfs, &session_user), |layer| users::resolve_in(layer, &session_user))
            .map_err(|reason| EngineError::User { env: spec.id.clone(), user: session_user.clone(), reason })?;
        if user.uid >= crate::ids::RANGE || user.gid >= crate::ids::RANGE {
            return Err(EngineError::User { env: spec.id.clone(), user: image.config.user.clone(), reason: "uid and gid must be below 65536".into() });
        }
        let slot = self.slots.allocate(&spec.id)?;
        let mut rec = EnvRecord {
            id: spec.id.clone(),
            slot,
            host_uid: self.slots.host_uid(slot),
            image: spec.image.clone(),
            image_digest: image.digest.clone(),
            image_config: image.config.clone(),
            hostname: hostname_of(spec),
            resources: spec.resources,
            desired: Desired::Stopped,
            created: now(),
            started: None,
            features_layer: spec.features_layer.clone(),
            session_user: spec.session_user.clone(),
            session_env: spec.session_env.clone(),
            working_dir: spec.working_dir.clone(),
        };
        // The record is written once the init runs: a runner that dies before leaves a folder
        // without one, which the next `open` removes (container, mounts, slot included).
        let created = rootfs::create_layout(&p, rec.host_uid, (rec.host_uid + user.uid, rec.host_uid + user.gid))
            .and_then(|()| self.launch(&p, &mut rec, &image, spec, true, progress));
        if let Err(e) = created {
            // No partial environment: the next start is a fresh create.
            if let Err(cleanup) = self.destroy(&p, &spec.id, Some(slot)) {
                tracing::error!(env = spec.id, error = %cleanup, "cleanup after a failed create failed");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Mounts, writes the bundle and secrets to the tmpfs, and runs the init process.
    fn launch(
        &self,
        p: &EnvPaths,
        rec: &mut EnvRecord,
        image: &PulledImage,
        spec: &EnvironmentSpec,
        fresh: bool,
        progress: &mut dyn FnMut(EngineEvent),
    ) -> Result<(), EngineError> {
        if !fresh {
            // A container runc still knows (stopped, or half-created by a dead runner) goes first.
            self.runc.delete(&rec.id)?;
        }
        let secrets_size: usize = spec.secret_files.iter().map(|s| s.value.len()).sum::<usize>()
            + spec.secret_env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let ide_trees: Vec<(&str, &Path)> = spec.ide.iter().map(|m| (m.name.as_str(), m.tree.as_path())).collect();
        let features = rec.features_layer.as_deref().map(|key| self.feature_layer_dir(key)).transpose()?;
        rootfs::mount_all(p, &image.rootfs, features.as_deref(), rec.host_uid, (4 << 20) + 2 * secrets_size as u64, &ide_trees)?;
        progress(EngineEvent::RootfsMounted { env: rec.id.clone() });
        let run = self.network_plan(p, rec, spec).and_then(|network| {
            let mut files = network.as_ref().map_or_else(Vec::new, |(_, files)| files.clone());
            let config: Vec<(String, &str, &str)> =
                spec.config_files.iter().enumerate().map(|(i, (path, text))| (format!("config-{i}"), text.as_str(), path.as_str())).collect();
            for (_, _, destination) in &config {
                check_config_path(&rec.id, destination)?;
            }
            files.extend(write_public_files(p, rec, &config)?);
            self.write_bundle(p, rec, image, spec, &files)?;
            let pid = self.runc.run_detached(&rec.id, &p.run, &p.log)?;
            Ok((pid, network))
        });
        let pid = match run {
            Ok((pid, network)) => {
                if let Some((plan, _)) = network {
                    if let Err(e) = self.network_attach(rec, pid, &plan) {
                        let _ = self.halt(p, &rec.id);
                        return Err(e);
                    }
                }
                pid
            }
            Err(e) => {
                let _ = self.runc.delete(&rec.id);
                let _ = rootfs::unmount_all(p);
                return Err(e);
            }
        };
        rec.desired = Desired::Running;
        rec.started = Some(now());
        rec.save(&p.state)?;
        // After the record: sessions (this one included) find the environment by it.
        if let Err(e) = self.link_ide(rec, &spec.ide) {
            let _ = self.halt(p, &rec.id);
            return Err(e);
        }
        tracing::info!(env = rec.id, pid, host_uid = rec.host_uid, "environment running");
        progress(EngineEvent::Started { env: rec.id.clone(), pid });
        Ok(())
    }

    /// Links the IDE mounts into the session user's home, in the layout clients look for. Run
    /// inside the environment as that user, so nothing on the host is written or followed.
    fn link_ide(&self, rec: &EnvRecord, mounts: &[IdeMount]) -> Result<(), EngineError> {
        if mounts.iter().all(|m| m.home_links.is_empty()) {
            return Ok(());
        }
        let req = ExecRequest { command: Some(ide::link_script(mounts)), ..ExecRequest::default() };
        let mut process = self.exec(&rec.id, &req)?;
        let airlock_ssh_gateway::ExecIo::Pipes { stdin, stdout, mut stderr } = process.io else {
            return Err(EngineError::InvalidSpec { env: rec.id.clone(), reason: "linking the IDE got a terminal".into() });
        };
        drop((stdin, stdout));
        let mut errors = String::new();
        let _ = io::Read::read_to_string(&mut stderr, &mut errors);
        let status = process.child.wait().map_err(EngineError::io("wait for the IDE links of", &rec.id))?;
        if !status.success() {
            return Err(EngineError::InvalidSpec {
                env: rec.id.clone(),
                reason: format!("cannot link the IDE into the user's home ({status}): {}", errors.trim()),
            });
        }
        Ok(())
    }

    /// With a runner network: what the environment may reach (refused here when the
    /// project asks for more than the site allows), and its `/etc/hosts` and
    /// `/etc/resolv.conf` on the tmpfs, readable by the environment.
    fn network_plan(&self, p: &EnvPaths, rec: &EnvRecord, spec: &EnvironmentSpec) -> Result<Option<(Plan, Vec<(String, String)>)>, EngineError> {
        let Some(network) = &self.network else { return Ok(None) };
        let plan = network.plan(spec.network_allow.as_deref()).map_err(|source| EngineError::Network { env: rec.id.clone(), source })?;
        let files = write_public_files(
            p,
            rec,
            &[("hosts".into(), plan.hosts_file.as_str(), "/etc/hosts"), ("resolv.conf".into(), plan.resolv_conf.as_str(), "/etc/resolv.conf")],
        )?;
        Ok(Some((plan, files)))
    }

    /// Gives the running environment its interface and rules (see `network.rs`).
    fn network_attach(&self, rec: &EnvRecord, pid: i32, plan: &Plan) -> Result<(), EngineError> {
        let Some(network) = &self.network else { return Ok(()) };
        let address = network.attach(&rec.id, rec.slot, pid, plan).map_err(|source| EngineError::Network { env: rec.id.clone(), source })?;
        tracing::info!(env = rec.id, %address, "environment network ready");
        Ok(())
    }

    /// Removes the environment's network (nothing when the runner has none, or it is gone).
    fn network_down(&self, env_id: &str, slot: Option<u32>) -> Result<(), EngineError> {
        let Some(network) = &self.network else { return Ok(()) };
        let slot = match slot {
            Some(slot) => Some(slot),
            None => self.slots.taken()?.into_iter().find(|(_, owner)| owner == env_id).map(|(slot, _)| slot),
        };
        match slot {
            Some(slot) => network.teardown(env_id, slot),
            None => Ok(()),
        }
        .map_err(|source| EngineError::Network { env: env_id.to_string(), source })
    }

    /// What the network policy refused the environment: a count and the destinations
    /// remembered (the last 10 minutes). Zero without a runner network.
    pub fn network_refusals(&self, env_id: &str) -> Result<Refusals, EngineError> {
        validate_env_id(env_id)?;
        let Some(network) = &self.network else { return Ok(Refusals::default()) };
        let Some((slot, _)) = self.slots.taken()?.into_iter().find(|(_, owner)| owner == env_id) else {
            return Err(EngineError::NotFound(env_id.to_string()));
        };
        network.refusals(slot).map_err(|source| EngineError::Network { env: env_id.to_string(), source })
    }

    /// Refused packets of every environment on the runner's network, from one read of the
    /// nftables counters (empty without a runner network): for the metrics.
    pub fn network_refusal_counts(&self) -> Result<Vec<(String, u64)>, EngineError> {
        let Some(network) = &self.network else { return Ok(Vec::new()) };
        let counts = network.refusal_counts()?;
        Ok(self.slots.taken()?.into_iter().filter_map(|(slot, env)| counts.get(&slot).map(|c| (env, *c))).collect())
    }

    /// Where the runner names a running environment's network namespace (`/run/netns/...`;
    /// None without a runner network).
    pub fn network_namespace(&self, env_id: &str) -> Result<Option<PathBuf>, EngineError> {
        validate_env_id(env_id)?;
        Ok(self.network.as_ref().map(|n| n.netns_path(env_id)))
    }

    /// The environment's address on the runner's network (None without one).
    pub fn network_address(&self, env_id: &str) -> Result<Option<std::net::Ipv4Addr>, EngineError> {
        let Some(network) = &self.network else { return Ok(None) };
        let rec = EnvRecord::load(&self.paths(env_id).state)?.ok_or_else(|| EngineError::NotFound(env_id.to_string()))?;
        Ok(Some(network.address(rec.slot)?))
    }

    /// Removes the runner's bridge and nftables tables (after every environment is deleted):
    /// for uninstalling, and for tests that check nothing is left.
    pub fn remove_network(&self) -> Result<(), EngineError> {
        match &self.network {
            Some(network) => Ok(network.remove_all()?),
            None => Ok(()),
        }
    }

    /// Secret files (0400, the environment's root) and `config.json` on the tmpfs.
    fn write_bundle(
        &self,
        p: &EnvPaths,
        rec: &EnvRecord,
        image: &PulledImage,
        spec: &EnvironmentSpec,
        network_files: &[(String, String)],
    ) -> Result<(), EngineError> {
        fs::create_dir(&p.secrets).map_err(EngineError::io("create", &p.secrets))?;
        let mut secret_mounts = Vec::new();
        for (index, secret) in spec.secret_files.iter().enumerate() {
            let path = p.secrets.join(index.to_string());
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o400).open(&path).map_err(EngineError::io("create", &path))?;
            file.write_all(&secret.value).map_err(EngineError::io("write", &path))?;
            fchown(&file, Some(rec.host_uid), Some(rec.host_uid)).map_err(EngineError::io("chown", &path))?;
            secret_mounts.push((path.to_string_lossy().into_owned(), secret.path.clone()));
        }
        // Root-owned 0755: the user may pass and use the sockets, not plant files or links.
        let sockets = p.run.join("airlock");
        fs::create_dir(&sockets).map_err(EngineError::io("create", &sockets))?;
        fs::set_permissions(&sockets, fs::Permissions::from_mode(0o755)).map_err(EngineError::io("chmod", &sockets))?;
        secret_mounts.push((sockets.to_string_lossy().into_owned(), crate::git::GUEST_DIR.to_string()));
        let mut env = EnvVars::from_list(&image.config.env);
        env.set_default("PATH", DEFAULT_PATH);
        env.set("HOSTNAME", &rec.hostname);
        env.set("HOME", "/root");
        for (k, v) in spec.env.iter().chain(&spec.secret_env) {
            env.set(k, v);
        }
        let args = ["/bin/sh".to_string(), "-c".into(), INIT.into()];
        let cgroups_path = format!("/{}/{}", self.opts.cgroup_parent, rec.id);
        let document = spec::runtime_spec(&spec::SpecInput {
            id: &rec.id,
            hostname: &rec.hostname,
            rootfs: &p.rootfs,
            workspace: &p.workspace,
            host_uid: rec.host_uid,
            resources: &rec.resources,
            env: &env.to_list(),
            args: &args,
            secret_mounts: &secret_mounts,
            ide_mounts: &spec.ide.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            cgroups_path: &cgroups_path,
            network_files,
            swap_accounting: self.swap_accounting,
            nofile: self.nofile,
        });
        let config = p.run.join("config.json");
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&config).map_err(EngineError::io("create", &config))?;
        file.write_all(&serde_json::to_vec(&document).expect("specs serialize")).map_err(EngineError::io("write", &config))
    }

    /// Stops the environment (SIGTERM, then SIGKILL after the stop timeout) and unmounts its
    /// root and tmpfs (secrets gone). Workspace and overlay upper stay. Stopping a stopped
    /// environment is fine.
    pub fn stop(&self, env_id: &str) -> Result<(), EngineError> {
        validate_env_id(env_id)?;
        self.env_locks.with(env_id, || {
            let p = self.paths(env_id);
            let mut rec = EnvRecord::load(&p.state)?.ok_or_else(|| EngineError::NotFound(env_id.to_string()))?;
            self.halt(&p, env_id)?;
            rec.desired = Desired::Stopped;
            rec.save(&p.state)?;
            tracing::info!(env = env_id, "environment stopped");
            Ok(())
        })
    }

    /// Removes everything of the environment (container, mounts, folders, uid range).
    /// Deleting an unknown environment is fine.
    pub fn delete(&self, env_id: &str) -> Result<(), EngineError> {
        validate_env_id(env_id)?;
        self.env_locks.with(env_id, || {
            let p = self.paths(env_id);
            let slot = EnvRecord::load(&p.state).ok().flatten().map(|r| r.slot);
            self.destroy(&p, env_id, slot)?;
            tracing::info!(env = env_id, "environment deleted");
            Ok(())
        })
    }

    fn destroy(&self, p: &EnvPaths, env_id: &str, slot: Option<u32>) -> Result<(), EngineError> {
        self.halt(p, env_id)?;
        // halt() verified nothing is mounted below: removal cannot reach the image or a tmpfs.
        match fs::remove_dir_all(&p.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(EngineError::io("remove", &p.dir)(e)),
            _ => {}
        }
        match slot {
            Some(slot) => self.slots.free(slot)?,
            None => {
                for (slot, owner) in self.slots.taken()? {
                    if owner == env_id {
                        self.slots.free(slot)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the container (if any) and unmounts everything below the environment folder.
    fn halt(&self, p: &EnvPaths, env_id: &str) -> Result<(), EngineError> {
        if let Some(state) = self.runc.state(env_id)? {
            if state.status == "running" && state.pid > 0 {
                if let Err(e) = self.runc.kill(env_id, "TERM") {
                    tracing::debug!(env = env_id, error = %e, "SIGTERM not delivered");
                }
                let gone = sys::wait_exit(state.pid, self.opts.stop_timeout).unwrap_or(false);
                if !gone {
                    tracing::warn!(env = env_id, "init ignored SIGTERM, killing it");
                    let _ = self.runc.kill(env_id, "KILL");
                    let _ = sys::wait_exit(state.pid, Duration::from_secs(5));
                }
            }
            self.runc.delete(env_id)?;
        }
        self.network_down(env_id, None)?;
        rootfs::unmount_all(p)
    }

    /// Every environment on disk with its actual state: after a runner restart, running ones
    /// are simply used again (nothing to re-attach; runc and the mounts outlive the runner),
    /// lost ones (expected running, not running: the host rebooted, init died) and stopped
    /// ones come back with `start`.
    pub fn list(&self) -> Result<Vec<LocalEnvironment>, EngineError> {
        let mut found = Vec::new();
        let mut names: Vec<String> =
            fs::read_dir(&self.envs).map_err(EngineError::io("list", &self.envs))?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        // Read once for the whole list: each read is the host's whole mount table.
        let mut mounts: Option<Vec<crate::sys::MountEntry>> = None;
        for id in names {
            if validate_env_id(&id).is_err() {
                continue;
            }
            let p = self.paths(&id);
            // One unreadable environment must not hide the others: it is listed as lost.
            let rec = match EnvRecord::load(&p.state) {
                Ok(Some(rec)) => rec,
                // No record: being created right now by another thread.
                Ok(None) => continue,
                Err(e) => {
                    found.push(LocalEnvironment::unreadable(&id, e.to_string()));
                    continue;
                }
            };
            let status = match (self.runc.state(&id), rec.desired) {
                (Err(e), _) => EnvStatus::Lost { reason: e.to_string() },
                (Ok(Some(s)), _) if s.status == "running" => EnvStatus::Running { pid: s.pid },
                (Ok(_), Desired::Stopped) => EnvStatus::Stopped,
                (Ok(Some(s)), Desired::Running) => EnvStatus::Lost { reason: format!("runc reports it {}: its init process ended", s.status) },
                (Ok(None), Desired::Running) => {
                    EnvStatus::Lost { reason: "runc does not know the container: the host restarted or runc's state was removed".into() }
                }
            };
            let missing_mounts = match status {
                EnvStatus::Running { .. } => {
                    if mounts.is_none() {
                        mounts = Some(crate::sys::mountinfo().map_err(EngineError::io("read", "/proc/self/mountinfo"))?);
                    }
                    let mounts = mounts.as_deref().unwrap_or_default();
                    rootfs::missing_mounts(&p, mounts).into_iter().map(str::to_string).collect()
                }
                _ => Vec::new(),
            };
            if !missing_mounts.is_empty() {
                tracing::warn!(env = id, missing = ?missing_mounts, "running environment lost host mounts; stop and start it to restore them");
            }
            found.push(LocalEnvironment {
                id: rec.id,
                image: rec.image,
                image_digest: rec.image_digest,
                host_uid: rec.host_uid,
                resources: rec.resources,
                status,
                missing_mounts,
            });
        }
        Ok(found)
    }

    /// Runs a command (or, with `command: None`, the user's login shell) inside a running
    /// environment, as the image's user, in its working dir (default `/workspace`), with the
    /// environment's variables (secret ones included) plus the request's. With `pty`, the
    /// process gets a terminal; see `session.rs` for how it reaches the caller.
    pub fn exec(&self, env_id: &str, req: &ExecRequest) -> Result<ExecProcess, EngineError> {
        validate_env_id(env_id)?;
        for (k, v) in &req.env {
            check_env_pair(env_id, k, v)?;
        }
        let p = self.paths(env_id);
        let rec = EnvRecord::load(&p.state)?.ok_or_else(|| EngineError::NotFound(env_id.to_string()))?;
        let pid = self.running_pid(env_id)?;
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let user_name = rec.session_user.as_ref().unwrap_or(&rec.image_config.user);
        let user = users::resolve_in(&root, user_name).map_err(|reason| EngineError::User { env: env_id.into(), user: user_name.clone(), reason })?;
        let shell = if exists_inside(&root, user.shell.trim_start_matches('/')) { user.shell.clone() } else { "/bin/sh".to_string() };

        let mut env = EnvVars::from_list(&self.init_env(&p, pid)?);
        env.set("HOME", &user.home);
        env.set("SHELL", &shell);
        if !user.name.is_empty() {
            env.set("USER", &user.name);
            env.set("LOGNAME", &user.name);
        }
        if let Some(pty) = &req.pty {
            env.set("TERM", &pty.term);
        }
        for (k, v) in rec.session_env.iter().chain(&req.env) {
            env.set(k, v);
        }
        let args = match &req.command {
            None => vec![shell, "-l".to_string()],
            Some(command) => vec![shell, "-c".to_string(), command.clone()],
        };
        let cwd = match &rec.working_dir {
            Some(dir) => dir.clone(),
            None if rec.image_config.working_dir.is_empty() => "/workspace".to_string(),
            None => rec.image_config.working_dir.clone(),
        };
        let mut process = json!({
            "terminal": req.pty.is_some(),
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env.to_list(),
            "cwd": cwd,
            "capabilities": spec::capabilities(user.uid == 0),
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": self.nofile, "soft": self.nofile}],
            "noNewPrivileges": true
        });
        if let Some(pty) = &req.pty {
            process["consoleSize"] = json!({"height": pty.rows, "width": pty.cols});
        }
        session::spawn(&self.runc, env_id, &process, req.pty.as_ref())
    }

    /// The host pid of a running environment's init process.
    fn running_pid(&self, env_id: &str) -> Result<i32, EngineError> {
        match self.runc.state(env_id)? {
            Some(s) if s.status == "running" => Ok(s.pid),
            Some(s) => Err(EngineError::NotRunning { env: env_id.into(), state: s.status }),
            None => Err(EngineError::NotRunning { env: env_id.into(), state: "no container".into() }),
        }
    }

    /// Connects to `addr` on a running environment's loopback, from inside its network
    /// namespace (the SSH gateway's `direct-tcpip`): the socket never exists in the runner's
    /// namespace, so nothing on the host or beyond is reachable this way.
    pub fn connect_loopback(&self, env_id: &str, addr: SocketAddr) -> Result<TcpStream, EngineError> {
        validate_env_id(env_id)?;
        if !addr.ip().is_loopback() {
            return Err(EngineError::Forward { env: env_id.into(), addr, source: io::Error::new(io::ErrorKind::PermissionDenied, "only the environment's loopback may be connected to") });
        }
        let pid = self.running_pid(env_id)?;
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        airlock_ssh_gateway::connect_in_netns(&netns, addr, FORWARD_CONNECT_TIMEOUT)
            .map_err(|source| EngineError::Forward { env: env_id.into(), addr, source })
    }

    /// The environment variables of the init process: from the bundle on the tmpfs, or (if a
    /// host-side mount was lost) from the init process itself.
    fn init_env(&self, p: &EnvPaths, pid: i32) -> Result<Vec<String>, EngineError> {
        let config = p.run.join("config.json");
        if let Ok(bytes) = fs::read(&config) {
            let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| EngineError::State { path: config.clone(), reason: e.to_string() })?;
            let list = doc["process"]["env"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
            return Ok(list.unwrap_or_default());
        }
        let environ = PathBuf::from(format!("/proc/{pid}/environ"));
        let bytes = fs::read(&environ).map_err(EngineError::io("read", &environ))?;
        Ok(bytes.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
    }

    /// Host path of the environment's workspace (bind-mounted at `/workspace`).
    pub fn workspace_dir(&self, env_id: &str) -> PathBuf {
        self.envs.join(env_id).join("workspace")
    }

    /// The host folder bound read-only at /run/airlock in the environment, on its tmpfs (gone
    /// at stop): the runner's sockets for git credentials live there (`git.rs`).
    pub fn git_socket_dir(&self, env_id: &str) -> PathBuf {
        self.paths(env_id).run.join("airlock")
    }

    /// The host uid and gid sessions run as (the image's user, mapped): the workspace's owner.
    pub fn session_owner(&self, env_id: &str) -> Result<(u32, u32), EngineError> {
        use std::os::unix::fs::MetadataExt;
        validate_env_id(env_id)?;
        let workspace = self.workspace_dir(env_id);
        let meta = fs::metadata(&workspace).map_err(EngineError::io("inspect", &workspace))?;
        Ok((meta.uid(), meta.gid()))
    }

    /// The host uid (and gid) that is root inside the environment.
    pub fn host_uid(&self, env_id: &str) -> Result<u32, EngineError> {
        validate_env_id(env_id)?;
        let rec = EnvRecord::load(&self.paths(env_id).state)?.ok_or_else(|| EngineError::NotFound(env_id.to_string()))?;
        Ok(rec.host_uid)
    }

    /// The data dir, canonical.
    pub fn data_dir(&self) -> &Path {
        self.envs.parent().expect("envs is inside the data dir")
    }

    /// runc's state root (`runc --root`), for tools that inspect containers directly.
    pub fn runc_root(&self) -> &Path {
        self.runc.root()
    }

    fn paths(&self, id: &str) -> EnvPaths {
        EnvPaths::new(&self.envs, id)
    }
}

fn hostname_of(spec: &EnvironmentSpec) -> String {
    spec.hostname.clone().unwrap_or_else(|| spec.id.replace('_', "-"))
}

fn validate_spec(spec: &EnvironmentSpec) -> Result<(), EngineError> {
    let bad = |reason: String| EngineError::InvalidSpec { env: spec.id.clone(), reason };
    if let Some(dir) = &spec.working_dir {
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(bad(format!("working dir `{dir}` is not an absolute path")));
        }
    }
    for (k, v) in spec.env.iter().chain(&spec.secret_env).chain(&spec.session_env) {
        check_env_pair(&spec.id, k, v)?;
    }
    if let Some(h) = &spec.hostname {
        let ok = !h.is_empty()
            && h.len() <= 63
            && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !h.starts_with('-')
            && !h.ends_with('-');
        if !ok {
            return Err(bad(format!("hostname `{h}` is not 1-63 lowercase letters, digits or inner `-`")));
        }
    }
    let mut names = std::collections::HashSet::new();
    for m in &spec.ide {
        ide::check_mount(m).map_err(bad)?;
        if !names.insert(&m.name) {
            return Err(bad(format!("IDE mount `{}` is given twice", m.name)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for s in &spec.secret_files {
        let path = Path::new(&s.path);
        let normal = path.is_absolute() && path.components().skip(1).all(|c| matches!(c, Component::Normal(_))) && path.components().count() > 1;
        let reserved = ["/proc", "/sys", "/dev", "/workspace"].iter().any(|r| path.starts_with(r));
        if !normal || reserved || s.path.len() > 1024 || s.path.contains('\0') || s.path.ends_with('/') {
            return Err(bad(format!(
                "secret file path `{}` must be an absolute, normalized file path outside /proc, /sys, /dev and /workspace",
                s.path
            )));
        }
        if !seen.insert(path) {
            return Err(bad(format!("secret file path `{}` is given twice", s.path)));
        }
        total += s.value.len();
    }
    total += spec.secret_env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if total > MAX_SECRETS {
        return Err(bad(format!("secrets total {total} bytes, more than the {MAX_SECRETS} allowed")));
    }
    Ok(())
}

fn check_env_pair(env: &str, k: &str, v: &str) -> Result<(), EngineError> {
    if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
        return Err(EngineError::InvalidSpec { env: env.to_string(), reason: format!("environment variable `{k}` has an empty name, a `=` in its name or a NUL byte") });
    }
    Ok(())
}

/// Whether `path` exists below `root`, symlinks resolved inside it.
fn exists_inside(root: &Path, path: &str) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Ok(dir) = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) else { return false };
    rustix::fs::openat2(&dir, path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS).is_ok()
}

/// `KEY=value` list with "last one wins" and stable order.
struct EnvVars {
    order: Vec<String>,
    values: BTreeMap<String, String>,
}

impl EnvVars {
    fn from_list(list: &[String]) -> EnvVars {
        let mut vars = EnvVars { order: Vec::new(), values: BTreeMap::new() };
        for entry in list {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            vars.set(k, v);
        }
        vars
    }

    fn set(&mut self, k: &str, v: &str) {
        if self.values.insert(k.to_string(), v.to_string()).is_none() {
            self.order.push(k.to_string());
        }
    }

    fn set_default(&mut self, k: &str, v: &str) {
        if !self.values.contains_key(k) {
            self.set(k, v);
        }
    }

    fn to_list(&self) -> Vec<String> {
        self.order.iter().map(|k| format!("{k}={}", self.values[k])).collect()
    }
}

/// Writes each (name on the tmpfs, contents, path inside) to the environment's run folder,
/// readable by all and owned by its root, for a read-only bind: (file, path inside) each.
fn write_public_files(p: &EnvPaths, rec: &EnvRecord, files: &[(String, &str, &str)]) -> Result<Vec<(String, String)>, EngineError> {
    let mut written = Vec::new();
    for (name, text, destination) in files {
        let path = p.run.join(name);
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o444).open(&path).map_err(EngineError::io("create", &path))?;
        file.write_all(text.as_bytes()).map_err(EngineError::io("write", &path))?;
        fchown(&file, Some(rec.host_uid), Some(rec.host_uid)).map_err(EngineError::io("chown", &path))?;
        written.push((path.to_string_lossy().into_owned(), destination.to_string()));
    }
    Ok(written)
}

/// A configuration file's path inside: absolute, plain, and not where the kernel's or the
/// runtime's own trees are mounted.
fn check_config_path(env: &str, path: &str) -> Result<(), EngineError> {
    let parts: Vec<Component> = Path::new(path).components().collect();
    let plain = path.starts_with('/') && parts.len() > 1 && parts[1..].iter().all(|c| matches!(c, Component::Normal(_)));
    let reserved = ["/proc", "/sys", "/dev", "/run"].iter().any(|r| Path::new(path).starts_with(r));
    if !plain || reserved {
        return Err(EngineError::InvalidSpec {
            env: env.to_string(),
            reason: format!("configuration file path `{path}` must be absolute, without `..`, and outside /proc, /sys, /dev and /run"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_is_shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Engine>();
    }

    #[test]
    fn specs_are_validated_and_secrets_redacted() {
        let mut spec = EnvironmentSpec { id: "env_a".into(), image: "r.example/a:1".into(), ..Default::default() };
        assert!(validate_spec(&spec).is_ok());
        for bad in ["relative/path", "/proc/x", "/workspace/key", "/run/../etc/x", "/", "/run/secrets/"] {
            spec.secret_files = vec![SecretFile { path: bad.into(), value: b"v".to_vec() }];
            assert!(validate_spec(&spec).is_err(), "{bad}");
        }
        spec.secret_files = vec![SecretFile { path: "/run/secrets/db".into(), value: b"hunter2".to_vec() }];
        spec.secret_env = vec![("TOKEN".into(), "s3cr3t".into())];
        assert!(validate_spec(&spec).is_ok());
        let shown = format!("{spec:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t") && shown.contains("TOKEN"), "{shown}");
        spec.env = vec![("A=B".into(), "x".into())];
        assert!(validate_spec(&spec).is_err());
        spec.env = vec![];
        spec.hostname = Some("Bad_Host".into());
        assert!(validate_spec(&spec).is_err());
    }

    #[test]
    fn env_vars_override_in_place() {
        let mut vars = EnvVars::from_list(&["PATH=/bin".into(), "A=1".into()]);
        vars.set("A", "2");
        vars.set("B", "3");
        vars.set_default("PATH", "/usr/bin");
        assert_eq!(vars.to_list(), ["PATH=/bin", "A=2", "B=3"]);
    }
}
