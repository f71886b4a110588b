//! A file writer that pushes data to disk while it is still being produced.
//!
//! Bundles and imported blobs are fsynced before they are renamed into place, so a power
//! cut never leaves a half-written file under a final name. Left alone, the kernel holds
//! gigabytes of dirty pages and the final fsync then stalls for seconds with the CPU idle.
//! Starting writeback of each window as soon as it is written (and waiting for the window
//! before it) overlaps the disk with compression or hashing, bounds dirty memory, and
//! leaves the final fsync little to do.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

const WINDOW: u64 = 32 << 20;

pub struct WritebackFile<'a> {
    file: &'a File,
    written: u64,
    /// Everything before this offset has had its writeback started.
    started: u64,
    /// Start of the window whose writeback was started last.
    previous: u64,
}

impl<'a> WritebackFile<'a> {
    pub fn new(file: &'a File) -> Self {
        WritebackFile { file, written: 0, started: 0, previous: 0 }
    }

    fn range(&self, offset: u64, len: u64, flags: libc::c_uint) {
        // SAFETY: sync_file_range only reads the descriptor, which `file` keeps open. It is
        // a hint about timing: failure (e.g. on a filesystem without it) changes nothing
        // that the final fsync does not guarantee anyway, so its result is ignored.
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), offset as libc::off64_t, len as libc::off64_t, flags);
        }
    }
}

impl Write for WritebackFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WINDOW {
            if self.started > self.previous {
                // Wait for the window before this one: the disk keeps pace, memory stays bounded.
                self.range(
                    self.previous,
                    self.started - self.previous,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
            self.range(self.started, self.written - self.started, libc::SYNC_FILE_RANGE_WRITE);
            self.previous = self.started;
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_every_byte_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(5 << 20).collect();
        {
            let mut writer = WritebackFile::new(&file);
            for _ in 0..20 {
                writer.write_all(&chunk).unwrap();
            }
        }
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 100 << 20);
        assert!(back.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
    }
}
