//! `bundle create` on bad input: a clear error, and no bundle (nor a partial one) written.

mod common;

use std::fs;

use common::*;

fn create_into(sample: &Sample, out: &std::path::Path) -> std::process::Command {
    let mut cmd = airlock();
    cmd.args(["bundle", "create", "--manifest"])
        .arg(sample.path("sample.toml"))
        .arg("--key")
        .arg(sample.path("key.key"))
        .arg("--out")
        .arg(out);
    cmd
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_damaged_layer_fails_naming_it_and_the_previous_bundle_survives() {
    let sample = Sample::new();
    let out_dir = sample.path("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("sample.airlock.tar.zst");
    ok(&mut create_into(&sample, &out));
    let good = fs::read(&out).unwrap();
    let before = files_in(&out_dir);

    // Flip one byte of the largest blob in the source layout.
    let blobs = sample.path("layouts/base/blobs/sha256");
    let layer = fs::read_dir(&blobs).unwrap().map(|e| e.unwrap().path()).max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = fs::read(&layer).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&layer, bytes).unwrap();

    let err = fails(&mut create_into(&sample, &out));
    let name = layer.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("does not hold the content it should"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), good, "the previous bundle was touched");
    assert_eq!(files_in(&out_dir), before, "a partial file was left behind");
}

#[test]
fn a_missing_file_source_is_named() {
    let sample = Sample::new();
    fs::remove_file(sample.path("dist/airlock")).unwrap();
    let err = fails(&mut create_into(&sample, &sample.path("x.airlock.tar.zst")));
    assert!(err.contains("dist/airlock") && err.contains("[[file]] source"), "{err}");
    assert!(!sample.path("x.airlock.tar.zst").exists());
}

#[test]
fn an_unknown_layout_reference_lists_the_names_there_are() {
    let sample = Sample::new();
    let manifest = fs::read_to_string(sample.path("sample.toml")).unwrap().replace("base:tiny\"", "base:huge\"");
    fs::write(sample.path("sample.toml"), manifest).unwrap();
    let err = fails(&mut create_into(&sample, &sample.path("x.airlock.tar.zst")));
    assert!(err.contains("no manifest is named `huge`") && err.contains("names found: tiny"), "{err}");
}

#[test]
fn a_blob_missing_from_the_layout_is_named_with_its_parent() {
    let sample = Sample::new();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(sample.path("layouts/base/index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(sample.path(&format!("layouts/base/blobs/sha256/{}", &manifest_digest[7..]))).unwrap(),
    )
    .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    fs::remove_file(sample.path(&format!("layouts/base/blobs/sha256/{}", &config[7..]))).unwrap();
    let err = fails(&mut create_into(&sample, &sample.path("x.airlock.tar.zst")));
    assert!(err.contains(&format!("blob {config} (referenced by manifest {manifest_digest}) is missing")), "{err}");
}

#[test]
fn a_manifest_typo_is_refused_with_the_key() {
    let sample = Sample::new();
    let manifest = fs::read_to_string(sample.path("sample.toml")).unwrap().replace("platform =", "platfrom =");
    fs::write(sample.path("sample.toml"), manifest).unwrap();
    let err = fails(&mut create_into(&sample, &sample.path("x.airlock.tar.zst")));
    assert!(err.contains("platfrom"), "{err}");
}
