//! The bundle's life on the connected side, driven through the `airlock` binary like a user.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn create_verify_inspect_round_trip() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &["--channel", "edge", "--expires", "30d"]);

    let verified = stdout(&ok(&mut sample.verify(&bundle)));
    assert!(verified.contains("channel edge, sequence 7"), "{verified}");
    assert!(verified.contains("1 of 1 required"), "{verified}");

    let json = ok(airlock().args(["bundle", "inspect", "--output", "json"]).arg(&bundle));
    let inspect: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(inspect["name"], "sample");
    assert_eq!(inspect["channel"], "edge");
    assert_eq!(inspect["sequence"], 7);
    assert_eq!(inspect["created"], CREATED);
    assert_eq!(inspect["expires"], "2026-12-01T00:00:00Z");
    let key_id = fs::read_to_string(sample.path("key.pub")).unwrap();
    let key_id = key_id.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    assert_eq!(inspect["signatures"][0]["keyId"], key_id.as_str());
    let artifacts = inspect["artifacts"].as_array().unwrap();
    let kinds: Vec<_> = artifacts.iter().map(|a| (a["kind"].as_str().unwrap(), a["name"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("image", "devcontainers/base"), ("release-file", "airlock-cli")]);
    let release = &artifacts[1];
    assert_eq!(release["version"], "0.1.0");
    assert_eq!(release["platform"], "linux-x64");
    assert_eq!(release["artifactType"], "application/vnd.airlock.release-file.v1+json");

    let text = stdout(&ok(airlock().args(["bundle", "inspect"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub"))));
    assert!(text.contains(&format!("{key_id}  valid")), "{text}");
    assert!(text.contains("devcontainers/base"), "{text}");

    // The manifest copy kept beside the bundle is byte-for-byte the signed one.
    let printed = ok(airlock().args(["bundle", "manifest"]).arg(&bundle)).stdout;
    assert_eq!(fs::read(sample.path("sample.airlock-bundle.json")).unwrap(), printed);
}

#[test]
fn the_same_inputs_and_metadata_give_byte_identical_bundles() {
    let sample = Sample::new();
    let first = fs::read(sample.create("first", &[])).unwrap();
    let second = fs::read(sample.create("second", &[])).unwrap();
    assert!(first == second, "rebuild differs");
    // SOURCE_DATE_EPOCH fixes the creation time the same way --created does.
    let out = sample.path("third.airlock.tar.zst");
    ok(airlock()
        .env("SOURCE_DATE_EPOCH", "1793491200")
        .args(["bundle", "create", "--sequence", "7", "--manifest"])
        .arg(sample.path("sample.toml"))
        .arg("--key")
        .arg(sample.path("key.key"))
        .arg("--out")
        .arg(&out));
    assert!(fs::read(&out).unwrap() == first, "SOURCE_DATE_EPOCH rebuild differs");
    // Different metadata gives a different bundle.
    let other = fs::read(sample.create("other", &["--channel", "other"])).unwrap();
    assert!(other != first);
}

#[test]
fn gnu_tar_lists_the_manifest_first_then_its_signature_then_the_layout() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let listing = stdout(&ok(Command::new("tar").arg("--zstd").arg("-tf").arg(&bundle)));
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(&names[..4], ["airlock-bundle.json", "airlock-bundle.json.minisig", "oci-layout", "index.json"]);
    assert!(names[4..].iter().all(|n| n.starts_with("blobs/sha256/")), "{listing}");
    let mut blobs = names[4..].to_vec();
    blobs.sort();
    assert_eq!(blobs, &names[4..], "blobs are not sorted");
}

#[test]
fn skopeo_reads_the_image_from_the_extracted_layout() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let extracted = sample.path("extracted");
    fs::create_dir(&extracted).unwrap();
    ok(Command::new("tar").arg("--zstd").arg("-xf").arg(&bundle).arg("-C").arg(&extracted));
    let manifest: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(&bundle)).stdout).unwrap();
    let image = &manifest["artifacts"][0];
    assert_eq!(image["kind"], "image");

    let reference = format!("oci:{}:devcontainers/base:tiny", extracted.display());
    let inspect: serde_json::Value =
        serde_json::from_slice(&ok(Command::new("skopeo").args(["inspect", &reference])).stdout).unwrap();
    assert_eq!(inspect["Digest"], image["digest"]);
    assert_eq!(inspect["Os"], "linux");
    // The release file is an OCI artifact skopeo can read too.
    let raw = ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:release-file/airlock-cli:0.1.0-linux-x64", extracted.display()),
    ]));
    let artifact: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(artifact["artifactType"], "application/vnd.airlock.release-file.v1+json");
    let layer = &artifact["layers"][0];
    let content = fs::read(sample.path("dist/airlock")).unwrap();
    assert_eq!(layer["digest"], format!("sha256:{}", sha256_hex(&content)));
}
