//! The connected side's content cache: a filesystem CAS, `blobs/sha256/<2 hex>/<hex>`.
//!
//! Content only enters through a temporary file in `tmp/` that is fsynced, checked against
//! its digest and renamed into place, so whatever is under `blobs/` is complete and correct
//! (packing hashes it again anyway). Downloads of known digests keep their partial file as
//! `tmp/<hex>.partial` so an interrupted run resumes where it stopped.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use airlock_oci::{hash_reader, Digest};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("content cache {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("content cache entry {path} is damaged (it hashes to {actual}); it was removed, run again to fetch it anew")]
    Damaged { path: PathBuf, actual: Digest },
}

#[derive(Clone, Debug)]
pub struct ContentCache {
    root: PathBuf,
}

impl ContentCache {
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        for sub in ["blobs/sha256", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|source| CacheError::Io { path: dir, source })?;
        }
        Ok(ContentCache { root: root.to_path_buf() })
    }

    /// `$AIRLOCK_CACHE_DIR`, else `$XDG_CACHE_HOME/airlock`, else `~/.cache/airlock`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("AIRLOCK_CACHE_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("airlock");
        }
        match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cache/airlock"),
            None => std::env::temp_dir().join("airlock-cache"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// The resumable partial download of a known digest.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("tmp").join(format!("{}.partial", digest.hex()))
    }

    /// A fresh temporary file for content whose digest is not known yet.
    pub fn temp_file(&self) -> Result<(fs::File, PathBuf), CacheError> {
        let dir = self.root.join("tmp");
        let temp = tempfile::Builder::new()
            .prefix("download-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|source| CacheError::Io { path: dir, source })?;
        temp.keep().map_err(|e| CacheError::Io { path: self.root.join("tmp"), source: e.error })
    }

    /// Size of the cached blob, when it is there (with the expected size, if one is given).
    pub fn has(&self, digest: &Digest, size: Option<u64>) -> Option<u64> {
        let len = fs::metadata(self.blob_path(digest)).ok().filter(|m| m.is_file())?.len();
        (size.is_none() || size == Some(len)).then_some(len)
    }

    /// Moves a complete, fsynced and already hashed file into place under its digest.
    pub fn commit(&self, temp: &Path, digest: &Digest) -> Result<PathBuf, CacheError> {
        let path = self.blob_path(digest);
        let dir = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(|source| CacheError::Io { path: dir.to_path_buf(), source })?;
        fs::rename(temp, &path).map_err(|source| CacheError::Io { path: path.clone(), source })?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(path)
    }

    /// Stores small content held in memory (manifests, descriptors).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        if self.has(&digest, Some(bytes.len() as u64)).is_some() {
            return Ok(digest);
        }
        let (mut file, temp) = self.temp_file()?;
        let io_err = |source| CacheError::Io { path: temp.clone(), source };
        file.write_all(bytes).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        self.commit(&temp, &digest)?;
        Ok(digest)
    }

    /// Reads a small cached blob, checking it; a damaged entry is removed.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        match fs::File::open(&path) {
            Ok(f) => f.take(limit + 1).read_to_end(&mut bytes).map_err(|source| CacheError::Io { path: path.clone(), source })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            let _ = fs::remove_file(&path);
            return Err(CacheError::Damaged { path, actual });
        }
        Ok(Some(bytes))
    }

    /// Re-hashes a cached blob (used by `--verify-cache`-like checks and tests).
    pub fn check(&self, digest: &Digest) -> Result<bool, CacheError> {
        let path = self.blob_path(digest);
        let file = fs::File::open(&path).map_err(|source| CacheError::Io { path: path.clone(), source })?;
        let (actual, _) = hash_reader(file).map_err(|source| CacheError::Io { path, source })?;
        Ok(actual == *digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lands_under_its_digest_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::open(dir.path()).unwrap();
        let d = cache.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        let path = cache.blob_path(&d);
        assert!(path.starts_with(dir.path().join("blobs/sha256").join(&d.hex()[..2])));
        assert_eq!(cache.has(&d, Some(5)), Some(5));
        assert_eq!(cache.has(&d, Some(6)), None);
        assert_eq!(cache.read_small(&d, 100).unwrap().unwrap(), b"hello");
        fs::write(&path, b"jello").unwrap();
        assert!(cache.read_small(&d, 100).is_err());
        assert!(!path.exists(), "a damaged entry is removed");
        assert!(fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none(), "no temporary file is left");
    }
}
