//! Devcontainer features as a cached layer.
//!
//! ```text
//! DATA/images/features/<key>/   the overlay upper of a throwaway container in which every
//!                               feature's install.sh ran, owners shifted back to 0..65535
//! ```
//!
//! `key` is sha256 over the image digest and, per feature in install order, its manifest
//! digest and the variables install.sh saw. An environment of the same definition mounts
//! the layer ID-mapped above its image (`rootfs.rs`) and runs no install.sh. The layer is
//! built in a container `env_fb<key prefix>` with its own uid range; a runner that dies
//! mid-build leaves a folder without a record, which `Engine::open` removes.

use std::fs;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use airlock_oci::Digest;
use serde_json::json;

use super::{Engine, EngineEvent, EnvVars, EnvironmentSpec};
use crate::error::EngineError;
use crate::ids::RANGE;
use crate::image::unique;
use crate::rootfs;
use crate::state::{now, Desired, EnvRecord};
use crate::{session, spec};

/// Where the feature files sit in the build container (removed from the layer after).
const STAGING: &str = ".airlock-features";
/// Output kept from a failed install.sh for the error.
const INSTALL_OUTPUT_TAIL: usize = 3000;

/// A feature artifact pulled from the mirror and unpacked (`devcontainer-feature.json`,
/// `install.sh`, …) in the engine's cache.
#[derive(Clone, Debug)]
pub struct PulledFeature {
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    pub tree: PathBuf,
}

/// One install.sh run of a layer build.
#[derive(Clone, Debug)]
pub struct FeatureStep {
    /// For messages: the feature's id as the devcontainer.json names it.
    pub name: String,
    pub digest: String,
    pub tree: PathBuf,
    /// Variables install.sh runs with (options, `_REMOTE_USER`, …).
    pub env: Vec<(String, String)>,
}

/// The result of [`Engine::build_features`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLayer {
    /// Give it as [`EnvironmentSpec::features_layer`].
    pub key: String,
    /// Whether install.sh ran now (false: the layer was cached).
    pub built: bool,
    /// The tail of each install.sh's output, in install order (empty when cached).
    pub outputs: Vec<(String, String)>,
}

impl Engine {
    /// Pulls a feature artifact (one `application/vnd.devcontainers.layer.v1+tar` layer) and
    /// unpacks it once, with the same guards as image layers.
    pub fn pull_feature(&self, reference: &str, progress: &mut dyn FnMut(EngineEvent)) -> Result<PulledFeature, EngineError> {
        let mut digest = None;
        let tree = self.images.pull_tree(reference, &mut |e| {
            if let EngineEvent::ImageReady { digest: d, .. } = &e {
                digest = Some(d.clone());
            }
            progress(e)
        })?;
        let digest = digest.ok_or_else(|| EngineError::Feature { feature: reference.into(), reason: "the pull reported no digest".into() })?;
        Ok(PulledFeature { reference: reference.to_string(), digest, tree })
    }

    /// The cache key of a feature layer on `image_digest`.
    pub fn features_key(image_digest: &str, steps: &[FeatureStep]) -> String {
        let mut text = format!("airlock-features-v1\n{image_digest}\n");
        for step in steps {
            text.push_str(&format!("{}\0{}\0", step.name, step.digest));
            for (k, v) in &step.env {
                text.push_str(&format!("{k}={v}\0"));
            }
            text.push('\n');
        }
        Digest::of(text.as_bytes()).hex()
    }

    /// Runs the steps' install.sh in order, as root, in a container of `image`, and keeps the
    /// changes as a layer; returns at once when the layer is cached. Starts of the same
    /// definition at the same time build it once. A failed install leaves nothing behind.
    pub fn build_features(&self, image: &str, steps: &[FeatureStep], progress: &mut dyn FnMut(EngineEvent)) -> Result<FeatureLayer, EngineError> {
        let pulled = self.images.pull(image, progress)?;
        let key = Self::features_key(&pulled.digest, steps);
        let dir = self.features_root().join(&key);
        self.env_locks.with(&format!("features:{key}"), || {
            if dir.is_dir() {
                return Ok(FeatureLayer { key: key.clone(), built: false, outputs: Vec::new() });
            }
            let builder = format!("env_fb{}", &key[..24]);
            let slot = self.slots.allocate(&builder)?;
            let p = self.paths(&builder);
            let host_uid = self.slots.host_uid(slot);
            let outcome = (|| {
                rootfs::create_layout(&p, host_uid, (host_uid, host_uid))?;
                for (index, step) in steps.iter().enumerate() {
                    let target = p.upper.join(STAGING).join(index.to_string());
                    copy_tree(&step.tree, &target, host_uid).map_err(EngineError::io("copy the feature files to", &target))?;
                }
                let rec = EnvRecord {
                    id: builder.clone(),
                    slot,
                    host_uid,
                    image: image.to_string(),
                    image_digest: pulled.digest.clone(),
                    image_config: pulled.config.clone(),
                    hostname: "features".into(),
                    resources: Default::default(),
                    desired: Desired::Stopped,
                    created: now(),
                    started: None,
                    features_layer: None,
                    session_user: None,
                    session_env: Vec::new(),
                    working_dir: None,
                };
                let bundle = EnvironmentSpec { id: builder.clone(), image: image.to_string(), ..Default::default() };
                rootfs::mount_all(&p, &pulled.rootfs, None, host_uid, 4 << 20, &[])?;
                self.write_bundle(&p, &rec, &pulled, &bundle, &[])?;
                let pid = self.runc.run_detached(&builder, &p.run, &p.log)?;
                let base = self.init_env(&p, pid)?;
                let mut outputs = Vec::new();
                for (index, step) in steps.iter().enumerate() {
                    let (status, tail) = self.install(&builder, &base, index, step)?;
                    if status != 0 {
                        return Err(EngineError::FeatureInstall { feature: step.name.clone(), status, tail });
                    }
                    tracing::info!(feature = step.name, "feature installed");
                    outputs.push((step.name.clone(), tail));
                }
                self.halt(&p, &builder)?;
                let staging = p.upper.join(STAGING);
                fs::remove_dir_all(&staging).map_err(EngineError::io("remove", &staging))?;
                shift_down(&p.upper, host_uid).map_err(EngineError::io("shift the owners of", &p.upper))?;
                fs::create_dir_all(self.features_root()).map_err(EngineError::io("create", self.features_root()))?;
                let tmp = self.features_root().join(format!("tmp-{}", unique()));
                fs::rename(&p.upper, &tmp).map_err(EngineError::io(format!("move {} to", p.upper.display()), &tmp))?;
                fs::rename(&tmp, &dir).map_err(EngineError::io(format!("move {} to", tmp.display()), &dir))?;
                Ok(outputs)
            })();
            if let Err(cleanup) = self.destroy(&p, &builder, Some(slot)) {
                tracing::error!(builder, error = %cleanup, "cleanup after a feature build failed");
            }
            Ok(FeatureLayer { key: key.clone(), built: true, outputs: outcome? })
        })
    }

    /// Runs one feature's install.sh as root in the build container.
    fn install(&self, builder: &str, base: &[String], index: usize, step: &FeatureStep) -> Result<(i32, String), EngineError> {
        let mut env = EnvVars::from_list(base);
        for (k, v) in &step.env {
            super::check_env_pair(builder, k, v)?;
            env.set(k, v);
        }
        let process = json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "chmod +x ./install.sh && exec ./install.sh"],
            "env": env.to_list(),
            "cwd": format!("/{STAGING}/{index}"),
            "capabilities": spec::capabilities(true),
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": self.nofile, "soft": self.nofile}],
            "noNewPrivileges": true
        });
        let process = session::spawn(&self.runc, builder, &process, None)?;
        session::wait_with_tail(process, INSTALL_OUTPUT_TAIL).map_err(|reason| EngineError::Feature { feature: step.name.clone(), reason: reason.to_string() })
    }

    /// The folder of a built layer; an error when it is not (or no longer) cached.
    pub(crate) fn feature_layer_dir(&self, key: &str) -> Result<PathBuf, EngineError> {
        let dir = self.features_root().join(key);
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) || !dir.is_dir() {
            return Err(EngineError::Feature {
                feature: format!("layer {key}"),
                reason: "not in the runner's cache (removed, or never built): build the features again".into(),
            });
        }
        Ok(dir)
    }

    fn features_root(&self) -> PathBuf {
        self.data_dir().join("images").join("features")
    }
}

/// Copies an unpacked feature (regular files, folders, symlinks only: unpack.rs made it) so
/// that the build container's root owns it.
fn copy_tree(src: &Path, dst: &Path, owner: u32) -> std::io::Result<()> {
    fs::create_dir_all(dst)?;
    lchown(dst, Some(owner), Some(owner))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        if meta.is_dir() {
            copy_tree(&from, &to, owner)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            lchown(&to, Some(owner), Some(owner))?;
        } else if meta.is_file() {
            fs::copy(&from, &to)?;
            lchown(&to, Some(owner), Some(owner))?;
        }
    }
    Ok(())
}

/// Moves owners in `host_uid..host_uid+65536` back to `0..65536` (the image convention); a
/// set-id bit the chown cleared is put back.
fn shift_down(path: &Path, host_uid: u32) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let back = |id: u32| if (host_uid..host_uid + RANGE).contains(&id) { id - host_uid } else { id };
    lchown(path, Some(back(meta.uid())), Some(back(meta.gid())))?;
    if meta.mode() & 0o6000 != 0 && !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            shift_down(&entry?.path(), host_uid)?;
        }
    }
    Ok(())
}
