//! Blob bodies served straight from the page cache.
//!
//! A large blob is memory-mapped once and handed to hyper as one `Bytes` over the mapping.
//! Every mapping is registered with the file behind it, so the plain-HTTP socket layer
//! ([`crate::zero_copy`]) can recognise those bytes when hyper writes them and send them with
//! sendfile(2): no copy through user space at all. Over TLS the mapped bytes are still read
//! without an intermediate read buffer. Mappings of recently served blobs are kept, so
//! repeated pulls of a hot layer skip the mapping and page-table set-up.
//!
//! Soundness: a mapping is valid only while nobody truncates or rewrites its file. Blob files
//! are immutable by construction (they appear by rename once their digest was checked, are
//! never opened for writing again, and are only unlinked by gc, which leaves a mapping valid),
//! so the store's own rules keep every mapping sound. A file changed behind the store's back
//! (an operator editing `blobs/`) is outside that contract; `mirror verify` reports it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

use airlock_oci::Digest;
use bytes::Bytes;

/// Blobs below this size are read into memory: a mapping costs more than it saves there.
pub const MAP_THRESHOLD: u64 = 1024 * 1024;

/// How many mappings are kept. Each pins only address space and page-cache pages the
/// kernel may still evict; the bound keeps unlinked files from being held open for long.
const KEEP: usize = 32;

/// Every live mapping: start address → (length, the mapped file's descriptor).
static LIVE: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());

/// A blob file and its mapping; registered in [`LIVE`] for as long as it exists.
struct MappedFile {
    map: memmap2::Mmap,
    /// Kept open for sendfile(2), which takes the descriptor registered in [`LIVE`].
    _file: File,
}

impl MappedFile {
    /// Maps `file` and returns its whole content as `Bytes` that own the mapping.
    fn bytes(file: File) -> io::Result<Bytes> {
        // SAFETY: blob files are never written after publication (see the module comment).
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        // Not faulted in up front: over plain HTTP the kernel reads the file for sendfile and
        // the mapping is never touched; over TLS the pages are read in order, so read ahead.
        let _ = map.advise(memmap2::Advice::Sequential);
        let entry = (map.len(), file.as_raw_fd());
        LIVE.write().unwrap_or_else(PoisonError::into_inner).insert(map.as_ptr() as usize, entry);
        Ok(Bytes::from_owner(MappedFile { map, _file: file }))
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        LIVE.write().unwrap_or_else(PoisonError::into_inner).remove(&(self.map.as_ptr() as usize));
    }
}

/// The file and offset behind `bytes` when they lie inside a live blob mapping.
///
/// The descriptor stays valid while `bytes` is borrowed: the slice is part of a `Bytes` that
/// keeps its `MappedFile` (and so the file) alive, and the registration goes only on drop.
pub fn file_behind(bytes: &[u8]) -> Option<(RawFd, u64)> {
    let start = bytes.as_ptr() as usize;
    let live = LIVE.read().unwrap_or_else(PoisonError::into_inner);
    let (&base, &(len, fd)) = live.range(..=start).next_back()?;
    (start + bytes.len() <= base + len).then_some((fd, (start - base) as u64))
}

#[derive(Default)]
pub struct MappedBlobs {
    kept: Mutex<HashMap<Digest, Kept>>,
}

struct Kept {
    bytes: Bytes,
    inode: u64,
    last_used: u64,
}

impl MappedBlobs {
    /// The whole content of the blob file at `path`, mapped (or read when small).
    /// Blocking: call it off the async workers.
    pub fn get(&self, digest: &Digest, path: &Path) -> io::Result<Bytes> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.len() < MAP_THRESHOLD {
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            io::Read::read_to_end(&mut file, &mut bytes)?;
            return Ok(Bytes::from(bytes));
        }
        let fresh = |k: &Kept| k.inode == meta.ino() && k.bytes.len() as u64 == meta.len();
        {
            let mut kept = self.lock();
            let tick = kept.values().map(|k| k.last_used).max().unwrap_or(0) + 1;
            if let Some(entry) = kept.get_mut(digest).filter(|k| fresh(k)) {
                entry.last_used = tick;
                return Ok(entry.bytes.clone());
            }
        }
        let bytes = MappedFile::bytes(file)?;
        let mut kept = self.lock();
        let tick = kept.values().map(|k| k.last_used).max().unwrap_or(0) + 1;
        if kept.len() >= KEEP && !kept.contains_key(digest) {
            let oldest = kept.iter().min_by_key(|(_, k)| k.last_used).map(|(d, _)| *d);
            if let Some(oldest) = oldest {
                kept.remove(&oldest);
            }
        }
        kept.insert(*digest, Kept { bytes: bytes.clone(), inode: meta.ino(), last_used: tick });
        Ok(bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the kept mapping of a blob whose file is being removed, so its disk space is
    /// freed as soon as the responses still sending it finish.
    pub fn forget(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blobs_are_mapped_once_and_forgotten_on_removal() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..MAP_THRESHOLD as usize + 5).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("blob");
        std::fs::write(&path, &content).unwrap();
        let digest = Digest::of(&content);
        let blobs = MappedBlobs::default();
        let first = blobs.get(&digest, &path).unwrap();
        assert_eq!(&first[..], &content[..]);
        let second = blobs.get(&digest, &path).unwrap();
        assert_eq!(first.as_ptr(), second.as_ptr(), "the second request reuses the mapping");
        assert_eq!(blobs.kept(), 1);
        blobs.forget(&digest);
        assert_eq!(blobs.kept(), 0);
    }

    #[test]
    fn mapped_bytes_name_their_file_and_offset_while_alive() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..MAP_THRESHOLD as usize * 2).map(|i| (i % 253) as u8).collect();
        let path = dir.path().join("blob");
        std::fs::write(&path, &content).unwrap();
        let blobs = MappedBlobs::default();
        let digest = Digest::of(&content);
        let whole = blobs.get(&digest, &path).unwrap();
        let part = whole.slice(1000..5000);
        let (fd, offset) = file_behind(&part).expect("inside a live mapping");
        assert_eq!(offset, 1000);
        let mut read_back = vec![0u8; part.len()];
        // SAFETY: pread into a buffer of exactly that length.
        let n = unsafe { libc::pread(fd, read_back.as_mut_ptr().cast(), read_back.len(), offset as libc::off_t) };
        assert_eq!(n as usize, part.len());
        assert_eq!(read_back, &part[..]);
        assert!(file_behind(&content[..10]).is_none(), "ordinary memory is not a mapping");
        let start = whole.as_ptr() as usize;
        blobs.forget(&digest);
        drop((whole, part));
        let gone = LIVE.read().unwrap();
        assert!(!gone.contains_key(&start), "the registration goes with the last reference");
    }

    #[test]
    fn a_replaced_file_is_mapped_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let old = vec![1u8; MAP_THRESHOLD as usize];
        std::fs::write(&path, &old).unwrap();
        let digest = Digest::of(&old);
        let blobs = MappedBlobs::default();
        let before = blobs.get(&digest, &path).unwrap();
        // A new file under the same name (what a rename does) is a new inode.
        let staged = dir.path().join("staged");
        std::fs::write(&staged, vec![2u8; MAP_THRESHOLD as usize]).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        let after = blobs.get(&digest, &path).unwrap();
        assert_eq!(before[0], 1, "a response already holding the old mapping keeps its bytes");
        assert_eq!(after[0], 2);
    }

    #[test]
    fn small_blobs_are_read_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"small").unwrap();
        let blobs = MappedBlobs::default();
        assert_eq!(&blobs.get(&Digest::of(b"small"), &path).unwrap()[..], b"small");
        assert_eq!(blobs.kept(), 0);
    }

    #[test]
    fn the_least_recently_used_mapping_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = MappedBlobs::default();
        let blob = |i: usize| {
            let content = vec![i as u8; MAP_THRESHOLD as usize];
            let path = dir.path().join(format!("blob{i}"));
            std::fs::write(&path, &content).unwrap();
            (Digest::of(&content), path)
        };
        let all: Vec<_> = (0..=KEEP).map(blob).collect();
        for (digest, path) in &all[..KEEP] {
            blobs.get(digest, path).unwrap();
        }
        // Using the first again makes the second the least recently used.
        blobs.get(&all[0].0, &all[0].1).unwrap();
        blobs.get(&all[KEEP].0, &all[KEEP].1).unwrap();
        let kept = blobs.kept.lock().unwrap();
        assert_eq!(kept.len(), KEEP);
        assert!(kept.contains_key(&all[0].0));
        assert!(!kept.contains_key(&all[1].0), "the least recently used mapping was dropped");
        assert!(kept.contains_key(&all[KEEP].0));
    }
}
