//! Applies OCI image layers to a root filesystem folder, the way a container runtime would,
//! without ever letting a layer write outside that folder.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_BENEATH)` from a descriptor of
//! the root: a `..` component, an absolute symlink or one climbing out of the root makes the
//! call fail, so a hostile layer is refused rather than trusted to be well formed. Whiteouts
//! (`.wh.NAME`) delete what lower layers put there, opaque markers (`.wh..wh..opq`) empty a
//! folder of lower layers' content, hardlinks must point at files inside the root, and device
//! nodes are never created (the runtime provides `/dev`).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use airlock_oci::{MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_LAYER_TAR, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer media type `{0}` is not a tar layer airlock can apply")]
    MediaType(String),
    #[error("layer entry `{entry}` would escape the root filesystem ({reason}); the layer is refused")]
    Escape { entry: String, reason: String },
    #[error("layer entry `{entry}` is a hardlink to `{target}`, which is not a file inside the root; the layer is refused")]
    HardlinkTarget { entry: String, target: String },
    #[error("layer entry `{entry}`: {source}")]
    Entry { entry: String, source: io::Error },
    #[error("the layer is not a readable tar stream: {0}")]
    Archive(io::Error),
    #[error("cannot open the root filesystem {path}: {source}")]
    Root { path: String, source: io::Error },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer from its media type (OCI and Docker names).
pub fn compression_of(media_type: &str) -> Result<Compression, UnpackError> {
    match media_type {
        MEDIA_TYPE_LAYER_TAR | MEDIA_TYPE_DOCKER_LAYER_TAR => Ok(Compression::None),
        MEDIA_TYPE_LAYER_GZIP | MEDIA_TYPE_DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
        MEDIA_TYPE_LAYER_ZSTD => Ok(Compression::Zstd),
        other => Err(UnpackError::MediaType(other.to_string())),
    }
}

/// What applying a layer did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub entries: usize,
    pub whiteouts: usize,
    /// Device nodes and FIFOs in the layer, left out.
    pub skipped_devices: usize,
}

/// Applies one layer on top of what `root` already holds.
pub fn apply_layer(root: &Path, layer: impl Read, compression: Compression) -> Result<Applied, UnpackError> {
    let stream: Box<dyn Read> = match compression {
        Compression::None => Box::new(layer),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(layer)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(layer).map_err(UnpackError::Archive)?),
    };
    let root_fd = rfs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| UnpackError::Root { path: root.display().to_string(), source: e.into() })?;
    let mut archive = tar::Archive::new(stream);
    let mut applied = Applied::default();
    // Paths this layer wrote: an opaque marker empties a folder of lower layers' content only.
    let mut written: HashSet<String> = HashSet::new();
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = clean(&raw)?;
        let Some((parent, name)) = split(&path) else { continue }; // the root itself
        applied.entries += 1;
        let fail = |source: io::Error| UnpackError::Entry { entry: raw.clone(), source };

        if name == OPAQUE_MARKER {
            let dir = open_dir(&root_fd, parent, &raw)?;
            clear_lower(&dir, parent, &written).map_err(fail)?;
            applied.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let dir = open_dir(&root_fd, parent, &raw)?;
            remove_all(&dir, hidden).map_err(fail)?;
            applied.whiteouts += 1;
            continue;
        }

        let header = entry.header().clone();
        let kind = header.entry_type();
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) {
            applied.skipped_devices += 1;
            continue;
        }
        let dir = open_dir(&root_fd, parent, &raw)?;
        let mode = Mode::from_raw_mode(header.mode().map_err(fail)? & 0o7777);
        match kind {
            tar::EntryType::Directory => {
                match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {}
                    Ok(_) => {
                        remove_all(&dir, name).map_err(fail)?;
                        rfs::mkdirat(&dir, name, mode).map_err(|e| fail(e.into()))?;
                    }
                    Err(_) => rfs::mkdirat(&dir, name, mode).map_err(|e| fail(e.into()))?,
                }
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                remove_all(&dir, name).map_err(fail)?;
                rfs::symlinkat(target.as_str(), &dir, name).map_err(|e| fail(e.into()))?;
            }
            tar::EntryType::Link => {
                let target_raw = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let target = clean(&target_raw)?;
                let Some((target_parent, target_name)) = split(&target) else {
                    return Err(UnpackError::HardlinkTarget { entry: raw, target: target_raw });
                };
                let target_dir = open_dir(&root_fd, target_parent, &raw)?;
                let is_file = rfs::statat(&target_dir, target_name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory);
                if !is_file {
                    return Err(UnpackError::HardlinkTarget { entry: raw, target: target_raw });
                }
                remove_all(&dir, name).map_err(fail)?;
                rfs::linkat(&target_dir, target_name, &dir, name, AtFlags::empty()).map_err(|e| fail(e.into()))?;
                // A hardlink shares its target's inode: its own header's owner is not applied.
                written.insert(path.clone());
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_all(&dir, name).map_err(fail)?;
                let fd = rfs::openat(&dir, name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)
                    .map_err(|e| fail(e.into()))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(fail)?;
                file.flush().map_err(fail)?;
            }
            // PAX and GNU extension headers are folded into entries by the tar reader.
            _ => continue,
        }
        let (uid, gid) = (header.uid().map_err(fail)?, header.gid().map_err(fail)?);
        rfs::chownat(
            &dir,
            name,
            Some(rfs::Uid::from_raw(uid as u32)),
            Some(rfs::Gid::from_raw(gid as u32)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| fail(e.into()))?;
        if kind != tar::EntryType::Symlink {
            // After the chown, which clears set-user-ID and set-group-ID bits.
            rfs::chmodat(&dir, name, mode, AtFlags::empty()).map_err(|e| fail(e.into()))?;
        }
        written.insert(path.clone());
    }
    Ok(applied)
}

/// Normalizes an entry name: leading `./` and `/` dropped, `.` components removed; a `..`
/// component is an escape.
fn clean(raw: &str) -> Result<String, UnpackError> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(UnpackError::Escape { entry: raw.to_string(), reason: "a `..` component".into() }),
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`); the root → `None`.
fn split(path: &str) -> Option<(&str, &str)> {
    if path.is_empty() {
        return None;
    }
    Some(path.rsplit_once('/').unwrap_or(("", path)))
}

/// Opens a folder inside the root, creating missing folders, resolving every component
/// beneath the root (symlinks included).
fn open_dir(root: &OwnedFd, path: &str, entry: &str) -> Result<OwnedFd, UnpackError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let target = if path.is_empty() { "." } else { path };
    match rfs::openat2(root, target, flags, Mode::empty(), resolve) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(rustix::io::Errno::XDEV) => {
            return Err(UnpackError::Escape { entry: entry.to_string(), reason: format!("`{path}` resolves outside the root") })
        }
        Err(e) => return Err(UnpackError::Entry { entry: entry.to_string(), source: e.into() }),
    }
    // Create the missing folder (and, first, its missing parents).
    let (parent, name) = split(path).expect("the root always exists");
    let parent_fd = open_dir(root, parent, entry)?;
    match rfs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(UnpackError::Entry { entry: entry.to_string(), source: e.into() }),
    }
    rfs::openat2(root, target, flags, Mode::empty(), resolve).map_err(|e| match e {
        rustix::io::Errno::XDEV => UnpackError::Escape { entry: entry.to_string(), reason: format!("`{path}` resolves outside the root") },
        e => UnpackError::Entry { entry: entry.to_string(), source: e.into() },
    })
}

/// Removes `name` in `dir` (a whole tree if it is a folder); nothing there is fine.
fn remove_all(dir: &impl AsFd, name: &str) -> io::Result<()> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
        let child = rfs::openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
        for entry_name in child_names(&child)? {
            remove_all(&child, &entry_name)?;
        }
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

fn child_names(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Empties `dir` (at `path`) of everything this layer did not write.
fn clear_lower(dir: &OwnedFd, path: &str, written: &HashSet<String>) -> io::Result<()> {
    let listing = rfs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    for name in child_names(&listing)? {
        let child = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
        if !written.contains(&child) {
            remove_all(dir, &name)?;
        }
    }
    Ok(())
}
