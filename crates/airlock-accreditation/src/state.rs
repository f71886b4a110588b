//! Gathering the live state once: the effective configuration, the keys it names, the
//! mirror's imports and artifacts, and the control plane's orgs, users, secrets, runners and
//! audit chain. Everything else is computed from this.
//!
//! The mirror is read through its admin socket when `mirror serve` runs, otherwise from its
//! data folder; the control plane's database is opened directly (sled allows one process, so
//! a running control plane is reported as such). A data folder that does not exist is not an
//! error: the documents say what was absent. Nothing is created or changed.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_bundle::{annotation, ArtifactKind, PublicKey, Silent};
use airlock_oci::ManifestLinks;
use airlock_config::Config;
use airlock_control_plane::audit::{self, AuditRecord, Filter, VerifyReport};
use airlock_control_plane::model::{Org, Project, Runner, Secret, User};
use airlock_control_plane::secrets::Kek;
use airlock_control_plane::store::{keys, Store as CpStore, StoreError as CpStoreError};
use airlock_mirror::admin::{self, Request};
use airlock_mirror::blobs::BlobStore;
use airlock_mirror::store::{AnchorRecord, ArtifactRecord, HistoryRecord, Store as MirrorStore, StoreError as MirrorStoreError};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::crypto::Lock;
use crate::{Error, Options};

/// A part of the system that was found, or why it was not.
pub enum Part<T> {
    Present(T),
    Absent(String),
}

impl<T> Part<T> {
    pub fn present(&self) -> Option<&T> {
        match self {
            Part::Present(t) => Some(t),
            Part::Absent(_) => None,
        }
    }
}

pub struct State {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    /// The effective configuration as canonical JSON, and its SHA-256 (hex).
    pub config_json: String,
    pub config_sha256: String,
    pub mirror: Part<MirrorState>,
    pub control_plane: Part<ControlPlaneState>,
    pub trusted_keys: Vec<KeyFile>,
    pub keks: Vec<KekFile>,
    pub signing_key: Option<PathBuf>,
    pub key_password: Option<String>,
    pub as_of: AsOf,
    pub lock: Lock,
    /// The egress guard's refusal log (`DATA/egress-audit.jsonl`) and how many records it
    /// holds, when it exists.
    pub egress_log: PathBuf,
    pub egress_refusals: Option<usize>,
}

pub struct MirrorState {
    pub dir: PathBuf,
    /// Read through the running server's admin socket rather than the folder.
    pub through_server: bool,
    pub artifacts: Vec<Artifact>,
    pub history: Vec<HistoryRecord>,
    /// The trust anchor every import on this folder checks, as pinned.
    pub anchor: Option<AnchorRecord>,
}

pub struct Artifact {
    pub record: ArtifactRecord,
    /// For every kind but images: the one file the artifact manifest carries as its layer.
    pub file: Option<FileLayer>,
}

pub struct FileLayer {
    /// sha256 of the file, hex.
    pub sha256: String,
    pub size: u64,
    pub name: Option<String>,
}

pub struct ControlPlaneState {
    pub dir: PathBuf,
    pub initialized: bool,
    pub orgs: Vec<Org>,
    pub users: Vec<User>,
    pub secrets: Vec<Secret>,
    pub runners: Vec<Runner>,
    pub projects: Vec<Project>,
    pub ssh_keys: usize,
    pub environments: usize,
    pub audit: VerifyReport,
    /// Records per action and outcome, as found in the log.
    pub audit_actions: BTreeMap<String, BTreeMap<String, u64>>,
    pub newest_audit: Option<SystemTime>,
}

/// A minisign public key named by the configuration.
pub struct KeyFile {
    pub path: PathBuf,
    pub loaded: Result<LoadedKey, String>,
}

pub struct LoadedKey {
    pub key_id: String,
    /// SHA-256 (hex) of the decoded public key (algorithm, key id and key bytes).
    pub fingerprint: String,
}

/// A key-encryption key file named by the configuration (or, when it names none, the
/// location older versions created one in). `id` is an error when the key is missing or
/// sits inside the data folder it protects.
pub struct KekFile {
    pub path: PathBuf,
    pub id: Result<String, String>,
}

/// The time the documents carry: the newest recorded state change, or SOURCE_DATE_EPOCH.
pub struct AsOf {
    /// RFC 3339, UTC, whole seconds.
    pub time: String,
    pub source: String,
}

/// One imported bundle and the artifacts the mirror attributes to it now.
pub struct Bundle<'a> {
    pub id: String,
    pub import: &'a HistoryRecord,
    pub artifacts: Vec<&'a Artifact>,
}

impl State {
    pub fn gather(options: &Options) -> Result<State, Error> {
        let mut config = Config::load(options.config_path.as_deref(), options.vars.iter().cloned())?;
        if let Some(dir) = &options.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(key) = &options.signing_key {
            config.site.signing_key = Some(key.clone());
        }
        let config_json = config.canonical_json();
        let config_sha256 = hex::encode(Sha256::digest(config_json.as_bytes()));
        let mirror = read_mirror(&config.mirror_dir())?;
        let control_plane = read_control_plane(&config.control_plane_dir())?;
        let trusted_keys = config.mirror.trusted_keys.iter().map(|p| key_file(p)).collect();
        let keks = kek_files(&config);
        let source_date_epoch = options.vars.iter().find(|(k, _)| k == "SOURCE_DATE_EPOCH").map(|(_, v)| v.clone());
        let egress_log = config.data_dir.join(EGRESS_LOG);
        let egress = read_egress_log(&egress_log)?;
        let as_of = as_of(source_date_epoch, &mirror, &control_plane, egress.as_ref().and_then(|(_, t)| *t))?;
        Ok(State {
            signing_key: config.site.signing_key.clone(),
            key_password: options.key_password.clone(),
            config_path: options.config_path.clone(),
            config,
            config_json,
            config_sha256,
            mirror,
            control_plane,
            trusted_keys,
            keks,
            as_of,
            lock: Lock::built_in()?,
            egress_log,
            egress_refusals: egress.map(|(n, _)| n),
        })
    }

    /// Every bundle the mirror imported, by id.
    pub fn bundles(&self) -> Vec<Bundle<'_>> {
        let Some(mirror) = self.mirror.present() else { return Vec::new() };
        let mut bundles: Vec<Bundle> = mirror
            .history
            .iter()
            .filter(|r| r.action == "import" && r.result == "imported")
            .filter_map(|r| {
                let id = r.bundle_id.clone()?;
                let artifacts = mirror.artifacts.iter().filter(|a| a.record.bundle_id == id).collect();
                Some(Bundle { id, import: r, artifacts })
            })
            .collect();
        bundles.sort_by(|a, b| a.id.cmp(&b.id));
        bundles
    }

    /// What could not be documented from live state.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Part::Absent(why) = &self.mirror {
            notes.push(format!("mirror: {why}"));
        }
        if let Part::Absent(why) = &self.control_plane {
            notes.push(format!("control plane: {why}"));
        }
        if let Some(cp) = self.control_plane.present() {
            if !cp.initialized {
                notes.push(format!("control plane: {} is not initialized (`airlock admin init`)", cp.dir.display()));
            }
        }
        if let Some(why) = crate::statements::anchor_differs(self) {
            notes.push(format!("trust anchor: {why}"));
        }
        for key in &self.trusted_keys {
            if let Err(e) = &key.loaded {
                notes.push(format!("trusted key {}: {e}", key.path.display()));
            }
        }
        for kek in &self.keks {
            if let Err(e) = &kek.id {
                notes.push(format!("key-encryption key {}: {e}", kek.path.display()));
            }
        }
        if self.signing_key.is_none() {
            notes.push("no site signing key (site.signing_key or --signing-key): MANIFEST.sha256 is not signed".into());
        }
        notes
    }
}

fn read_mirror(dir: &Path) -> Result<Part<MirrorState>, Error> {
    let fail = |message: String| Error::Mirror { dir: dir.to_path_buf(), message };
    if !dir.join("metadata").is_dir() {
        return Ok(Part::Absent(format!("no mirror data at {} (nothing imported yet, or another data_dir)", dir.display())));
    }
    let through_server = UnixStream::connect(admin::socket_path(dir)).is_ok();
    let (records, history, anchor): (Vec<ArtifactRecord>, Vec<HistoryRecord>, Option<AnchorRecord>) = if through_server {
        let ask = |request| admin::run(dir, request, &Silent).map_err(|e| fail(e.to_string()));
        let artifacts = ask(Request::Ls { kind: None })?;
        let history = ask(Request::History)?;
        let anchor = ask(Request::TrustAnchor)?;
        (
            serde_json::from_value(artifacts).map_err(|e| fail(format!("unexpected answer to `ls`: {e}")))?,
            serde_json::from_value(history).map_err(|e| fail(format!("unexpected answer to `history`: {e}")))?,
            serde_json::from_value(anchor).map_err(|e| fail(format!("unexpected answer to `trust-anchor`: {e}")))?,
        )
    } else {
        let store = MirrorStore::open(dir).map_err(|e| match e {
            MirrorStoreError::Locked(dir) => Error::MirrorInUse { dir },
            other => fail(other.to_string()),
        })?;
        let m = |e: MirrorStoreError| fail(e.to_string());
        (store.artifacts(None).map_err(m)?, store.history().map_err(m)?, store.trust_anchor().map_err(m)?)
    };
    let blobs = BlobStore::open(dir).map_err(|e| fail(e.to_string()))?;
    let mut artifacts = Vec::new();
    for record in records {
        let file = match record.artifact.kind {
            ArtifactKind::Image => None,
            _ => Some(file_layer(&blobs, &record).map_err(fail)?),
        };
        artifacts.push(Artifact { record, file });
    }
    artifacts.sort_by(|a, b| {
        let key = |x: &Artifact| (x.record.artifact.kind, x.record.artifact.repository.clone(), x.record.artifact.tag.clone());
        key(a).cmp(&key(b))
    });
    Ok(Part::Present(MirrorState { dir: dir.to_path_buf(), through_server, artifacts, history, anchor }))
}

/// The file inside a non-image artifact: its manifest's one layer.
fn file_layer(blobs: &BlobStore, record: &ArtifactRecord) -> Result<FileLayer, String> {
    let digest = &record.artifact.digest;
    let path = blobs.path(digest);
    let bytes = std::fs::read(&path).map_err(|e| {
        format!("the manifest {digest} of {} is not in the content store ({e}); run `airlock mirror verify`", record.artifact.repository)
    })?;
    if airlock_oci::Digest::of(&bytes) != *digest {
        return Err(format!("the manifest {digest} in the content store is damaged; run `airlock mirror verify`"));
    }
    let links: ManifestLinks = serde_json::from_slice(&bytes).map_err(|e| format!("the manifest {digest} is not valid JSON: {e}"))?;
    let layer = links.layers.first().ok_or_else(|| format!("the artifact manifest {digest} has no layer"))?;
    Ok(FileLayer { sha256: layer.digest.hex(), size: layer.size, name: layer.annotations.get(annotation::TITLE).cloned() })
}

fn read_control_plane(dir: &Path) -> Result<Part<ControlPlaneState>, Error> {
    let fail = |message: String| Error::ControlPlane { dir: dir.to_path_buf(), message };
    if !dir.join("db").is_file() || !dir.join("conf").is_file() {
        return Ok(Part::Absent(format!("no control plane database at {} (not initialized, or another data_dir)", dir.display())));
    }
    let store = CpStore::open(dir).map_err(|e| match e {
        CpStoreError::InUse { .. } => Error::ControlPlaneInUse { dir: dir.to_path_buf() },
        other => fail(other.to_string()),
    })?;
    let cp = |e: CpStoreError| fail(e.to_string());
    let initialized = store.get::<String>(keys::INITIALIZED).map_err(cp)?.is_some();
    let orgs: Vec<Org> = store.scan_all::<Org>("org/").map_err(cp)?.into_iter().map(|(_, o)| o).collect();
    let (mut users, mut secrets, mut runners, mut projects) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ssh_keys, mut environments) = (0, 0);
    for org in &orgs {
        let scan = |kind| keys::obj_prefix(&org.id, kind);
        users.extend(store.scan_all::<User>(&scan("user")).map_err(cp)?.into_iter().map(|(_, v)| v));
        secrets.extend(store.scan_all::<Secret>(&scan("secret")).map_err(cp)?.into_iter().map(|(_, v)| v));
        runners.extend(store.scan_all::<Runner>(&scan("runner")).map_err(cp)?.into_iter().map(|(_, v)| v));
        projects.extend(store.scan_all::<Project>(&scan("project")).map_err(cp)?.into_iter().map(|(_, v)| v));
        ssh_keys += store.scan_all::<serde_json::Value>(&scan("sshkey")).map_err(cp)?.len();
        environments += store.scan_all::<serde_json::Value>(&scan("env")).map_err(cp)?.len();
    }
    let report = audit::verify(&store, None).map_err(cp)?;
    let (records, _) = audit::query(&store, &Filter::default(), None, usize::MAX).map_err(cp)?;
    let mut audit_actions: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for AuditRecord { action, outcome, .. } in &records {
        let outcome = serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        *audit_actions.entry(action.clone()).or_default().entry(outcome).or_default() += 1;
    }
    let newest_audit = records.iter().map(|r| r.time.to_system()).max();
    Ok(Part::Present(ControlPlaneState {
        dir: dir.to_path_buf(),
        initialized,
        orgs,
        users,
        secrets,
        runners,
        projects,
        ssh_keys,
        environments,
        audit: report,
        audit_actions,
        newest_audit,
    }))
}

fn key_file(path: &Path) -> KeyFile {
    let loaded = PublicKey::from_file(path).map_err(|e| e.to_string()).and_then(|key| {
        let raw = base64::engine::general_purpose::STANDARD.decode(key.to_base64()).map_err(|e| e.to_string())?;
        Ok(LoadedKey { key_id: key.id.to_string(), fingerprint: hex::encode(Sha256::digest(raw)) })
    });
    KeyFile { path: path.to_path_buf(), loaded }
}

fn kek_files(config: &Config) -> Vec<KekFile> {
    if config.control_plane.kek_files.is_empty() {
        // `airlock server` refuses to start without a configured key; older versions made one here.
        let legacy = config.control_plane_dir().join("kek");
        let id = Err(if legacy.exists() {
            "a key-encryption key inside the data folder it protects, which `airlock server` no longer accepts: \
             move it outside the data folder and name it in control_plane.kek_files"
                .to_string()
        } else {
            "not configured: `airlock server` refuses to start until control_plane.kek_files (or --kek-file) names a key file outside the data folder".to_string()
        });
        return vec![KekFile { path: legacy, id }];
    }
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    config
        .control_plane
        .kek_files
        .iter()
        .map(|path| {
            let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let id = if !path.exists() {
                Err("the file does not exist".to_string())
            } else if resolved.starts_with(&data_dir) {
                Err(format!("inside the data folder {} it protects: move it out", config.data_dir.display()))
            } else {
                Kek::from_file(path).map(|k| k.id().to_string()).map_err(|e| e.to_string())
            };
            KekFile { path: path.clone(), id }
        })
        .collect()
}

/// File name of the egress guard's refusal log in the data folder (airlock-egress writes it).
pub const EGRESS_LOG: &str = "egress-audit.jsonl";

/// Counts the refusal log's records and finds the newest time; `None` when there is no log.
fn read_egress_log(path: &Path) -> Result<Option<(usize, Option<SystemTime>)>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Input { what: "the egress refusal log", path: path.to_path_buf(), message: e.to_string() }),
    };
    let mut count = 0;
    let mut newest: Option<SystemTime> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        count += 1;
        let time = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["time"].as_str().and_then(|t| humantime::parse_rfc3339_weak(t).ok()));
        if let Some(t) = time {
            newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    }
    Ok(Some((count, newest)))
}

fn as_of(
    source_date_epoch: Option<String>,
    mirror: &Part<MirrorState>,
    control_plane: &Part<ControlPlaneState>,
    egress: Option<SystemTime>,
) -> Result<AsOf, Error> {
    let format = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if let Some(text) = source_date_epoch {
        let seconds: u64 = text.trim().parse().map_err(|_| Error::SourceDateEpoch(text.clone()))?;
        return Ok(AsOf {
            time: format(UNIX_EPOCH + Duration::from_secs(seconds)),
            source: "SOURCE_DATE_EPOCH".into(),
        });
    }
    let mut newest: Option<(SystemTime, &str)> = None;
    let mut consider = |t: SystemTime, what: &'static str| {
        let newer = match newest {
            Some((n, _)) => t > n,
            None => true,
        };
        if newer {
            newest = Some((t, what));
        }
    };
    if let Some(m) = mirror.present() {
        for r in &m.history {
            if let Ok(t) = humantime::parse_rfc3339_weak(&r.time) {
                consider(t, "the newest mirror history record");
            }
        }
    }
    if let Some(t) = control_plane.present().and_then(|c| c.newest_audit) {
        consider(t, "the newest control plane audit record");
    }
    if let Some(t) = egress {
        consider(t, "the newest egress refusal record");
    }
    Ok(match newest {
        Some((t, what)) => AsOf { time: format(t), source: what.to_string() },
        None => AsOf {
            time: format(UNIX_EPOCH),
            source: "no recorded state change and no SOURCE_DATE_EPOCH: the Unix epoch".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `airlock server` enforces (finding 10): no key, or one inside the data folder,
    /// is not reported as implemented.
    #[test]
    fn a_missing_kek_or_one_inside_the_data_folder_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        let unset = kek_files(&config);
        assert!(unset[0].id.as_ref().unwrap_err().contains("refuses to start"), "{:?}", unset[0].id);

        std::fs::create_dir_all(config.control_plane_dir()).unwrap();
        Kek::generate_file(&config.control_plane_dir().join("kek")).unwrap();
        assert!(kek_files(&config)[0].id.as_ref().unwrap_err().contains("no longer accepts"));

        config.control_plane.kek_files = vec![config.control_plane_dir().join("kek")];
        assert!(kek_files(&config)[0].id.as_ref().unwrap_err().contains("inside the data folder"));

        let outside = dir.path().join("keys").join("kek");
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        let made = Kek::generate_file(&outside).unwrap();
        config.control_plane.kek_files = vec![outside];
        assert_eq!(kek_files(&config)[0].id.as_deref(), Ok(made.id()));
    }

    #[test]
    fn the_egress_refusal_log_is_counted_and_dated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EGRESS_LOG);
        assert!(read_egress_log(&path).unwrap().is_none(), "no log, no count");
        std::fs::write(
            &path,
            "{\"time\":\"2030-01-01T00:00:00.000Z\",\"component\":\"runner\",\"destination\":\"a:443\",\"reason\":\"x\"}\n\
             \n\
             {\"time\":\"2030-01-02T00:00:00.000Z\",\"component\":\"runner\",\"destination\":\"b:443\",\"reason\":\"y\"}\n",
        )
        .unwrap();
        let (count, newest) = read_egress_log(&path).unwrap().unwrap();
        assert_eq!(count, 2);
        assert_eq!(humantime::format_rfc3339_seconds(newest.unwrap()).to_string(), "2030-01-02T00:00:00Z");
    }

    #[test]
    fn source_date_epoch_wins_and_no_state_means_the_epoch() {
        let (m, c): (Part<MirrorState>, Part<ControlPlaneState>) = (Part::Absent("none".into()), Part::Absent("none".into()));
        let fixed = as_of(Some("1893456000".into()), &m, &c, Some(UNIX_EPOCH + Duration::from_secs(5))).unwrap();
        assert_eq!((fixed.time.as_str(), fixed.source.as_str()), ("2030-01-01T00:00:00Z", "SOURCE_DATE_EPOCH"));
        assert_eq!(as_of(None, &m, &c, None).unwrap().time, "1970-01-01T00:00:00Z");
        let from_log = as_of(None, &m, &c, Some(UNIX_EPOCH + Duration::from_secs(86_400))).unwrap();
        assert_eq!(from_log.time, "1970-01-02T00:00:00Z");
        assert!(matches!(as_of(Some("soon".into()), &m, &c, None), Err(Error::SourceDateEpoch(_))));
    }
}
