//! Property tests of the mirror's untrusted inputs: a hostile bundle imported into a store
//! (through the import API, as `mirror import` and the admin socket call it) never changes
//! what the store lists, and the HTTP Range parser only accepts ranges inside the blob.

use airlock_bundle::{Silent, TrustPolicy};
use airlock_mirror::import::{import, ImportOptions};
use airlock_mirror::registry::parse_range;
use airlock_mirror::Store;
use airlock_testkit::bundle::{damage, damaged, same_archive, tiny_bundle, TinyBundle};
use airlock_testkit::{peak_heap_during, PeakAllocator};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: PeakAllocator = PeakAllocator;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// Everything a client or an operator can list: repositories, manifests, blobs, artifacts,
/// the channel's head.
fn listing(store: &Store) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        store.repositories().unwrap(),
        store.all_manifests().unwrap(),
        store.visible_blobs().unwrap(),
        store.artifacts(None).unwrap(),
        store.channel_head("stable").unwrap(),
    )
}

fn import_bytes(store: &Store, bundle: &TinyBundle, bytes: &[u8]) -> bool {
    let trust = TrustPolicy { keys: vec![bundle.public_key.clone()], threshold: 1 };
    let options = ImportOptions {
        trust: &trust,
        detached: &[],
        allow_downgrade: false,
        allow_expired: false,
        actor: "property test".into(),
        progress: &Silent,
    };
    import(store, bytes, "hostile.airlock.tar.zst", &options).is_ok()
}

/// An empty store (in a folder removed when dropped), the tiny bundle, and the listing.
fn empty_store() -> (tempfile::TempDir, Store, TinyBundle, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = listing(&store);
    (dir, store, tiny_bundle(b"a release file\n", 3), before)
}

/// The listing does see an import: the undamaged bundle changes it.
#[test]
fn a_valid_bundle_changes_the_listing() {
    let (_dir, store, bundle, before) = empty_store();
    assert!(import_bytes(&store, &bundle, &bundle.bytes));
    assert_ne!(listing(&store), before);
}

#[test]
fn hostile_bundles_leave_the_listing_unchanged() {
    let (_dir, store, bundle, before) = empty_store();
    let mut runner = proptest::test_runner::TestRunner::new(cases(100));
    let inputs = prop_oneof![
        damage().prop_map(|d| damaged(&bundle.bytes, &d)),
        prop::collection::vec(any::<u8>(), 0..4096),
    ];
    runner
        .run(&inputs, |bytes| {
            // Damage zstd decodes to the same archive is no damage: that bundle is the valid one.
            prop_assume!(!same_archive(&bundle.bytes, &bytes));
            prop_assert!(!import_bytes(&store, &bundle, &bytes), "a damaged bundle was imported");
            prop_assert_eq!(&listing(&store), &before);
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Any header value: an accepted range is non-empty and lies within the blob.
    #[test]
    fn accepted_ranges_lie_within_the_blob(spec in "(bytes=)?[ 0-9,+-]{0,24}", size in prop_oneof![0u64..64, any::<u64>()]) {
        check_range(&spec, size)?;
    }

    /// Well-formed ranges around the blob's end, where the arithmetic is.
    #[test]
    fn ranges_near_the_end_lie_within_the_blob(size in 0u64..1000, a in 0u64..1100, b in 0u64..1100, form in 0..3) {
        let spec = match form {
            0 => format!("bytes={a}-{b}"),
            1 => format!("bytes={a}-"),
            _ => format!("bytes=-{b}"),
        };
        let accepted = check_range(&spec, size)?;
        // A range that starts inside a non-empty blob is always served.
        if form == 1 && a < size {
            prop_assert_eq!(accepted, Some((a, size - a)));
        }
    }
}

fn check_range(spec: &str, size: u64) -> Result<Option<(u64, u64)>, TestCaseError> {
    let (accepted, peak) = peak_heap_during(|| parse_range(spec, size));
    prop_assert_eq!(peak, 0, "parsing a range allocated");
    if let Some((start, len)) = accepted {
        prop_assert!(len >= 1, "{spec} on {size}: empty range");
        prop_assert!(start.checked_add(len).is_some_and(|end| end <= size), "{spec} on {size}: {start}+{len} is past the end");
    }
    Ok(accepted)
}
