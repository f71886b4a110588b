//! The content-addressed blob store: `blobs/sha256/<2 hex>/<hex>` under the data folder.
//! A blob file only ever appears by rename from staging after its digest was checked, so a
//! file at a blob path always holds the bytes its name promises.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use airlock_oci::{Digest, HashingWriter};
use bytes::Bytes;

use crate::mapped::MappedBlobs;

pub struct BlobStore {
    root: PathBuf,
    staging: PathBuf,
    mapped: MappedBlobs,
}

impl BlobStore {
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("blobs").join("sha256");
        let staging = data_dir.join("staging");
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&staging)?;
        Ok(BlobStore { root, staging, mapped: MappedBlobs::default() })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// True when the blob's file exists with the expected size.
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// A temporary file inside the store (same filesystem, so publishing is a rename).
    pub fn staging_file(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new().prefix("blob-").tempfile_in(&self.staging)
    }

    /// Makes a checked staging file visible under its digest: fsync, then rename.
    pub fn publish(&self, staged: tempfile::NamedTempFile, digest: &Digest) -> io::Result<()> {
        staged.as_file().sync_all()?;
        let path = self.path(digest);
        let parent = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(parent)?;
        staged.persist(&path).map_err(|e| e.error)?;
        if let Ok(dir) = fs::File::open(parent) {
            dir.sync_all()?;
        }
        Ok(())
    }

    /// Stores bytes already in memory, checking nothing beyond computing their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> io::Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.has(&digest, bytes.len() as u64) {
            let mut staged = self.staging_file()?;
            staged.write_all(bytes)?;
            self.publish(staged, &digest)?;
        }
        Ok(digest)
    }

    /// Writes whatever `fill` produces to staging and publishes it under the digest it
    /// hashes to, which the caller compares with what it expected.
    pub fn put_stream(&self, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<(Digest, u64)> {
        let staged = self.staging_file()?;
        let mut writer = HashingWriter::new(staged);
        fill(&mut writer)?;
        let (staged, digest, size) = writer.finish();
        self.publish(staged, &digest)?;
        Ok((digest, size))
    }

    /// A blob's whole content for serving: memory-mapped when large (see `mapped`).
    /// Blocking: call it off the async workers.
    pub fn contents(&self, digest: &Digest) -> io::Result<Bytes> {
        self.mapped.get(digest, &self.path(digest))
    }

    pub fn remove(&self, digest: &Digest) -> io::Result<()> {
        self.mapped.forget(digest);
        match fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file present, whatever the metadata says.
    pub fn list(&self) -> io::Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for prefix in fs::read_dir(&self.root)? {
            let prefix = prefix?;
            if !prefix.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(prefix.path())? {
                let entry = entry?;
                if let Ok(digest) = Digest::from_hex(&entry.file_name().to_string_lossy()) {
                    out.push((digest, entry.metadata()?.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes staging files left by a killed import; they were never visible.
    pub fn clear_staging(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.staging)? {
            fs::remove_file(entry?.path())?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Free bytes on the filesystem holding the store.
    pub fn free_space(&self) -> io::Result<u64> {
        let path = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: statvfs reads a NUL-terminated path and writes only into `stat`.
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
    }
}
