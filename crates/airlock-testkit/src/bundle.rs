//! A small, valid, signed bundle made in memory with airlock's own packer, and the ways
//! property tests damage it.

use std::time::{Duration, SystemTime};

use airlock_bundler::offline_manifest::OfflineManifest;
use airlock_bundler::pack::{self, PackOptions};
use airlock_bundle::{PublicKey, SecretKey, Silent};
use proptest::prelude::*;

pub struct TinyBundle {
    /// The whole `.airlock.tar.zst` stream.
    pub bytes: Vec<u8>,
    /// The key that signed it, to trust on the reading side.
    pub public_key: PublicKey,
}

/// Packs one release file of `content` at zstd `level`, signed by a fresh key.
pub fn tiny_bundle(content: &[u8], level: i32) -> TinyBundle {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("tool.bin"), content).expect("write the release file");
    let manifest_path = dir.path().join("offline.toml");
    std::fs::write(
        &manifest_path,
        "[bundle]\nname = \"tiny\"\nchannel = \"stable\"\n\n[[file]]\nkind = \"release-file\"\nname = \"tool\"\nversion = \"1.0.0\"\nsource = \"file:./tool.bin\"\n",
    )
    .expect("write the offline manifest");
    let manifest = OfflineManifest::load(&manifest_path).expect("the offline manifest is valid");
    let plan = pack::plan(&manifest, dir.path()).expect("plan");
    let key = SecretKey::generate().expect("signing key");
    let options = PackOptions {
        keys: std::slice::from_ref(&key),
        channel: "stable".into(),
        sequence: 1,
        name: "tiny".into(),
        created: SystemTime::now(),
        expires_in: Duration::from_secs(30 * 86400),
        compression_level: level,
        threads: 1,
        progress: &Silent,
    };
    let signed = pack::sign(&plan, &options).expect("sign");
    let bytes = pack::write_archive(&plan, &options, &signed, Vec::new(), &dir.path().join("tiny.airlock.tar.zst")).expect("pack");
    TinyBundle { bytes, public_key: key.public_key() }
}

/// How a property test damages a valid input: bytes flipped (position, non-zero mask), or
/// cut short.
#[derive(Clone, Debug)]
pub enum Damage {
    Flip(Vec<(prop::sample::Index, u8)>),
    Truncate(prop::sample::Index),
}

/// One to three flipped bytes, or a truncation, anywhere.
pub fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4).prop_map(Damage::Flip),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
    ]
}

/// Whether a damaged bundle still decompresses to the same archive as the valid one: zstd's
/// encoding has bits whose value does not change what a block decodes to, so such damage
/// is no damage at all, and a reader rightly accepts it.
pub fn same_archive(valid: &[u8], damaged: &[u8]) -> bool {
    let original = zstd::decode_all(valid).expect("the valid bundle decompresses");
    zstd::decode_all(damaged).is_ok_and(|archive| archive == original)
}

/// `valid` with `damage` done to it.
pub fn damaged(valid: &[u8], damage: &Damage) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    match damage {
        Damage::Flip(flips) => {
            for (at, mask) in flips {
                bytes[at.index(valid.len())] ^= mask;
            }
        }
        Damage::Truncate(at) => bytes.truncate(at.index(valid.len())),
    }
    bytes
}
