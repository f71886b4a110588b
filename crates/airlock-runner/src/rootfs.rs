//! An environment's folders and mounts under `DATA/envs/<id>/`:
//!
//! ```text
//! <id>/            root:<mapped root gid> 0710  (runc, inside the user namespace, must pass)
//!   state.json     the engine's record (no secrets)
//!   lower/         ID-mapped, read-only, nosuid clone of DATA/images/rootfs/<digest>
//!   features/      (devcontainer features) the same, of DATA/images/features/<key>, above lower
//!   upper/ work/   overlay upper (owned by the mapped root) and work dir: persist
//!   rootfs/        overlay of lower + upper: the container's /
//!   workspace/     0700, mapped root (or image user): bind-mounted at /workspace, persists
//!   run/           tmpfs 0700 root: config.json (carries secret env) and secrets/, gone at stop
//!   ide/<name>/    ID-mapped, read-only clone of DATA/images/ide/<digest>/…: bound at
//!                  /opt/airlock/ide/<name> (`ide.rs`)
//!   init.log       runc's and the init process's output
//! ```
//!
//! The image is never copied: every environment's lower is the same unpacked folder seen
//! through its own ID mapping, so file owned by uid N in the image appear owned by
//! `host_uid + N` and the container's root owns what the image's root owns.

use std::fs;
use std::io;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::EngineError;
use crate::ids::RANGE;
use crate::sys;

#[derive(Clone, Debug)]
pub(crate) struct EnvPaths {
    pub(crate) dir: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) lower: PathBuf,
    pub(crate) upper: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) rootfs: PathBuf,
    pub(crate) workspace: PathBuf,
    pub(crate) run: PathBuf,
    pub(crate) secrets: PathBuf,
    pub(crate) log: PathBuf,
}

impl EnvPaths {
    pub(crate) fn new(envs: &Path, id: &str) -> EnvPaths {
        let dir = envs.join(id);
        EnvPaths {
            state: dir.join("state.json"),
            lower: dir.join("lower"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            workspace: dir.join("workspace"),
            run: dir.join("run"),
            secrets: dir.join("run/secrets"),
            log: dir.join("init.log"),
            dir,
        }
    }
}

/// Creates the persistent folders of a new environment whose mapped root is `host_uid`; the
/// workspace is owned by `workspace_owner` (host uid, gid): the mapped root, or the mapped
/// image user when the image names one.
pub(crate) fn create_layout(p: &EnvPaths, host_uid: u32, workspace_owner: (u32, u32)) -> Result<(), EngineError> {
    make_dir(&p.dir, 0o710, 0, host_uid)?;
    for dir in [&p.lower, &p.rootfs] {
        make_dir(dir, 0o755, 0, 0)?;
    }
    make_dir(&p.run, 0o700, 0, 0)?;
    make_dir(&p.work, 0o700, 0, 0)?;
    make_dir(&p.upper, 0o755, host_uid, host_uid)?;
    make_dir(&p.workspace, 0o700, workspace_owner.0, workspace_owner.1)?;
    Ok(())
}

fn make_dir(path: &Path, mode: u32, uid: u32, gid: u32) -> Result<(), EngineError> {
    match fs::create_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(EngineError::io("create", path)(e)),
        _ => {}
    }
    chown(path, Some(uid), Some(gid)).map_err(EngineError::io("chown", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(EngineError::io("chmod", path))
}

/// Mounts lower (ID-mapped image), the overlay root and the run tmpfs. On failure nothing
/// stays mounted.
/// `features`, when given, is a cached devcontainer feature layer (`features.rs`), mounted
/// ID-mapped like the image at `<id>/features` and stacked above it.
pub(crate) fn mount_all(
    p: &EnvPaths,
    image_rootfs: &Path,
    features: Option<&Path>,
    host_uid: u32,
    tmpfs_size: u64,
    ide: &[(&str, &Path)],
) -> Result<(), EngineError> {
    // Left over from a runner or host that died: start clean.
    unmount_all(p)?;
    let result = (|| {
        let userns = sys::userns_fd(host_uid, RANGE).map_err(EngineError::mount("create the ID-mapping user namespace", &p.lower))?;
        sys::idmapped_mount(image_rootfs, &p.lower, &userns).map_err(|e| {
            let hint = if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EPERM)) {
                " (the kernel or the filesystem of the data dir does not support ID-mapped mounts: Linux 5.12+ and ext4/xfs/btrfs needed)"
            } else {
                ""
            };
            EngineError::mount(format!("ID-mapped mount of image {}{hint}", image_rootfs.display()), &p.lower)(e)
        })?;
        let mut lowers = vec![p.lower.as_path()];
        let features_lower = p.dir.join("features");
        if let Some(layer) = features {
            make_dir(&features_lower, 0o755, 0, 0)?;
            sys::idmapped_mount(layer, &features_lower, &userns)
                .map_err(EngineError::mount(format!("ID-mapped mount of feature layer {}", layer.display()), &features_lower))?;
            lowers.insert(0, features_lower.as_path());
        }
        sys::mount_overlay(&lowers, &p.upper, &p.work, &p.rootfs).map_err(EngineError::mount("overlay of the image and the environment's upper dir", &p.rootfs))?;
        sys::mount_tmpfs(&p.run, tmpfs_size).map_err(EngineError::mount("tmpfs for the runtime bundle and secrets", &p.run))?;
        if !ide.is_empty() {
            // Passable by the environment's root (runc binds from inside the user namespace).
            make_dir(&p.dir.join("ide"), 0o711, 0, 0)?;
        }
        for (name, tree) in ide {
            let target = p.dir.join("ide").join(name);
            make_dir(&target, 0o755, 0, 0)?;
            sys::idmapped_mount(tree, &target, &userns).map_err(EngineError::mount(format!("ID-mapped mount of IDE {}", tree.display()), &target))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = unmount_all(p);
    }
    result
}

/// Unmounts everything at or below the environment folder, deepest first, and checks that
/// nothing is left (so removing the folder can never reach into the image or a tmpfs).
pub(crate) fn unmount_all(p: &EnvPaths) -> Result<(), EngineError> {
    let mounts = sys::mounts_under(&p.dir).map_err(EngineError::io("read", "/proc/self/mountinfo"))?;
    for m in &mounts {
        sys::unmount(&m.mount_point).map_err(EngineError::mount("unmount", &m.mount_point))?;
    }
    let left = sys::mounts_under(&p.dir).map_err(EngineError::io("read", "/proc/self/mountinfo"))?;
    if let Some(m) = left.first() {
        return Err(EngineError::Mount {
            what: format!("still mounted after unmounting ({} mounts left)", left.len()),
            path: m.mount_point.clone(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        });
    }
    Ok(())
}

/// Which of the environment's mounts are missing (for adopting a running environment).
pub(crate) fn missing_mounts(p: &EnvPaths, mounts: &[sys::MountEntry]) -> Vec<&'static str> {
    let has = |path: &Path, fs_type: &str| mounts.iter().any(|m| m.mount_point == path && m.fs_type == fs_type);
    let mut missing = Vec::new();
    if !mounts.iter().any(|m| m.mount_point == p.lower && m.options.contains("idmapped")) {
        missing.push("lower (ID-mapped image)");
    }
    if !has(&p.rootfs, "overlay") {
        missing.push("rootfs (overlay)");
    }
    if !has(&p.run, "tmpfs") {
        missing.push("run (tmpfs)");
    }
    missing
}
