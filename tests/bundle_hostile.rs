//! Hostile bundles: each is refused with a message naming what is wrong. The signed
//! manifest stays intact in each case, so it is the entry checks that must catch them.

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;

/// One sample bundle shared by every case (building it is the slow part).
fn base() -> &'static (Sample, Vec<RawEntry>) {
    static BASE: OnceLock<(Sample, Vec<RawEntry>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let sample = Sample::new();
        let bundle = sample.create("base", &[]);
        let entries = unpack(&bundle);
        (sample, entries)
    })
}

/// Index of the entry holding the largest blob (the image layer).
fn largest_blob(entries: &[RawEntry]) -> usize {
    (0..entries.len())
        .filter(|&i| entries[i].name().starts_with("blobs/"))
        .max_by_key(|&i| entries[i].data.len())
        .unwrap()
}

/// Repacks modified entries and returns the error `bundle verify` gives.
fn verify_error(case: &str, edit: impl FnOnce(&mut Vec<RawEntry>) -> Vec<u8>) -> String {
    let (sample, entries) = base();
    let mut entries = entries.clone();
    let trailing = edit(&mut entries);
    let path = sample.path(&format!("{case}.airlock.tar.zst"));
    repack(&entries, &trailing, &path);
    fails(&mut sample.verify(&path))
}

fn assert_mentions(error: &str, needles: &[&str]) {
    for needle in needles {
        assert!(error.contains(needle), "expected `{needle}` in:\n{error}");
    }
}

#[test]
fn an_untouched_repack_verifies() {
    // The control: the repacking used by every case below does not break bundles by itself.
    let (sample, entries) = base();
    let path = sample.path("control.airlock.tar.zst");
    repack(entries, &[], &path);
    ok(&mut sample.verify(&path));
}

#[test]
fn absolute_paths_are_refused() {
    let err = verify_error("absolute", |e| {
        e.insert(4, RawEntry::file("/etc/cron.d/evil", b"* * * * * root sh\n"));
        vec![]
    });
    assert_mentions(&err, &["/etc/cron.d/evil", "absolute path"]);
}

#[test]
fn parent_directory_paths_are_refused() {
    let err = verify_error("dotdot", |e| {
        e.insert(4, RawEntry::file("blobs/sha256/../../../escape", b"x"));
        vec![]
    });
    assert_mentions(&err, &["blobs/sha256/../../../escape", "`..`"]);
}

#[test]
fn symlinks_are_refused() {
    let err = verify_error("symlink", |e| {
        let i = largest_blob(e);
        e[i].set_type(b'2');
        vec![]
    });
    assert_mentions(&err, &["symbolic link", "only regular files"]);
}

#[test]
fn hardlinks_are_refused() {
    let err = verify_error("hardlink", |e| {
        let i = largest_blob(e);
        e[i].set_type(b'1');
        vec![]
    });
    assert_mentions(&err, &["hard link"]);
}

#[test]
fn device_nodes_are_refused() {
    let err = verify_error("device", |e| {
        let i = largest_blob(e);
        e[i].set_type(b'3');
        vec![]
    });
    assert_mentions(&err, &["character device"]);
}

#[test]
fn duplicate_entries_are_refused() {
    let err = verify_error("duplicate", |e| {
        let i = largest_blob(e);
        let copy = e[i].clone();
        e.insert(i + 1, copy);
        vec![]
    });
    assert_mentions(&err, &["appears twice"]);
}

#[test]
fn unlisted_entries_are_refused() {
    let smuggled = format!("blobs/sha256/{}", sha256_hex(b"smuggled"));
    let name = smuggled.clone();
    let err = verify_error("unlisted", move |e| {
        e.push(RawEntry::file(&name, b"smuggled"));
        vec![]
    });
    assert_mentions(&err, &[&smuggled, "not listed in the signed manifest"]);
}

#[test]
fn a_blob_with_other_content_is_refused_naming_both_digests() {
    let mut name = String::new();
    let mut expected = String::new();
    let err = verify_error("tampered-blob", |e| {
        let i = largest_blob(e);
        name = e[i].name();
        expected = format!("sha256:{}", sha256_hex(&e[i].data));
        let middle = e[i].data.len() / 2;
        e[i].data[middle] ^= 0x01;
        vec![]
    });
    assert_mentions(&err, &[&name, &format!("expected {expected}, got sha256:")]);
}

#[test]
fn an_entry_larger_than_declared_is_refused_before_it_is_read() {
    let err = verify_error("bomb", |e| {
        let i = largest_blob(e);
        // Claims a terabyte: a reader that trusted the header would try to read it all.
        e[i].set_header_size(1 << 40);
        e.truncate(i + 1);
        vec![]
    });
    assert_mentions(&err, &["1099511627776 bytes but the signed manifest declares", "refusing to read more"]);
}

#[test]
fn an_entry_smaller_than_declared_is_refused() {
    let err = verify_error("short", |e| {
        let i = largest_blob(e);
        let keep = e[i].data.len() - 512;
        e[i].data.truncate(keep);
        e[i].set_header_size(keep as u64);
        vec![]
    });
    assert_mentions(&err, &["but the signed manifest declares"]);
}

#[test]
fn a_missing_blob_is_refused() {
    let err = verify_error("missing", |e| {
        let i = largest_blob(e);
        e.remove(i);
        vec![]
    });
    assert_mentions(&err, &["missing"]);
}

#[test]
fn garbage_after_the_end_of_the_archive_is_refused() {
    let err = verify_error("trailing-tar", |_| b"#!/bin/sh\nrm -rf /\n".to_vec());
    assert_mentions(&err, &["unexpected data after the end of the archive"]);
}

#[test]
fn garbage_after_the_compressed_stream_is_refused() {
    let (sample, _) = base();
    let path = sample.path("trailing-zstd.airlock.tar.zst");
    let mut bytes = fs::read(sample.path("base.airlock.tar.zst")).unwrap();
    bytes.extend_from_slice(b"appended after the last zstd frame");
    fs::write(&path, bytes).unwrap();
    let err = fails(&mut sample.verify(&path));
    assert_mentions(&err, &["failed verification", "cannot read the bundle"]);
}

#[test]
fn a_truncated_bundle_is_refused() {
    let (sample, _) = base();
    for keep in [0.3, 0.9] {
        let path = sample.path("truncated.airlock.tar.zst");
        let bytes = fs::read(sample.path("base.airlock.tar.zst")).unwrap();
        fs::write(&path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        let err = fails(&mut sample.verify(&path));
        assert!(err.contains("truncated") || err.contains("cannot read the bundle"), "{err}");
    }
}

#[test]
fn an_altered_manifest_fails_its_signature() {
    let err = verify_error("altered-manifest", |e| {
        let text = String::from_utf8(e[0].data.clone()).unwrap();
        let altered = text.replace("\"channel\": \"stable\"", "\"channel\": \"stablE\"");
        assert_ne!(text, altered);
        e[0].data = altered.into_bytes();
        vec![]
    });
    assert_mentions(&err, &["does not verify", "altered"]);
}

#[test]
fn a_bundle_signed_by_an_untrusted_key_is_refused() {
    let (sample, _) = base();
    let other = sample.path("other");
    ok(airlock().arg("keygen").arg("--out").arg(&other));
    let err = fails(
        airlock()
            .args(["bundle", "verify"])
            .arg(sample.path("base.airlock.tar.zst"))
            .arg("--trusted-key")
            .arg(PathBuf::from(format!("{}.pub", other.display()))),
    );
    assert_mentions(&err, &["0 of the required 1 trusted keys", "signatures from untrusted keys"]);
}

#[test]
fn a_file_that_does_not_start_with_the_manifest_is_not_a_bundle() {
    let err = verify_error("reordered", |e| {
        e.swap(0, 2);
        vec![]
    });
    assert_mentions(&err, &["not an airlock bundle"]);
}

#[test]
fn an_oversized_manifest_is_refused_before_it_is_read() {
    let err = verify_error("huge-manifest", |e| {
        e[0].set_header_size(5 << 30);
        e.truncate(1);
        vec![]
    });
    assert_mentions(&err, &["airlock-bundle.json is 5368709120 bytes"]);
}

/// `airlock mirror import` of a bundle into `data`, trusting the sample key.
fn import(sample: &Sample, bundle: &std::path::Path, data: &std::path::Path) -> std::process::Command {
    let mut cmd = airlock();
    cmd.args(["mirror", "import"]).arg(bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(data);
    cmd
}

/// A copy of the base bundle whose manifest `edit` changed, re-signed with the trusted key.
fn resigned(case: &str, edit: impl FnOnce(&mut serde_json::Value), entries_edit: impl FnOnce(&mut Vec<RawEntry>)) -> PathBuf {
    let (sample, entries) = base();
    let mut entries = entries.clone();
    resign_manifest(&mut entries, &sample.path("key.key"), edit);
    entries_edit(&mut entries);
    let path = sample.path(&format!("{case}.airlock.tar.zst"));
    repack(&entries, &[], &path);
    path
}

#[test]
fn a_signed_index_json_of_a_petabyte_is_refused_and_the_server_keeps_running() {
    // Finding 8: the reader reserved memory for index.json as declared, so a bundle signed by a
    // trusted key could abort the mirror process that imported it through the admin socket.
    let huge = 1u64 << 50;
    let bundle = resigned(
        "huge-index",
        |m| m["layout"]["index"]["size"] = serde_json::json!(huge),
        |e| {
            let i = e.iter().position(|e| e.name() == "index.json").unwrap();
            e[i].set_header_size(huge);
            e.truncate(i + 1);
        },
    );
    let (sample, _) = base();
    let data = tempfile::tempdir().unwrap();
    let server = MirrorServer::start(data.path(), &[]);
    let err = fails(&mut import(sample, &bundle, data.path()));
    assert_mentions(&err, &[&format!("declares index.json as {huge} bytes"), "more than the 16777216 allowed"]);
    // Still serving, and still importing through its socket.
    let status = reqwest::blocking::get(server.url("/v2/")).unwrap().status();
    assert_eq!(status, 200);
    ok(&mut import(sample, &sample.path("base.airlock.tar.zst"), data.path()));
    let history = stdout(&ok(airlock().args(["mirror", "history", "--output", "json", "--data-dir"]).arg(data.path())));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let results: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["refused", "imported"]);
}

#[test]
fn signed_blob_sizes_that_wrap_past_u64_are_refused_before_the_free_space_check() {
    // Finding 8: two blobs of 2^63 bytes add up to 2^64, which wrapped to 0 and passed the
    // free-space check (or panicked, in a build with overflow checks).
    let bundle = resigned(
        "wrapping-sizes",
        |m| {
            let blobs = m["blobs"].as_array_mut().unwrap();
            for blob in blobs.iter_mut().take(2) {
                blob["size"] = serde_json::json!(1u64 << 63);
            }
        },
        |_| {},
    );
    let (sample, _) = base();
    let data = tempfile::tempdir().unwrap();
    let err = fails(&mut import(sample, &bundle, data.path()));
    assert_mentions(&err, &["declared blob sizes add up to more than 18446744073709551615 bytes", "9223372036854775808"]);
    assert!(!err.contains("panicked"), "{err}");
    let err = fails(&mut sample.verify(&bundle));
    assert_mentions(&err, &["declared blob sizes add up to more than"]);
}
