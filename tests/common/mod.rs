//! Helpers for end-to-end tests: run the `airlock` binary, build sample content, and take
//! bundles apart and put them back together to make hostile variants.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const CREATED: &str = "2026-11-01T00:00:00Z";

pub fn airlock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.env_remove("SOURCE_DATE_EPOCH").env_remove("AIRLOCK_KEY_PASSWORD");
    cmd
}

/// Runs a command and returns its output, failing the test with both streams if it failed.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? `make test` installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail, returning its standard error.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A folder with the sample manifest, its content, and a signing key `key.key`/`key.pub`.
pub struct Sample {
    pub dir: tempfile::TempDir,
}

impl Sample {
    pub fn new() -> Sample {
        let dir = tempfile::tempdir().unwrap();
        let input = tempfile::NamedTempFile::new().unwrap();
        fs::write(input.path(), b"#!/bin/sh\necho airlock sample release file\n").unwrap();
        ok(airlock().args(["bundle", "sample", "--out"]).arg(dir.path()).arg("--release-file").arg(input.path()));
        ok(airlock().arg("keygen").arg("--out").arg(dir.path().join("key")));
        Sample { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates `NAME.airlock.tar.zst` from the sample manifest with fixed metadata.
    pub fn create(&self, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(&format!("{name}.airlock.tar.zst"));
        ok(self
            .create_command("sample.toml", &out)
            .args(if extra.contains(&"--created") { &[][..] } else { &["--created", CREATED][..] })
            .args(if extra.contains(&"--sequence") { &[][..] } else { &["--sequence", "7"][..] })
            .args(extra));
        out
    }

    /// `bundle create` of a manifest in this folder, signed with its key, with a content
    /// cache inside the folder (tests never touch the user's cache).
    pub fn create_command(&self, manifest: &str, out: &Path) -> Command {
        let mut cmd = airlock();
        cmd.args(["bundle", "create", "--manifest"])
            .arg(self.path(manifest))
            .arg("--key")
            .arg(self.path("key.key"))
            .arg("--out")
            .arg(out)
            .arg("--cache-dir")
            .arg(self.path("cache"));
        cmd
    }

    pub fn verify(&self, bundle: &Path) -> Command {
        let mut cmd = airlock();
        cmd.args(["bundle", "verify"]).arg(bundle).arg("--trusted-key").arg(self.path("key.pub"));
        cmd
    }
}

/// One tar entry as raw bytes: its 512-byte header and its content (without padding).
#[derive(Clone)]
pub struct RawEntry {
    pub header: [u8; 512],
    pub data: Vec<u8>,
}

impl RawEntry {
    pub fn name(&self) -> String {
        let end = self.header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        String::from_utf8_lossy(&self.header[..end]).into_owned()
    }

    /// A regular file entry; `name` is written raw, so unsafe names can be made.
    pub fn file(name: &str, data: &[u8]) -> RawEntry {
        let mut entry = RawEntry { header: [0; 512], data: data.to_vec() };
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        entry.header.copy_from_slice(header.as_bytes());
        entry.set_name(name);
        entry
    }

    pub fn set_name(&mut self, name: &str) {
        self.header[..100].fill(0);
        self.header[..name.len()].copy_from_slice(name.as_bytes());
        self.fix_checksum();
    }

    pub fn set_type(&mut self, flag: u8) {
        self.header[156] = flag;
        self.fix_checksum();
    }

    /// Sets the header's size field, keeping `data` as it is.
    pub fn set_header_size(&mut self, size: u64) {
        if size < 8u64.pow(11) {
            let text = format!("{size:011o}\0");
            self.header[124..136].copy_from_slice(text.as_bytes());
        } else {
            // GNU base-256: a marker byte, then the number big-endian.
            self.header[124..128].copy_from_slice(&[0x80, 0, 0, 0]);
            self.header[128..136].copy_from_slice(&size.to_be_bytes());
        }
        self.fix_checksum();
    }

    fn fix_checksum(&mut self) {
        self.header[148..156].fill(b' ');
        let sum: u32 = self.header.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        self.header[148..156].copy_from_slice(text.as_bytes());
    }

    fn declared_size(&self) -> usize {
        if self.header[124] == 0x80 {
            return u64::from_be_bytes(self.header[128..136].try_into().unwrap()) as usize;
        }
        let text = String::from_utf8_lossy(&self.header[124..136]);
        usize::from_str_radix(text.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap()
    }
}

/// Splits a (small, test-made) bundle into its entries.
pub fn unpack(bundle: &Path) -> Vec<RawEntry> {
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(fs::File::open(bundle).unwrap())
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 512 <= raw.len() && raw[at..at + 512].iter().any(|&b| b != 0) {
        let mut header = [0u8; 512];
        header.copy_from_slice(&raw[at..at + 512]);
        let mut entry = RawEntry { header, data: Vec::new() };
        let size = entry.declared_size();
        entry.data = raw[at + 512..at + 512 + size].to_vec();
        at += 512 + size.div_ceil(512) * 512;
        entries.push(entry);
    }
    entries
}

/// Writes entries back as a bundle: each entry's data padded to blocks, the end marker,
/// then `trailing` bytes inside the compressed stream.
pub fn repack(entries: &[RawEntry], trailing: &[u8], out: &Path) {
    let mut raw = Vec::new();
    for entry in entries {
        raw.extend_from_slice(&entry.header);
        raw.extend_from_slice(&entry.data);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
    }
    raw.extend_from_slice(&[0u8; 1024]);
    raw.extend_from_slice(trailing);
    fs::write(out, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
}

/// Rewrites the manifest of unpacked bundle entries with `edit` and signs it again with
/// `key` (an unencrypted key from `airlock keygen`): a signed-but-hostile bundle, as a
/// holder of a trusted key could make one.
pub fn resign_manifest(entries: &mut [RawEntry], key: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    assert_eq!(entries[0].name(), "airlock-bundle.json");
    assert_eq!(entries[1].name(), "airlock-bundle.json.minisig");
    let mut manifest: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
    edit(&mut manifest);
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let secret = airlock_bundle::SecretKey::from_file(key, None).unwrap();
    let signature = secret.sign(&bytes, "re-signed by a test", "signature from a test key");
    entries[0].data = bytes;
    let size = entries[0].data.len() as u64;
    entries[0].set_header_size(size);
    entries[1].data = signature.text.into_bytes();
    let size = entries[1].data.len() as u64;
    entries[1].set_header_size(size);
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A running `airlock mirror serve`, stopped when dropped.
pub struct MirrorServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub port: u16,
}

impl MirrorServer {
    pub fn start(data: &Path, extra: &[&str]) -> MirrorServer {
        MirrorServer::start_with(data, extra, &[])
    }

    /// With extra environment variables (e.g. `AIRLOCK_MIRROR_PUSH_*` settings).
    pub fn start_with(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> MirrorServer {
        let mut cmd = airlock();
        cmd.args(["mirror", "serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data).args(extra);
        cmd.envs(env.iter().copied());
        MirrorServer::spawn(cmd)
    }

    /// Runs a prepared `mirror serve` command and reads where it listens.
    pub fn spawn(mut cmd: Command) -> MirrorServer {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("://").next().unwrap().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "unexpected first line: {line}");
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        MirrorServer { child, addr, port }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://HOST:PORT{path}` (pair with [`Curl::resolve`]).
    pub fn url_as(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

impl Drop for MirrorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
