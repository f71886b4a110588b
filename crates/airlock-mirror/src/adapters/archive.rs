//! Reading small files inside stored archives: `product.json` in a VS Code server tarball,
//! `product-info.json` in a JetBrains one, `extension/package.json` and friends in a VSIX.
//! Archives come from verified bundles but are still treated as hostile: entry sizes and the
//! bytes scanned are bounded.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde_json::Value;

/// Decompressed bytes a tarball scan reads before giving up.
pub const SCAN_BUDGET: u64 = 512 * 1024 * 1024;
/// Largest archive member read into memory.
pub const MAX_MEMBER: u64 = 16 * 1024 * 1024;

/// Counts bytes read through it, so a scan can stop at its budget.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The first JSON file named `wanted` at the archive root or one folder down
/// (`vscode-server-linux-x64/product.json`), if any within `budget` decompressed bytes.
pub fn json_in_targz(path: &Path, wanted: &str, budget: u64) -> io::Result<Option<Value>> {
    member_in_targz(path, wanted, budget, |bytes| serde_json::from_slice::<Value>(bytes).ok())
}

/// The first file named `wanted` at the archive root or one folder down that `accept` takes,
/// if any within `budget` decompressed bytes (`PKG-INFO` of an sdist, `package.json` of an
/// npm tarball).
pub fn member_in_targz<T>(path: &Path, wanted: &str, budget: u64, accept: impl Fn(&[u8]) -> Option<T>) -> io::Result<Option<T>> {
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let gz = flate2::read::GzDecoder::new(BufReader::new(File::open(path)?));
    let mut archive = tar::Archive::new(Counting { inner: gz, count: count.clone() });
    for entry in archive.entries()? {
        if count.get() > budget {
            return Ok(None);
        }
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let parts: Vec<&str> = name.trim_start_matches("./").split('/').filter(|p| !p.is_empty()).collect();
        let matches = parts.last() == Some(&wanted) && parts.len() <= 2;
        if !matches || !entry.header().entry_type().is_file() || entry.size() > MAX_MEMBER {
            continue;
        }
        let mut bytes = Vec::new();
        entry.by_ref().take(MAX_MEMBER).read_to_end(&mut bytes)?;
        if let Some(value) = accept(&bytes) {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// An open zip (VSIX) whose members can be read by name.
pub struct Zip {
    archive: zip::ZipArchive<BufReader<File>>,
}

impl Zip {
    pub fn open(path: &Path) -> Result<Zip, String> {
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("not a zip archive: {e}"))?;
        Ok(Zip { archive })
    }

    /// The `NAME.dist-info/METADATA` of a wheel: the one folder ending in `.dist-info` at
    /// the root.
    pub fn dist_info_metadata(&mut self) -> Result<Option<Vec<u8>>, String> {
        let name = self.names().into_iter().find(|n| {
            n.split_once('/').is_some_and(|(dir, rest)| dir.ends_with(".dist-info") && rest == "METADATA")
        });
        match name {
            Some(name) => self.read(&name),
            None => Ok(None),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.archive.file_names().map(str::to_string).collect()
    }

    /// A member's bytes; `Ok(None)` when there is no such member.
    pub fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let mut member = match self.archive.by_name(name) {
            Ok(member) => member,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(format!("{name}: {e}")),
        };
        if member.size() > MAX_MEMBER {
            return Err(format!("{name} is {} bytes, more than the {MAX_MEMBER} read into memory", member.size()));
        }
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member.by_ref().take(MAX_MEMBER).read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
        Ok(Some(bytes))
    }
}

/// Reads one member of a zip file.
pub fn zip_member(path: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    Zip::open(path)?.read(name)
}
