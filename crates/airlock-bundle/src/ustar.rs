//! The small slice of ustar that bundles use: regular files with short names, fixed owner,
//! mode and mtime. Reading is strict on purpose: any entry that is not a plain regular file
//! with a safe relative name is an error, before a byte of its content is read.

use std::io::{self, Read, Write};

pub const BLOCK: usize = 512;

/// Writes one regular-file header. Names longer than 100 bytes never occur in bundles.
pub fn write_header(out: &mut impl Write, name: &str, size: u64, mtime: u64) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    out.write_all(header.as_bytes())
}

pub fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

pub fn write_padding(out: &mut impl Write, size: u64) -> io::Result<()> {
    out.write_all(&[0u8; BLOCK][..padding(size)])
}

/// The end-of-archive marker: two zero blocks.
pub fn write_end(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK])
}

/// What a header says, checked only for well-formedness; policy is the caller's.
#[derive(Debug)]
pub struct Header {
    pub name: String,
    pub size: u64,
    pub type_flag: u8,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    BadChecksum,
    NotUstar,
    BadNumber(&'static str),
    NameNotUtf8,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::BadChecksum => f.write_str("header checksum does not match"),
            HeaderError::NotUstar => f.write_str("header is not ustar"),
            HeaderError::BadNumber(field) => write!(f, "header field `{field}` is not a number"),
            HeaderError::NameNotUtf8 => f.write_str("entry name is not UTF-8"),
        }
    }
}

pub fn is_zero_block(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

pub fn parse_header(block: &[u8; BLOCK]) -> Result<Header, HeaderError> {
    let stored = parse_octal(&block[148..156]).ok_or(HeaderError::BadNumber("chksum"))?;
    let computed: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(b) })
        .sum();
    if stored != computed {
        return Err(HeaderError::BadChecksum);
    }
    let magic = &block[257..265];
    if magic != b"ustar\x0000" && magic != b"ustar  \x00" {
        return Err(HeaderError::NotUstar);
    }
    let size = parse_number(&block[124..136]).ok_or(HeaderError::BadNumber("size"))?;
    let field = |range: std::ops::Range<usize>| {
        let raw = &block[range];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        std::str::from_utf8(&raw[..end]).map_err(|_| HeaderError::NameNotUtf8)
    };
    let name = field(0..100)?;
    let prefix = field(345..500)?;
    let name = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
    Ok(Header { name, size, type_flag: block[156] })
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Octal, or GNU base-256 for large sizes (high bit of the first byte set).
fn parse_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] != 0x80 || field[1..4].iter().any(|&b| b != 0) {
            return None; // negative or wider than 64 bits
        }
        return Some(field[4..].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)));
    }
    parse_octal(field)
}

/// Human name of a type flag, for error messages.
pub fn type_name(flag: u8) -> &'static str {
    match flag {
        b'0' | 0 => "regular file",
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "FIFO",
        b'7' => "contiguous file",
        b'x' | b'g' => "PAX extended header",
        b'L' | b'K' => "GNU long name",
        _ => "unknown entry type",
    }
}

pub fn is_regular(flag: u8) -> bool {
    flag == b'0' || flag == 0
}

/// Why a name is unsafe to treat as a path inside a layout, if it is.
pub fn unsafe_path_reason(name: &str) -> Option<&'static str> {
    if name.starts_with('/') {
        Some("absolute path")
    } else if name.split('/').any(|c| c == "..") {
        Some("path with `..`")
    } else if name.is_empty() || name.split('/').any(|c| c.is_empty() || c == ".") {
        Some("non-canonical path")
    } else if name.contains('\\') {
        Some("path with a backslash")
    } else {
        None
    }
}

/// Reads exactly one block, telling a clean end of stream (`Ok(None)`) apart from a partial one.
pub fn read_block(input: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<Option<()>> {
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_headers_parse_back() {
        let mut out = Vec::new();
        write_header(&mut out, "blobs/sha256/ab", 1234, 99).unwrap();
        let block: [u8; BLOCK] = out.try_into().unwrap();
        let h = parse_header(&block).unwrap();
        assert_eq!((h.name.as_str(), h.size, is_regular(h.type_flag)), ("blobs/sha256/ab", 1234, true));
    }

    #[test]
    fn a_flipped_byte_breaks_the_checksum() {
        let mut out = Vec::new();
        write_header(&mut out, "index.json", 10, 0).unwrap();
        out[0] = b'j';
        let block: [u8; BLOCK] = out.try_into().unwrap();
        assert_eq!(parse_header(&block).unwrap_err(), HeaderError::BadChecksum);
    }

    #[test]
    fn unsafe_names_are_named() {
        assert_eq!(unsafe_path_reason("/etc/passwd"), Some("absolute path"));
        assert_eq!(unsafe_path_reason("blobs/../../x"), Some("path with `..`"));
        assert_eq!(unsafe_path_reason("blobs//x"), Some("non-canonical path"));
        assert_eq!(unsafe_path_reason("blobs/sha256/ab"), None);
    }
}
