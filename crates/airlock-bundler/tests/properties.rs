//! Property tests of the parsers that read untrusted input: the bundle reader, the tar entry
//! checks, the offline manifest and the OCI manifest/index parsers. Whatever the input, they
//! must answer (never panic) and keep their heap small (the counting allocator below records
//! the peak of each case). Also the zstd window cap, with hand-made frames.

use std::io::Write;
use std::path::{Component, Path};
use std::sync::OnceLock;

use airlock_bundle::ustar::{self, BLOCK};
use airlock_bundle::{BundleError, BundleReader, TrustPolicy, MAX_WINDOW_LOG};
use airlock_bundler::offline_manifest::OfflineManifest;
use airlock_bundler::pack::MAX_COMPRESSION_LEVEL;
use airlock_bundler::OciLayout;
use airlock_oci::{self as oci, ImageIndex, ManifestLinks};
use airlock_testkit::bundle::{damage, damaged, same_archive, tiny_bundle, TinyBundle};
use airlock_testkit::{peak_heap_during, PeakAllocator};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: PeakAllocator = PeakAllocator;

/// Heap a read of a small bundle may use: the reader's 256 KiB copy buffer, the decoder's
/// 128 KiB input buffer, and the manifest, signatures and maps of a few KiB of input. Four
/// MiB leaves room for growth strategies and error text, and is still 16 times smaller than
/// the 64 MiB a declared manifest size could reserve if it were trusted.
const READ_HEAP_BOUND: usize = 4 << 20;

/// Heap a parse of at most a few KiB of text or JSON may use (documents, errors, maps).
const PARSE_HEAP_BOUND: usize = 1 << 20;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

fn tiny() -> &'static TinyBundle {
    static TINY: OnceLock<TinyBundle> = OnceLock::new();
    TINY.get_or_init(|| tiny_bundle(b"a small release file\n", 3))
}

/// The bundle's tar stream, before compression.
fn tiny_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(|| zstd::decode_all(&tiny().bytes[..]).unwrap())
}

/// Reads a whole bundle as the mirror does: head, signatures (trusting the tiny bundle's key;
/// a failure there is noted but the read goes on, to reach the entry checks), every entry.
fn read_all(bytes: &[u8]) -> Result<(), BundleError> {
    let reader = BundleReader::open(bytes)?;
    let policy = TrustPolicy { keys: vec![tiny().public_key.clone()], threshold: 1 };
    let signed = reader.check_signatures(&policy, &[]).map(|_| ());
    reader.finish()?;
    signed
}

fn read_within_bound(bytes: &[u8]) -> Result<Result<(), BundleError>, TestCaseError> {
    let (result, peak) = peak_heap_during(|| read_all(bytes));
    prop_assert!(peak < READ_HEAP_BOUND, "reading {} bytes used {peak} bytes of heap", bytes.len());
    Ok(result)
}

fn compress(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 1).unwrap()
}

#[test]
fn the_tiny_bundle_reads_whole_and_signed() {
    read_all(&tiny().bytes).unwrap();
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn arbitrary_bytes_are_refused_within_bounds(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(read_within_bound(&bytes)?.is_err());
    }

    #[test]
    fn an_arbitrary_tar_stream_is_refused_within_bounds(tar in prop::collection::vec(any::<u8>(), 0..8192)) {
        prop_assert!(read_within_bound(&compress(&tar))?.is_err());
    }

    /// The compressed stream carries a checksum, and every entry a signed digest: damage
    /// that changes the archive never goes unnoticed.
    #[test]
    fn a_damaged_bundle_is_refused_within_bounds(damage in damage()) {
        let bytes = damaged(&tiny().bytes, &damage);
        let accepted = read_within_bound(&bytes)?.is_ok();
        prop_assert!(!accepted || same_archive(&tiny().bytes, &bytes), "damage that changed the archive was accepted");
    }

    /// Damage inside the tar stream, recompressed so it reaches the header, manifest and entry
    /// checks. Flips in padding are harmless (no content changes), so only the bound and the
    /// absence of panics are asserted.
    #[test]
    fn a_damaged_tar_stream_is_read_within_bounds(damage in damage()) {
        let _accepted_or_refused = read_within_bound(&compress(&damaged(tiny_tar(), &damage)))?;
    }

    /// A header may declare any size for the manifest: nothing is reserved for it before its
    /// bytes arrive.
    #[test]
    fn a_declared_manifest_size_reserves_nothing(declared in 0u64..=(64 << 20), sent in 0usize..2048) {
        let mut tar = Vec::new();
        ustar::write_header(&mut tar, "airlock-bundle.json", declared, 0).unwrap();
        tar.extend(std::iter::repeat_n(b'{', sent.min(declared as usize)));
        prop_assert!(read_within_bound(&compress(&tar))?.is_err());
    }

    #[test]
    fn any_header_block_parses_or_is_refused(block in prop::collection::vec(any::<u8>(), BLOCK)) {
        let block: [u8; BLOCK] = block.try_into().unwrap();
        let (_, peak) = peak_heap_during(|| ustar::parse_header(&block));
        prop_assert!(peak < PARSE_HEAP_BOUND);
    }

    /// Any name and size in a well-formed header parse back as written, and a name the reader
    /// accepts as a layout path can only name something below the layout.
    #[test]
    fn entry_names_are_safe_when_accepted(name in "[a-z./\\\\]{1,100}", size in any::<u64>()) {
        let header = ustar::parse_header(&header_block(name.as_bytes(), size)).unwrap();
        prop_assert_eq!(header.size, size);
        prop_assert_eq!(&header.name, &name);
        if ustar::unsafe_path_reason(&header.name).is_none() {
            prop_assert!(!header.name.contains('\\'));
            prop_assert!(Path::new(&header.name).components().all(|c| matches!(c, Component::Normal(_))), "{}", header.name);
        }
    }
}

/// A well-formed regular-file header for any name of at most 100 bytes (written into the
/// field directly: the tar crate refuses `..`, which is what the reader must catch).
fn header_block(name: &[u8], size: u64) -> [u8; BLOCK] {
    let mut out = Vec::new();
    ustar::write_header(&mut out, "placeholder", size, 0).unwrap();
    let mut block: [u8; BLOCK] = out.try_into().unwrap();
    block[..100].fill(0);
    block[..name.len()].copy_from_slice(name);
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    block
}

/// A valid offline manifest with every table the parser checks names in.
const OFFLINE_MANIFEST: &str = "[bundle]\nname = \"sample\"\nchannel = \"stable\"\nsequence = 3\nexpires = \"90d\"\n\n\
    [[image]]\nname = \"devcontainers/base\"\ntag = \"tiny\"\nsource = \"oci-layout:./layouts/base:tiny\"\nplatform = \"linux/amd64\"\n\n\
    [[file]]\nkind = \"release-file\"\nname = \"airlock-cli\"\nversion = \"0.1.0\"\nplatform = \"linux-x64\"\nsource = \"file:./dist/airlock\"\n";

fn load_offline_manifest(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offline.toml");
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    let (_, peak) = peak_heap_during(|| OfflineManifest::load(&path).map(|_| ()));
    prop_assert!(peak < PARSE_HEAP_BOUND, "loading {} bytes used {peak} bytes of heap", bytes.len());
    Ok(())
}

/// A manifest, the OCI document the bundle reader and the layout reader parse most.
fn oci_manifest() -> Vec<u8> {
    let layer = "sha256:".to_string() + &"ab".repeat(32);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_TYPE_IMAGE_MANIFEST,
        "config": { "mediaType": oci::MEDIA_TYPE_EMPTY, "digest": "sha256:".to_string() + &"cd".repeat(32), "size": 2 },
        "layers": [{ "mediaType": "application/octet-stream", "digest": layer, "size": 12, "annotations": { "org.opencontainers.image.title": "a" } }],
        "subject": { "digest": layer },
        "manifests": [],
    }))
    .unwrap()
}

fn parse_oci(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_, peak) = peak_heap_during(|| {
        let _ = serde_json::from_slice::<ManifestLinks>(bytes);
        let _ = serde_json::from_slice::<ImageIndex>(bytes);
    });
    prop_assert!(peak < PARSE_HEAP_BOUND, "parsing {} bytes used {peak} bytes of heap", bytes.len());
    Ok(())
}

/// Replaces one character of valid text (a field perturbed) or cuts it short.
fn perturbed(valid: &str, at: prop::sample::Index, with: Option<char>) -> Vec<u8> {
    let chars: Vec<char> = valid.chars().collect();
    let at = at.index(chars.len());
    let mut out: String = chars[..at].iter().collect();
    if let Some(c) = with {
        out.push(c);
        out.extend(&chars[at + 1..]);
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(cases(150))]

    #[test]
    fn offline_manifests_of_arbitrary_bytes_are_refused_within_bounds(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        load_offline_manifest(&bytes)?;
    }

    #[test]
    fn perturbed_offline_manifests_load_or_are_refused_within_bounds(at in any::<prop::sample::Index>(), with in prop::option::of(any::<char>())) {
        load_offline_manifest(&perturbed(OFFLINE_MANIFEST, at, with))?;
    }

    #[test]
    fn oci_documents_of_arbitrary_bytes_parse_within_bounds(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse_oci(&bytes)?;
    }

    #[test]
    fn perturbed_oci_manifests_parse_within_bounds(at in any::<prop::sample::Index>(), with in prop::option::of(any::<char>())) {
        let valid = String::from_utf8(oci_manifest()).unwrap();
        parse_oci(&perturbed(&valid, at, with))?;
    }

    /// The layout reader opens `index.json` whatever it holds, or says what is wrong with it.
    #[test]
    fn a_layout_with_a_perturbed_index_opens_or_is_refused(at in any::<prop::sample::Index>(), with in prop::option::of(any::<char>())) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("oci-layout"), oci::OCI_LAYOUT_FILE).unwrap();
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": [{ "mediaType": oci::MEDIA_TYPE_IMAGE_MANIFEST, "digest": "sha256:".to_string() + &"ef".repeat(32), "size": 300 }] });
        std::fs::write(dir.path().join("index.json"), perturbed(&index.to_string(), at, with)).unwrap();
        let (_, peak) = peak_heap_during(|| OciLayout::open(dir.path()).map(|_| ()));
        prop_assert!(peak < PARSE_HEAP_BOUND);
    }
}

/// The window size a zstd frame header asks for, as a power of two (frames airlock writes
/// are streamed, so they carry a window descriptor rather than a single segment).
fn window_log(frame: &[u8]) -> u32 {
    assert_eq!(&frame[..4], &[0x28, 0xB5, 0x2F, 0xFD], "a zstd frame");
    assert_eq!(frame[4] & 0x20, 0, "not a single-segment frame");
    10 + u32::from(frame[5] >> 3)
}

/// A zstd frame made by hand: a header asking for a window of 2^`window_log` bytes, then the
/// content as raw (uncompressed) blocks, without a checksum.
fn raw_frame(content: &[u8], window_log: u32) -> Vec<u8> {
    assert!((10..=41).contains(&window_log));
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, ((window_log - 10) << 3) as u8];
    let chunks: Vec<&[u8]> = content.chunks(64 << 10).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let block_header = (chunk.len() as u32) << 3 | last; // block type 0: raw
        frame.extend_from_slice(&block_header.to_le_bytes()[..3]);
        frame.extend_from_slice(chunk);
    }
    frame
}

#[test]
fn the_zstd_window_is_capped_at_what_airlock_packs() {
    // The packer's highest level asks for exactly the cap, and that bundle reads.
    let highest = tiny_bundle(b"packed at the highest level\n", MAX_COMPRESSION_LEVEL);
    assert_eq!(window_log(&highest.bytes), MAX_WINDOW_LOG);
    BundleReader::open(&highest.bytes[..]).unwrap().finish().unwrap();

    // The same tar stream in hand-made frames: at the cap it reads; one step above, the
    // reader refuses it before any content, naming the limit.
    read_all(&raw_frame(tiny_tar(), MAX_WINDOW_LOG)).unwrap();
    let err = BundleReader::open(&raw_frame(tiny_tar(), MAX_WINDOW_LOG + 1)[..]).err().expect("refused");
    assert!(matches!(err, BundleError::WindowTooLarge { limit, .. } if limit == 1 << MAX_WINDOW_LOG), "{err}");
    assert!(err.to_string().contains(&format!("{} bytes", 1u64 << MAX_WINDOW_LOG)), "{err}");
    let err = BundleReader::open(&raw_frame(tiny_tar(), 27)[..]).err().expect("refused");
    assert!(matches!(err, BundleError::WindowTooLarge { .. }), "{err}");
}
