//! Streaming bundle reader: one pass over the compressed stream, every entry checked against
//! the signed manifest before and while it is read, nothing written anywhere unless the
//! caller asks. The mirror's import and `airlock bundle verify` both read through this.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};

use airlock_oci::{is_manifest_media_type, Digest, Hasher, ImageIndex, ManifestLinks, MAX_MANIFEST_SIZE, MEDIA_TYPE_IMAGE_INDEX};

use crate::format::{self, BundleManifest, FormatError};
use crate::signing::{KeyError, SignatureFile};
use crate::trust::{Signer, Trust, TrustError};
use crate::ustar::{self, BLOCK};

/// Default cap on `index.json`: one small descriptor per artifact, so 16 MiB is tens of
/// thousands of artifacts.
pub const MAX_INDEX_SIZE: u64 = 16 << 20;

/// Largest zstd window a bundle may ask for, as a power of two: 2^23 = 8 MiB. That is the
/// most zstd uses at the levels `airlock bundle create` accepts (1 to 19, no long-distance
/// matching; see [`crate::pack::MAX_COMPRESSION_LEVEL`]), so every bundle airlock writes reads,
/// while a hand-made frame cannot make the decoder reserve the 128 MiB zstd would allow.
pub const MAX_WINDOW_LOG: u32 = 23;

/// Bounds that keep memory small whatever a hostile bundle claims.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_manifest_size: u64,
    pub max_signature_size: u64,
    /// `index.json` is read into memory to be checked, so its declared size is capped
    /// before a byte of it is read (a signed manifest may still declare anything).
    pub max_index_size: u64,
    /// Zero padding tolerated after the end-of-archive marker (tar pads to its record size).
    pub max_trailing_zeros: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_manifest_size: 64 << 20, max_signature_size: 8 << 10, max_index_size: MAX_INDEX_SIZE, max_trailing_zeros: 1 << 20 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read the bundle at byte {offset} of its content: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("the bundle's zstd stream asks for a window larger than the {limit} bytes airlock bundles use, at byte {offset} of its content; refusing it (airlock bundle create writes levels 1 to 19 only: repack it with airlock)")]
    WindowTooLarge { offset: u64, limit: u64 },
    #[error("the bundle is truncated: the stream ends {place}")]
    Truncated { place: String },
    #[error("the bundle is damaged at byte {offset} of its content: {reason}")]
    BadHeader { offset: u64, reason: String },
    #[error("the first entry must be airlock-bundle.json but is `{found}`: this is not an airlock bundle")]
    NotABundle { found: String },
    #[error("the file is empty (0 bytes), not an airlock bundle; copy the NAME.airlock.tar.zst that `airlock bundle create` wrote again from the transfer medium")]
    Empty,
    #[error("this is not an airlock bundle: it is {found}; a bundle is the zstd-compressed tar (NAME.airlock.tar.zst) that `airlock bundle create` writes")]
    NotZstd { found: String },
    #[error("airlock-bundle.json is {size} bytes, more than the {limit} allowed")]
    ManifestTooLarge { size: u64, limit: u64 },
    #[error("the signed manifest declares index.json as {size} bytes, more than the {limit} allowed; refusing the bundle before reading it (an index of so many artifacts is not something airlock makes: ask the connected side to split the bundle)")]
    IndexTooLarge { size: u64, limit: u64 },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("embedded signature {name}: {source}")]
    Signature { name: String, source: KeyError },
    #[error("embedded signature {name} is {size} bytes; a minisign signature is far smaller")]
    SignatureTooLarge { name: String, size: u64 },
    #[error("entry `{name}` has an unsafe name ({reason}); refusing the bundle")]
    UnsafePath { name: String, reason: &'static str },
    #[error("entry `{name}` is a {kind}; bundles hold only regular files")]
    NotRegular { name: String, kind: &'static str },
    #[error("entry `{name}` is not listed in the signed manifest")]
    Unlisted { name: String },
    #[error("entry `{name}` appears twice")]
    Duplicate { name: String },
    #[error("entry `{name}` is {actual} bytes but the signed manifest declares {declared}{hint}")]
    SizeMismatch { name: String, declared: u64, actual: u64, hint: &'static str },
    #[error("entry `{name}` does not match the signed manifest: expected {expected}, got {actual}")]
    DigestMismatch { name: String, expected: Digest, actual: Digest },
    #[error("{count} entries listed in the signed manifest are missing, the first being `{first}`")]
    Missing { first: String, count: usize },
    #[error("unexpected data after the end of the archive, at byte {offset} of its content")]
    TrailingData { offset: u64 },
    #[error("{what} is inconsistent with the signed manifest: {message}")]
    Inconsistent { what: String, message: String },
    #[error("cannot write entry `{name}`: {source}")]
    Sink { name: String, source: io::Error },
    #[error(transparent)]
    Trust(#[from] TrustError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    OciLayout,
    Index,
    Blob,
}

#[derive(Clone, Debug)]
pub struct EntryInfo {
    pub name: String,
    pub kind: EntryKind,
    pub digest: Digest,
    pub size: u64,
}

struct Expected {
    kind: EntryKind,
    digest: Digest,
    size: u64,
    /// Manifests and indexes are parsed to check that everything they need is present.
    parse_as: Option<String>,
}

struct Current {
    info: EntryInfo,
    remaining: u64,
}

enum Pending {
    Header(ustar::Header),
    End,
}

/// Counts decompressed bytes so errors can say where they happened.
struct Counting<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

pub struct BundleReader<R: Read> {
    input: Counting<zstd::stream::read::Decoder<'static, BufReader<R>>>,
    limits: Limits,
    manifest: BundleManifest,
    manifest_bytes: Vec<u8>,
    signatures: Vec<SignatureFile>,
    expected: HashMap<String, Expected>,
    known_digests: BTreeSet<Digest>,
    seen: BTreeSet<String>,
    pending: Option<Pending>,
    current: Option<Current>,
    ended: bool,
    buf: Vec<u8>,
}

/// What a complete pass found.
#[derive(Clone, Debug)]
pub struct Summary {
    pub entries: usize,
    pub blob_bytes: u64,
}

impl<R: Read> BundleReader<R> {
    /// Reads the head of the bundle: the manifest and its embedded signatures. Nothing
    /// after them is read until [`next_entry`](Self::next_entry).
    pub fn open(reader: R) -> Result<Self, BundleError> {
        Self::with_limits(reader, Limits::default())
    }

    pub fn with_limits(reader: R, limits: Limits) -> Result<Self, BundleError> {
        let mut reader = BufReader::with_capacity(zstd::zstd_safe::DCtx::in_size(), reader);
        let head = loop {
            match reader.fill_buf() {
                Ok(head) => break head,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BundleError::Read { offset: 0, source }),
            }
        };
        sniff(head)?;
        let mut decoder = zstd::stream::read::Decoder::with_buffer(reader)
            .map_err(|source| BundleError::Read { offset: 0, source })?;
        decoder.window_log_max(MAX_WINDOW_LOG).map_err(|source| BundleError::Read { offset: 0, source })?;
        let mut input = Counting { inner: decoder, offset: 0 };
        let first = match read_header(&mut input)? {
            Pending::Header(h) => h,
            Pending::End => return Err(BundleError::NotABundle { found: "(empty archive)".into() }),
        };
        if first.name != format::MANIFEST_ENTRY || !ustar::is_regular(first.type_flag) {
            return Err(BundleError::NotABundle { found: first.name });
        }
        if first.size > limits.max_manifest_size {
            return Err(BundleError::ManifestTooLarge { size: first.size, limit: limits.max_manifest_size });
        }
        let manifest_bytes = read_small(&mut input, &first)?;
        let manifest = BundleManifest::parse(&manifest_bytes)?;
        if manifest.layout.index.size > limits.max_index_size {
            return Err(BundleError::IndexTooLarge { size: manifest.layout.index.size, limit: limits.max_index_size });
        }

        let mut signatures = Vec::new();
        let pending = loop {
            let header = match read_header(&mut input)? {
                Pending::Header(h) => h,
                Pending::End => break Pending::End,
            };
            let n = signatures.len() + 1;
            if n > format::MAX_EMBEDDED_SIGNATURES || header.name != format::signature_entry(n) {
                break Pending::Header(header);
            }
            if !ustar::is_regular(header.type_flag) {
                return Err(BundleError::NotRegular { name: header.name, kind: ustar::type_name(header.type_flag) });
            }
            if header.size > limits.max_signature_size {
                return Err(BundleError::SignatureTooLarge { name: header.name, size: header.size });
            }
            let bytes = read_small(&mut input, &header)?;
            let text = String::from_utf8(bytes).map_err(|_| BundleError::Signature {
                name: header.name.clone(),
                source: KeyError::Malformed { what: header.name.clone(), kind: "signature", reason: "not UTF-8".into() },
            })?;
            let signature = SignatureFile::decode(&text, &header.name)
                .map_err(|source| BundleError::Signature { name: header.name.clone(), source })?;
            signatures.push(signature);
        };

        let expected = expected_entries(&manifest);
        let mut known_digests: BTreeSet<Digest> = manifest.blobs.iter().map(|b| b.digest).collect();
        known_digests.extend(manifest.base_blobs.iter().map(|b| b.digest));
        Ok(BundleReader {
            input,
            limits,
            manifest,
            manifest_bytes,
            signatures,
            expected,
            known_digests,
            seen: BTreeSet::new(),
            pending: Some(pending),
            current: None,
            ended: false,
            buf: vec![0u8; 256 * 1024],
        })
    }

    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The manifest exactly as signed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    pub fn embedded_signatures(&self) -> &[SignatureFile] {
        &self.signatures
    }

    /// Checks embedded and detached signatures against the policy.
    pub fn check_signatures(&self, policy: &dyn Trust, detached: &[(SignatureFile, String)]) -> Result<Vec<Signer>, BundleError> {
        let mut all: Vec<(SignatureFile, String)> = self
            .signatures
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), format!("embedded {}", format::signature_entry(i + 1))))
            .collect();
        all.extend(detached.iter().cloned());
        Ok(policy.check(&self.manifest_bytes, &all)?)
    }

    /// Moves to the next layout entry, checking its name, type and size against the
    /// manifest before any of its content is read. An entry left unread is read and
    /// checked (into nothing) first.
    pub fn next_entry(&mut self) -> Result<Option<EntryInfo>, BundleError> {
        if self.current.is_some() {
            self.copy_entry(&mut io::sink())?;
        }
        if self.ended {
            return Ok(None);
        }
        let next = match self.pending.take() {
            Some(p) => p,
            None => read_header(&mut self.input)?,
        };
        let header = match next {
            Pending::Header(h) => h,
            Pending::End => {
                self.ended = true;
                return Ok(None);
            }
        };
        let name = header.name;
        if let Some(reason) = ustar::unsafe_path_reason(&name) {
            return Err(BundleError::UnsafePath { name, reason });
        }
        if !ustar::is_regular(header.type_flag) {
            return Err(BundleError::NotRegular { name, kind: ustar::type_name(header.type_flag) });
        }
        let Some(expected) = self.expected.get(&name) else {
            return Err(BundleError::Unlisted { name });
        };
        if !self.seen.insert(name.clone()) {
            return Err(BundleError::Duplicate { name });
        }
        if header.size != expected.size {
            let hint = if header.size > expected.size {
                " (refusing to read more than declared)"
            } else {
                ""
            };
            return Err(BundleError::SizeMismatch { name, declared: expected.size, actual: header.size, hint });
        }
        let info = EntryInfo { name, kind: expected.kind, digest: expected.digest, size: expected.size };
        self.current = Some(Current { info: info.clone(), remaining: info.size });
        Ok(Some(info))
    }

    /// Streams the current entry's content into `sink`, hashing it on the way. The digest
    /// is compared once the last byte is through: a caller writing to staging must not
    /// publish what it wrote unless this returns `Ok`.
    pub fn copy_entry(&mut self, sink: &mut dyn Write) -> Result<(), BundleError> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let name = current.info.name.clone();
        let parse_as = self.expected[&name].parse_as.clone();
        // Only entries whose declared size was capped are parsed (see `expected_entries` and
        // `max_index_size`); the buffer still grows as bytes arrive rather than up front.
        let mut parse_buf = parse_as.as_ref().map(|_| Vec::with_capacity(current.info.size.min(self.buf.len() as u64) as usize));
        let mut hasher = Hasher::new();
        let mut remaining = current.remaining;
        while remaining > 0 {
            let want = self.buf.len().min(remaining as usize);
            let n = read_some(&mut self.input, &mut self.buf[..want])?;
            if n == 0 {
                return Err(BundleError::Truncated {
                    place: format!("inside `{name}` ({} of {} bytes read)", current.info.size - remaining, current.info.size),
                });
            }
            let chunk = &self.buf[..n];
            hasher.update(chunk);
            if let Some(parse_buf) = parse_buf.as_mut() {
                parse_buf.extend_from_slice(chunk);
            }
            sink.write_all(chunk).map_err(|source| BundleError::Sink { name: name.clone(), source })?;
            remaining -= n as u64;
        }
        skip_padding(&mut self.input, current.info.size, &name)?;
        let (actual, _) = hasher.finish();
        if actual != current.info.digest {
            return Err(BundleError::DigestMismatch { name, expected: current.info.digest, actual });
        }
        if let (Some(media_type), Some(bytes)) = (parse_as, parse_buf) {
            self.check_links(&name, &media_type, &bytes)?;
        }
        Ok(())
    }

    /// Checks that a manifest, index or `index.json` refers only to content the bundle
    /// carries or its base carried, and that `index.json` lists exactly the artifacts.
    fn check_links(&self, name: &str, media_type: &str, bytes: &[u8]) -> Result<(), BundleError> {
        let inconsistent = |message: String| BundleError::Inconsistent { what: name.to_string(), message };
        if name == format::INDEX_ENTRY {
            let index: ImageIndex = serde_json::from_slice(bytes).map_err(|e| inconsistent(e.to_string()))?;
            let listed: BTreeSet<Digest> = index.manifests.iter().map(|d| d.digest).collect();
            let artifacts: BTreeSet<Digest> = self.manifest.artifacts.iter().map(|a| a.digest).collect();
            if listed != artifacts {
                return Err(inconsistent("it does not list exactly the manifest's artifacts".into()));
            }
            return Ok(());
        }
        if !is_manifest_media_type(media_type) {
            return Ok(());
        }
        let links: ManifestLinks = serde_json::from_slice(bytes).map_err(|e| inconsistent(e.to_string()))?;
        for child in links.children() {
            if !self.known_digests.contains(&child.digest) {
                return Err(inconsistent(format!(
                    "it references {} which the bundle neither carries nor lists as in its base",
                    child.digest
                )));
            }
        }
        Ok(())
    }

    /// Reads whatever is left, then checks that every listed entry was present and that
    /// nothing but zero padding follows the end-of-archive marker.
    pub fn finish(mut self) -> Result<Summary, BundleError> {
        while self.next_entry()?.is_some() {}
        let missing: Vec<&String> = self.expected.keys().filter(|n| !self.seen.contains(*n)).collect();
        if let Some(first) = missing.iter().min() {
            return Err(BundleError::Missing { first: (*first).clone(), count: missing.len() });
        }
        let mut trailing = 0u64;
        loop {
            let n = read_some(&mut self.input, &mut self.buf)?;
            if n == 0 {
                break;
            }
            if self.buf[..n].iter().any(|&b| b != 0) || trailing + n as u64 > self.limits.max_trailing_zeros {
                return Err(BundleError::TrailingData { offset: self.input.offset - n as u64 });
            }
            trailing += n as u64;
        }
        Ok(Summary { entries: self.seen.len(), blob_bytes: self.manifest.total_blob_bytes() })
    }
}

fn expected_entries(manifest: &BundleManifest) -> HashMap<String, Expected> {
    let mut expected = HashMap::with_capacity(manifest.blobs.len() + 2);
    expected.insert(format::OCI_LAYOUT_ENTRY.to_string(), Expected {
        kind: EntryKind::OciLayout,
        digest: manifest.layout.oci_layout.digest,
        size: manifest.layout.oci_layout.size,
        parse_as: None,
    });
    expected.insert(format::INDEX_ENTRY.to_string(), Expected {
        kind: EntryKind::Index,
        digest: manifest.layout.index.digest,
        size: manifest.layout.index.size,
        parse_as: Some(MEDIA_TYPE_IMAGE_INDEX.to_string()),
    });
    for blob in &manifest.blobs {
        let parse_as = blob
            .media_type
            .clone()
            .filter(|m| is_manifest_media_type(m) && blob.size <= MAX_MANIFEST_SIZE);
        expected.insert(blob.digest.layout_path(), Expected {
            kind: EntryKind::Blob,
            digest: blob.digest,
            size: blob.size,
            parse_as,
        });
    }
    expected
}

fn read_some(input: &mut Counting<impl Read>, buf: &mut [u8]) -> Result<usize, BundleError> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(read_error(input.offset, source)),
        }
    }
}

/// Names what a file that is not a zstd stream is, from its first bytes, so that a wrong
/// file is reported as such rather than as a damaged bundle.
fn sniff(head: &[u8]) -> Result<(), BundleError> {
    const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    // Skippable frames (0x184D2A50..=0x184D2A5F, little-endian) may precede the data.
    let skippable = head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18];
    if head.is_empty() {
        return Err(BundleError::Empty);
    }
    // A short first read (a pipe) is left for the decoder to judge.
    if head.len() < 4 || head.starts_with(&ZSTD) || skippable {
        return Ok(());
    }
    let found = if head.len() > 262 && &head[257..262] == b"ustar" {
        "an uncompressed tar archive".to_string()
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "a gzip file".to_string()
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "an xz file".to_string()
    } else if head.starts_with(b"BZh") {
        "a bzip2 file".to_string()
    } else if head.starts_with(b"PK\x03\x04") {
        "a zip file".to_string()
    } else if head.starts_with(b"untrusted comment:") {
        "a minisign key or signature".to_string()
    } else if head.trim_ascii_start().starts_with(b"{") {
        "a JSON file (a bundle cut into volumes is imported through its NAME.airlock-volumes.json; \
         an airlock-bundle.json alone carries no content)"
            .to_string()
    } else {
        format!(
            "a file whose first bytes ({}) are not a zstd frame",
            head[..4].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
        )
    };
    Err(BundleError::NotZstd { found })
}

/// A read error, told apart when it is the zstd window cap that refused the stream.
fn read_error(offset: u64, source: io::Error) -> BundleError {
    use zstd::zstd_safe::{get_error_name, zstd_sys::ZSTD_ErrorCode};
    // zstd reports errors as negated codes; the decoder's io::Error carries the code's name.
    let window_too_large = get_error_name(0usize.wrapping_sub(ZSTD_ErrorCode::ZSTD_error_frameParameter_windowTooLarge as usize));
    if source.kind() == io::ErrorKind::Other && source.to_string() == window_too_large {
        return BundleError::WindowTooLarge { offset, limit: 1 << MAX_WINDOW_LOG };
    }
    BundleError::Read { offset, source }
}

fn read_header(input: &mut Counting<impl Read>) -> Result<Pending, BundleError> {
    let mut block = [0u8; BLOCK];
    let offset = input.offset;
    match ustar::read_block(input, &mut block) {
        Ok(Some(())) => {}
        Ok(None) => return Err(BundleError::Truncated { place: "before the end-of-archive marker".into() }),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(BundleError::Truncated { place: format!("inside a header at byte {offset}") })
        }
        Err(source) => return Err(read_error(offset, source)),
    }
    if ustar::is_zero_block(&block) {
        return Ok(Pending::End);
    }
    ustar::parse_header(&block)
        .map(Pending::Header)
        .map_err(|reason| BundleError::BadHeader { offset, reason: reason.to_string() })
}

fn read_small(input: &mut Counting<impl Read>, header: &ustar::Header) -> Result<Vec<u8>, BundleError> {
    // The declared size is only a bound: memory grows with the bytes that actually arrive.
    let mut bytes = Vec::new();
    (&mut *input).take(header.size).read_to_end(&mut bytes).map_err(|e| read_error(input.offset, e))?;
    if (bytes.len() as u64) < header.size {
        return Err(BundleError::Truncated { place: format!("inside `{}`", header.name) });
    }
    skip_padding(input, header.size, &header.name)?;
    Ok(bytes)
}

fn skip_padding(input: &mut Counting<impl Read>, size: u64, name: &str) -> Result<(), BundleError> {
    let mut pad = [0u8; BLOCK];
    let len = ustar::padding(size);
    input.read_exact(&mut pad[..len]).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BundleError::Truncated { place: format!("after `{name}`") },
        _ => read_error(input.offset, e),
    })
}

/// Reads only the head (manifest and embedded signatures) of a bundle file.
pub fn read_head(path: &std::path::Path) -> Result<BundleReader<std::fs::File>, BundleError> {
    let file = std::fs::File::open(path).map_err(|source| BundleError::Read { offset: 0, source })?;
    BundleReader::open(file)
}
