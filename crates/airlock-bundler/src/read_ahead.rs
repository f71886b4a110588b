//! Reads and hashes the files a bundle packs on a thread of its own, a few chunks ahead of
//! the compressor.
//!
//! The thread feeding zstd's workers must be free to hand them the next job the moment one
//! finishes; if it also hashed, the workers would sit idle while it did. With the hashing
//! here, every core stays busy and packing costs little more than compressing.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use airlock_oci::{Digest, Hasher};

const CHUNK: usize = 1 << 20;
/// Chunks read ahead: enough to cover a compression job (a few MiB at the usual levels).
const AHEAD: usize = 8;

pub enum Piece {
    Chunk(Vec<u8>),
    /// The file ended: what it hashed to and how many bytes it had (more than asked for
    /// when it grew).
    End { digest: Digest, size: u64 },
    Failed { path: PathBuf, error: io::Error },
}

pub struct ReadAhead {
    pieces: Receiver<Piece>,
    spare: SyncSender<Vec<u8>>,
}

impl ReadAhead {
    /// Starts reading `files` (path and expected size), in order, on a thread of `scope`.
    pub fn start<'scope, 'env>(scope: &'scope std::thread::Scope<'scope, 'env>, files: Vec<(&'env Path, u64)>) -> Self {
        let (send, pieces) = sync_channel(AHEAD);
        let (spare, spares) = sync_channel(AHEAD * 2);
        scope.spawn(move || read_all(files, send, spares));
        ReadAhead { pieces, spare }
    }

    /// The next piece; `None` once the reader has stopped.
    pub fn next(&self) -> Option<Piece> {
        self.pieces.recv().ok()
    }

    /// Hands a used chunk back for reuse (saves mapping fresh pages for every chunk).
    pub fn recycle(&self, mut buf: Vec<u8>) {
        buf.clear();
        if let Err(TrySendError::Full(_)) = self.spare.try_send(buf) {}
    }
}

fn read_all(files: Vec<(&Path, u64)>, send: SyncSender<Piece>, spares: Receiver<Vec<u8>>) {
    for (path, size) in files {
        let piece = match read_one(path, size, &send, &spares) {
            Ok(Some(end)) => end,
            Ok(None) => return, // the consumer is gone
            Err(error) => Piece::Failed { path: path.to_path_buf(), error },
        };
        let failed = matches!(piece, Piece::Failed { .. });
        if send.send(piece).is_err() || failed {
            return;
        }
    }
}

fn read_one(path: &Path, size: u64, send: &SyncSender<Piece>, spares: &Receiver<Vec<u8>>) -> io::Result<Option<Piece>> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new();
    // One byte past the expected size tells a file that grew from one that fits.
    let mut remaining = size + 1;
    while remaining > 0 {
        let mut buf = spares.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let want = CHUNK.min(remaining as usize);
        buf.resize(want, 0);
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        remaining -= n as u64;
        if send.send(Piece::Chunk(buf)).is_err() {
            return Ok(None);
        }
    }
    let (digest, size) = hasher.finish();
    Ok(Some(Piece::End { digest, size }))
}

/// Fills `buf` unless the file ends first.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
