//! Workspace snapshots: the workspace folder as tar + zstd, with owners written as the
//! environment sees them (container ids), so that a runner with another uid range restores
//! them under its own range.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use airlock_oci::{Hasher, HashingWriter};

use crate::unpack::{self, Compression};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot snapshot the workspace {path}: {source}")]
    Snapshot { path: PathBuf, source: io::Error },
    #[error("snapshot {digest} does not restore: {reason}")]
    Restore { digest: String, reason: String },
    #[error("downloaded snapshot hashes to {actual}, not {expected}; nothing was restored")]
    Digest { expected: String, actual: String },
}

/// Writes `workspace` to `out` (tar + zstd, entries sorted) and returns `sha256:<hex>`.
/// Owners are shifted down by `id_base` (the host id that is root inside).
pub fn snapshot(workspace: &Path, id_base: u32, out: &Path) -> Result<String, BackupError> {
    let fail = |source| BackupError::Snapshot {
        path: workspace.to_path_buf(),
        source,
    };
    let file = File::create(out).map_err(fail)?;
    let hashing = HashingWriter::new(BufWriter::new(file));
    let encoder = zstd::Encoder::new(hashing, 3).map_err(fail)?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    append_tree(&mut tar, workspace, Path::new(""), id_base).map_err(fail)?;
    let encoder = tar.into_inner().map_err(fail)?;
    let (mut file, digest, _) = encoder.finish().map_err(fail)?.finish();
    file.flush().map_err(fail)?;
    file.get_ref().sync_all().map_err(fail)?;
    Ok(digest.to_string())
}

fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    relative: &Path,
    id_base: u32,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(root.join(relative))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let rel = relative.join(&name);
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_uid(meta.uid().saturating_sub(id_base) as u64);
        header.set_gid(meta.gid().saturating_sub(id_base) as u64);
        let kind = meta.file_type();
        if kind.is_dir() {
            tar.append_data(&mut header, &rel, io::empty())?;
            append_tree(tar, root, &rel, id_base)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path)?;
            tar.append_link(&mut header, &rel, target)?;
        } else if kind.is_file() {
            tar.append_data(&mut header, &rel, File::open(&path)?)?;
        }
        // Sockets, FIFOs and devices are not workspace content; they are left out.
    }
    Ok(())
}

/// Saves `source` to `partial` while hashing it, and checks it against `expected`.
pub fn receive(mut source: impl Read, partial: &Path, expected: &str) -> Result<(), BackupError> {
    let restore = |reason: String| BackupError::Restore {
        digest: expected.to_string(),
        reason,
    };
    let mut file = File::create(partial).map_err(|e| restore(e.to_string()))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = source.read(&mut buf).map_err(|e| restore(format!("download broke off: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| restore(e.to_string()))?;
    }
    let actual = hasher.finish().0.to_string();
    if actual != expected {
        let _ = fs::remove_file(partial);
        return Err(BackupError::Digest {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Unpacks a verified snapshot into `workspace` (with the same guards as image layers: no
/// path escapes, no devices) and shifts owners up to this environment's range.
pub fn restore(archive: &Path, digest: &str, workspace: &Path, id_base: u32) -> Result<(), BackupError> {
    let fail = |reason: String| BackupError::Restore {
        digest: digest.to_string(),
        reason,
    };
    let file = File::open(archive).map_err(|e| fail(e.to_string()))?;
    unpack::apply_layer(workspace, file, Compression::Zstd).map_err(|e| fail(e.to_string()))?;
    shift_owners(workspace, id_base).map_err(|e| fail(format!("cannot set owners: {e}")))
}

/// Moves the owners of `dir` and everything below it into the environment's range: an id
/// below `id_base` (as unpacked or cloned by the host) becomes `id_base + id`.
pub fn shift_owners(dir: &Path, id_base: u32) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    let shift = |id: u32| if id >= id_base { id } else { id_base + id };
    std::os::unix::fs::lchown(dir, Some(shift(meta.uid())), Some(shift(meta.gid())))?;
    if meta.is_dir() {
        for entry in fs::read_dir(dir)? {
            shift_owners(&entry?.path(), id_base)?;
        }
    }
    Ok(())
}
