//! UUIDs as OSCAL wants them: version 5 (name-based, SHA-1, RFC 9562) from a fixed airlock
//! namespace and a stable name for per-subject objects, so the same component, control or
//! bundle keeps its UUID across runs and revisions; and, for a document itself, version 5
//! over a hash of its content, so it changes exactly when the content does.

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// airlock's namespace for name-based UUIDs. Never change it: every per-subject UUID in
/// every generated document derives from it.
pub const NAMESPACE: [u8; 16] = [
    0x6b, 0x1f, 0x3c, 0x5e, 0x0d, 0x2a, 0x4c, 0x7b, 0x9e, 0x41, 0x58, 0x3d, 0x27, 0xa6, 0xc0, 0x19,
];

/// The version 5 UUID of `name` in airlock's namespace, lowercase and hyphenated.
pub fn v5(name: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(NAMESPACE);
    hasher.update(name.as_bytes());
    let hash = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The UUID of a document whose content (serialized with its UUID left empty) is `content`.
pub fn for_content(kind: &str, content: &[u8]) -> String {
    v5(&format!("document/{kind}/sha256:{}", hex::encode(Sha256::digest(content))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OSCAL's UUID datatype (version 4 or 5, RFC 4122 variant).
    fn oscal_uuid(text: &str) -> bool {
        let parts: Vec<&str> = text.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
            && matches!(parts[2].as_bytes()[0], b'4' | b'5')
            && matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
    }

    #[test]
    fn matches_the_rfc_algorithm() {
        // RFC 9562 appendix A.4: "www.example.com" in the DNS namespace.
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
        ];
        let mut hasher = Sha1::new();
        hasher.update(dns);
        hasher.update(b"www.example.com");
        let hash = hasher.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&hash[..16]);
        b[6] = (b[6] & 0x0f) | 0x50;
        b[8] = (b[8] & 0x3f) | 0x80;
        assert_eq!(hex::encode(b), "2ed6657de927568b95e12665a8aea6a2");
    }

    #[test]
    fn stable_distinct_and_valid_for_oscal() {
        assert_eq!(v5("component/mirror"), v5("component/mirror"));
        assert_ne!(v5("component/mirror"), v5("component/runner"));
        for name in ["a", "component/mirror", "control/ac-2", ""] {
            assert!(oscal_uuid(&v5(name)), "{}", v5(name));
        }
        assert_ne!(for_content("ssp", b"x"), for_content("ssp", b"y"));
        assert!(oscal_uuid(&for_content("ssp", b"x")));
    }
}
