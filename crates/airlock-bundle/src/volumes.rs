//! Volumes: one bundle stream cut into media-sized files `NAME.airlock.tar.zst.001 …`, plus a
//! signed volume list `NAME.airlock-volumes.json` giving each volume's sha256 and size, so
//! each volume is checked on arrival and only a bad one is copied again. Readers stream the
//! volumes in order without joining them on disk.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airlock_oci::{Digest, Hasher};

use crate::signing::SignatureFile;

pub const VOLUMES_SUFFIX: &str = ".airlock-volumes.json";
pub const VOLUME_LIST_VERSION: u32 = 1;
/// Smaller volumes would only make a mess of files.
pub const MIN_VOLUME_SIZE: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeList {
    pub format_version: u32,
    pub bundle_id: String,
    pub name: String,
    pub channel: String,
    pub sequence: u64,
    /// sha256 of the bundle's `airlock-bundle.json`.
    pub manifest_digest: Digest,
    pub volume_size: u64,
    pub total_size: u64,
    pub volumes: Vec<VolumeRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecord {
    /// File name, beside the list.
    pub name: String,
    pub size: u64,
    pub sha256: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a volume list: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("volume {name} is damaged: it has {actual_size} bytes hashing to {actual}, the signed volume list says {expected_size} bytes hashing to {expected}; copy this volume again")]
    BadVolume { name: String, expected: Digest, expected_size: u64, actual: Digest, actual_size: u64 },
    #[error("volume {name} is missing beside the volume list ({source}); copy it too")]
    Missing { name: String, source: io::Error },
}

/// `NAME.airlock.tar.zst` → `NAME.airlock-volumes.json`.
pub fn volume_list_path(bundle: &Path) -> PathBuf {
    let name = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(crate::format::BUNDLE_SUFFIX).unwrap_or(&name);
    bundle.with_file_name(format!("{stem}{VOLUMES_SUFFIX}"))
}

/// The folder a file is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `LIST.json` → `LIST.json.minisig`, `LIST.json.2.minisig`, …
pub fn signature_path(list: &Path, n: usize) -> PathBuf {
    let name = list.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if n == 1 {
        list.with_file_name(format!("{name}.minisig"))
    } else {
        list.with_file_name(format!("{name}.{n}.minisig"))
    }
}

/// A volume size that is not a size, or is below [`MIN_VOLUME_SIZE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size such as 4.7G, 700M or 1048576")]
    NotASize(String),
    #[error("volume size `{0}` is below the minimum of 1M")]
    TooSmall(String),
}

/// Parses a size such as `4.7G`, `700M`, `25GB`, `1048576` (binary units: G = 2^30).
pub fn parse_size(value: &str) -> Result<u64, SizeError> {
    let v = value.trim();
    let upper = v.to_ascii_uppercase();
    let digits_end = upper.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(upper.len());
    let (number, unit) = upper.split_at(digits_end);
    let shift = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(SizeError::NotASize(value.to_string())),
    };
    let number: f64 = number.parse().map_err(|_| SizeError::NotASize(value.to_string()))?;
    let bytes = (number * (1u64 << shift) as f64) as u64;
    if bytes < MIN_VOLUME_SIZE {
        return Err(SizeError::TooSmall(value.to_string()));
    }
    Ok(bytes)
}

/// Cuts a byte stream into volume files, hashing each. The volumes are temporary files until
/// [`VolumeWriter::persist`] renames them all into place.
pub struct VolumeWriter {
    dir: PathBuf,
    base_name: String,
    limit: u64,
    current: Option<(tempfile::NamedTempFile, Hasher)>,
    done: Vec<(tempfile::NamedTempFile, VolumeRecord)>,
}

impl VolumeWriter {
    pub fn new(bundle: &Path, limit: u64) -> Self {
        let base_name = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        VolumeWriter { dir: parent_dir(bundle), base_name, limit, current: None, done: Vec::new() }
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((file, hasher)) = self.current.take() {
            file.as_file().sync_all()?;
            let (sha256, size) = hasher.finish();
            let name = format!("{}.{:03}", self.base_name, self.done.len() + 1);
            self.done.push((file, VolumeRecord { name, size, sha256 }));
        }
        Ok(())
    }

    /// Closes the last volume and renames every volume into place.
    pub fn persist(mut self) -> io::Result<Vec<VolumeRecord>> {
        self.close_current()?;
        let mut records = Vec::new();
        for (file, record) in self.done {
            file.persist(self.dir.join(&record.name)).map_err(|e| e.error)?;
            records.push(record);
        }
        Ok(records)
    }
}

impl Write for VolumeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.current.as_ref().is_some_and(|(_, h)| h.len() >= self.limit) {
            self.close_current()?;
        }
        if self.current.is_none() {
            let file = tempfile::Builder::new().prefix(".airlock-partial-volume-").tempfile_in(&self.dir)?;
            self.current = Some((file, Hasher::new()));
        }
        let (file, hasher) = self.current.as_mut().expect("a volume is open");
        let room = (self.limit - hasher.len()) as usize;
        let n = file.write(&buf[..buf.len().min(room)])?;
        hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((file, _)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// A volume list as read from disk, with the signatures found beside it.
pub struct LoadedList {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub list: VolumeList,
    pub signatures: Vec<(SignatureFile, String)>,
}

pub fn load_list(path: &Path) -> Result<LoadedList, VolumeError> {
    let bytes = std::fs::read(path).map_err(|source| VolumeError::Read { path: path.to_path_buf(), source })?;
    let list: VolumeList = serde_json::from_slice(&bytes).map_err(|e| VolumeError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
    if list.format_version != VOLUME_LIST_VERSION || list.volumes.is_empty() {
        return Err(VolumeError::Invalid { path: path.to_path_buf(), message: "unknown version or no volumes".into() });
    }
    for v in &list.volumes {
        if v.name.contains('/') || v.name.starts_with('.') {
            return Err(VolumeError::Invalid { path: path.to_path_buf(), message: format!("volume name `{}` is not a plain file name", v.name) });
        }
    }
    let mut signatures = Vec::new();
    for n in 1..=crate::format::MAX_EMBEDDED_SIGNATURES {
        let sig_path = signature_path(path, n);
        let Ok(text) = std::fs::read_to_string(&sig_path) else { break };
        let origin = sig_path.display().to_string();
        let signature = SignatureFile::decode(&text, &origin).map_err(|e| VolumeError::Invalid { path: sig_path.clone(), message: e.to_string() })?;
        signatures.push((signature, origin));
    }
    Ok(LoadedList { path: path.to_path_buf(), bytes, list, signatures })
}

/// Reads the volumes in order as one stream, checking each volume's size and sha256 as it
/// ends: a bad volume fails the read with its name.
pub struct VolumeChain {
    dir: PathBuf,
    volumes: Vec<VolumeRecord>,
    next: usize,
    current: Option<(BufReader<File>, Hasher, usize)>,
}

impl VolumeChain {
    pub fn new(list_path: &Path, volumes: &[VolumeRecord]) -> Self {
        VolumeChain { dir: parent_dir(list_path), volumes: volumes.to_vec(), next: 0, current: None }
    }

    /// After a failed read: checks the volume being read and every later one in full, and
    /// returns the first bad one (so a damaged volume is named even when the decompressor
    /// noticed the damage first).
    pub fn find_bad_volume(&mut self) -> Option<VolumeError> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return None,
                Ok(_) => continue,
                Err(e) => return e.into_inner().and_then(|inner| inner.downcast::<VolumeError>().ok()).map(|b| *b),
            }
        }
    }

    fn open_next(&mut self) -> io::Result<bool> {
        let Some(record) = self.volumes.get(self.next) else { return Ok(false) };
        let path = self.dir.join(&record.name);
        let file = File::open(&path).map_err(|source| io::Error::other(VolumeError::Missing { name: record.name.clone(), source }))?;
        self.current = Some((BufReader::with_capacity(1 << 20, file), Hasher::new(), self.next));
        self.next += 1;
        Ok(true)
    }
}

impl Read for VolumeChain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(0);
            }
            let (reader, hasher, index) = self.current.as_mut().expect("a volume is open");
            let record = &self.volumes[*index];
            let n = reader.read(buf)?;
            if n > 0 && hasher.len() + (n as u64) <= record.size {
                hasher.update(&buf[..n]);
                return Ok(n);
            }
            // End of this volume (or more bytes than listed): check it before going on.
            let mut extra = n as u64;
            if n > 0 {
                extra += io::copy(reader, &mut io::sink())?;
            }
            let (actual, size) = std::mem::replace(hasher, Hasher::new()).finish();
            let actual_size = size + extra;
            if actual != record.sha256 || actual_size != record.size {
                let error = VolumeError::BadVolume {
                    name: record.name.clone(),
                    expected: record.sha256,
                    expected_size: record.size,
                    actual,
                    actual_size,
                };
                self.current = None;
                return Err(io::Error::other(error));
            }
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("4.7G").unwrap(), (4.7 * (1u64 << 30) as f64) as u64);
        assert_eq!(parse_size("700M").unwrap(), 700 << 20);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("12").is_err());
        assert!(parse_size("4.7Q").is_err());
    }

    #[test]
    fn volumes_cut_at_the_limit_and_chain_back_with_checks() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("x.airlock.tar.zst");
        let mut writer = VolumeWriter::new(&bundle, 1000);
        let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        writer.write_all(&data).unwrap();
        let records = writer.persist().unwrap();
        assert_eq!(records.iter().map(|r| r.size).collect::<Vec<_>>(), [1000, 1000, 500]);
        assert_eq!(records[2].name, "x.airlock.tar.zst.003");
        let list = volume_list_path(&bundle);
        let mut back = Vec::new();
        VolumeChain::new(&list, &records).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);

        let second = dir.path().join(&records[1].name);
        let mut bytes = std::fs::read(&second).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&second, bytes).unwrap();
        let err = VolumeChain::new(&list, &records).read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("x.airlock.tar.zst.002") && err.contains("copy this volume again"), "{err}");
    }
}
