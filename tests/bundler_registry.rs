//! `registry:` images against Debian's docker-registry loaded by skopeo: lock, create from
//! the lock, a multi-arch index filtered to one platform, and a warm cache that needs no
//! upstream at all.

mod common;
mod upstreams;

use std::fs;

use common::*;
use upstreams::*;

fn manifest(registry: &Registry) -> String {
    format!(
        r#"
[bundle]
name = "images"
channel = "stable"

[[image]]
name = "devcontainers/base"
tag = "tiny"
source = "registry:{host}/devcontainers/base:tiny"
base_url = "http://{host}"

[[image]]
name = "multi/app"
tag = "1"
source = "registry:{host}/multi/app:1"
base_url = "http://{host}"
platforms = ["linux/arm64"]
"#,
        host = registry.host()
    )
}

#[test]
fn lock_then_create_from_a_registry_and_a_warm_cache_needs_no_upstream() {
    let sample = Sample::new();
    let mut registry = Registry::start();
    registry.push(&sample.path("layouts/base"), "tiny", "devcontainers/base:tiny");
    let multi = multi_arch_layout(&sample.path("multi"), "1", &[("linux", "amd64"), ("linux", "arm64")], 7);
    registry.push(&multi, "1", "multi/app:1");

    let m = sample.path("images.toml");
    fs::write(&m, manifest(&registry)).unwrap();
    let cache = sample.path("cache");
    ok(airlock().args(["bundle", "lock", "--manifest"]).arg(&m).arg("--cache-dir").arg(&cache));
    let lock_text = fs::read_to_string(sample.path("images.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&lock_text).unwrap();

    // The tag resolved to the digest the sample layout has.
    let layout_index: serde_json::Value = serde_json::from_slice(&fs::read(sample.path("layouts/base/index.json")).unwrap()).unwrap();
    let images = lock["image"].as_array().unwrap();
    let base = images.iter().find(|i| i["name"].as_str() == Some("devcontainers/base")).unwrap();
    assert_eq!(base["digest"].as_str(), layout_index["manifests"][0]["digest"].as_str(), "{lock_text}");
    let app = images.iter().find(|i| i["name"].as_str() == Some("multi/app")).unwrap();
    let kept = app["manifest"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{lock_text}");
    assert_eq!(kept[0]["platform"].as_str(), Some("linux/arm64"));
    // The lock made no layer download: only manifests are in the cache so far.
    let cached: Vec<_> = walk(&cache.join("blobs"));
    assert!(cached.iter().all(|p| fs::metadata(p).unwrap().len() < 10_000), "layers were downloaded by lock: {cached:?}");

    let create = |out: &std::path::Path| {
        let mut cmd = airlock();
        cmd.args(["bundle", "create", "--manifest"])
            .arg(&m)
            .arg("--key")
            .arg(sample.path("key.key"))
            .arg("--out")
            .arg(out)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--created", CREATED, "--sequence", "3"]);
        cmd
    };
    let first = sample.path("first.airlock.tar.zst");
    let said = stdout(&ok(&mut create(&first)));
    assert!(said.contains("fetched from the lock") && said.contains("0 blobs already there"), "{said}");
    ok(&mut sample.verify(&first));

    let manifest: serde_json::Value = serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(&first)).stdout).unwrap();
    let artifact = manifest["artifacts"].as_array().unwrap().iter().find(|a| a["name"] == "multi/app").unwrap().clone();
    assert_eq!(artifact["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(artifact["upstream"], format!("registry:{}/multi/app:1", registry.host()));
    // The filtered index lists arm64 only, and the amd64 image's own layer is not carried.
    let extracted = sample.path("x");
    fs::create_dir(&extracted).unwrap();
    ok(std::process::Command::new("tar").arg("--zstd").arg("-xf").arg(&first).arg("-C").arg(&extracted));
    let index: serde_json::Value = serde_json::from_slice(
        &fs::read(extracted.join(format!("blobs/sha256/{}", &artifact["digest"].as_str().unwrap()[7..]))).unwrap(),
    )
    .unwrap();
    let platforms: Vec<&str> = index["manifests"].as_array().unwrap().iter().map(|m| m["platform"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(platforms, ["arm64"]);
    let upstream_index: serde_json::Value = serde_json::from_slice(&fs::read(multi.join("index.json")).unwrap()).unwrap();
    let upstream_index_digest = upstream_index["manifests"][0]["digest"].as_str().unwrap();
    let full: serde_json::Value = serde_json::from_slice(&fs::read(multi.join(format!("blobs/sha256/{}", &upstream_index_digest[7..]))).unwrap()).unwrap();
    let amd64 = full["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "amd64").unwrap();
    assert!(!extracted.join(format!("blobs/sha256/{}", &amd64["digest"].as_str().unwrap()[7..])).exists());
    // skopeo reads the arm64 image from the extracted bundle.
    let inspect = ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--override-arch",
        "arm64",
        &format!("oci:{}:multi/app:1", extracted.display()),
    ]));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Architecture"], "arm64");

    // Warm cache: with the registry gone, the same create succeeds and fetches nothing.
    registry.stop();
    let second = sample.path("second.airlock.tar.zst");
    let said = stdout(&ok(&mut create(&second)));
    assert!(said.contains("0 fetched (0 bytes in 0 requests)"), "{said}");
    assert!(fs::read(&first).unwrap() == fs::read(&second).unwrap(), "the rebuild from the cache differs");
}

#[test]
fn a_missing_platform_and_an_unknown_tag_are_named() {
    let sample = Sample::new();
    let registry = Registry::start();
    let multi = multi_arch_layout(&sample.path("multi"), "1", &[("linux", "amd64")], 1);
    registry.push(&multi, "1", "multi/app:1");
    let m = sample.path("m.toml");
    fs::write(&m, manifest(&registry).replace("devcontainers/base:tiny\"", "devcontainers/base:nope\"")).unwrap();
    let err = fails(airlock().args(["bundle", "lock", "--manifest"]).arg(&m).arg("--cache-dir").arg(sample.path("c")));
    assert!(err.contains("devcontainers/base") && err.contains("nope"), "{err}");

    fs::write(&m, manifest(&registry).split("[[image]]").take(1).collect::<String>() + &manifest(&registry).split("[[image]]").nth(2).map(|s| format!("[[image]]{s}")).unwrap()).unwrap();
    let err = fails(airlock().args(["bundle", "lock", "--manifest"]).arg(&m).arg("--cache-dir").arg(sample.path("c")));
    assert!(err.contains("no manifest for platform `linux/arm64`") && err.contains("linux/amd64"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
