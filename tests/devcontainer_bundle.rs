//! `bundle lock --devcontainer`: a devcontainer.json's image and features, with `dependsOn`
//! followed, locked from Debian's docker-registry (features pushed as real OCI artifacts
//! through the Distribution API), bundled, imported into a mirror and pulled back through
//! `airlock mirror serve` under the names without the registry host, byte for byte.

mod common;
mod upstreams;

use std::fs;

use common::*;
use upstreams::*;

const FEATURE_CONFIG: &str = "application/vnd.devcontainers";
const FEATURE_LAYER: &str = "application/vnd.devcontainers.layer.v1+tar";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A feature's layer: a tar of `devcontainer-feature.json` and `install.sh`.
fn feature_tar(id: &str, depends_on: Option<&str>) -> Vec<u8> {
    let depends = depends_on.map(|d| format!(r#", "dependsOn": {{ "{d}": {{}} }}"#)).unwrap_or_default();
    let metadata = format!(
        r#"{{ "id": "{id}", "version": "1.0.0", "name": "{id}",
             "options": {{ "version": {{ "type": "string", "default": "latest" }} }}{depends} }}"#
    );
    let install = format!("#!/bin/sh\nset -e\necho \"installing {id} $VERSION\"\n");
    let mut builder = tar::Builder::new(Vec::new());
    for (name, body, mode) in [("devcontainer-feature.json", metadata.as_bytes(), 0o644), ("install.sh", install.as_bytes(), 0o755)] {
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        builder.append_data(&mut header, format!("./{name}"), body).unwrap();
    }
    builder.into_inner().unwrap()
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Pushes one blob with a monolithic upload (POST then PUT ?digest=).
fn push_blob(client: &reqwest::blocking::Client, registry: &Registry, repository: &str, bytes: &[u8]) {
    let base = format!("http://{}", registry.host());
    let started = client.post(format!("{base}/v2/{repository}/blobs/uploads/")).send().unwrap();
    assert_eq!(started.status().as_u16(), 202, "upload start: {:?}", started.text());
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with("http") { location } else { format!("{base}{location}") };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = client
        .put(format!("{location}{separator}digest={}", digest_of(bytes)))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "blob upload: {:?}", put.text());
}

/// Pushes a feature as the features distribution spec has it; returns (manifest, layer) bytes.
fn push_feature(registry: &Registry, name: &str, depends_on: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let client = reqwest::blocking::Client::new();
    let repository = format!("devcontainers/features/{name}");
    let layer = feature_tar(name, depends_on);
    let config = b"{}".to_vec();
    push_blob(&client, registry, &repository, &config);
    push_blob(&client, registry, &repository, &layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": FEATURE_CONFIG, "digest": digest_of(&config), "size": config.len() },
        "layers": [{
            "mediaType": FEATURE_LAYER, "digest": digest_of(&layer), "size": layer.len(),
            "annotations": { "org.opencontainers.image.title": format!("devcontainer-feature-{name}.tgz") }
        }],
        "annotations": { "com.github.package.type": "devcontainer_feature" }
    }))
    .unwrap();
    let put = client
        .put(format!("http://{}/v2/{repository}/manifests/1", registry.host()))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "manifest upload: {:?}", put.text());
    (manifest, layer)
}

fn lock_command(sample: &Sample, registry: &Registry, devcontainer: &std::path::Path) -> std::process::Command {
    let mut cmd = airlock();
    cmd.args(["bundle", "lock", "--manifest"])
        .arg(sample.path("sample.toml"))
        .arg("--devcontainer")
        .arg(devcontainer)
        .arg("--devcontainer-base-url")
        .arg(format!("{host}=http://{host}", host = registry.host()))
        .arg("--cache-dir")
        .arg(sample.path("cache"));
    cmd
}

#[test]
fn devcontainer_features_travel_with_their_dependencies_and_come_back_byte_identical() {
    let sample = Sample::new();
    let registry = Registry::start();
    let host = registry.host();
    registry.push(&sample.path("layouts/base"), "tiny", "library/devbase:tiny");
    let common_utils = push_feature(&registry, "common-utils", None);
    let node = push_feature(&registry, "node", Some(&format!("{host}/devcontainers/features/common-utils:1")));
    let python = push_feature(&registry, "python", None);

    let devcontainer = sample.path("app/.devcontainer/devcontainer.json");
    fs::create_dir_all(devcontainer.parent().unwrap()).unwrap();
    fs::write(
        &devcontainer,
        format!(
            r#"// shaped like the public templates
{{
    "name": "app",
    "image": "{host}/library/devbase:tiny",
    "features": {{
        "{host}/devcontainers/features/node:1": {{ "version": "22" }},
        "{host}/devcontainers/features/python:1": "3.12", // string shorthand
    }},
    "postCreateCommand": "node --version",
    "runArgs": ["--init"],
}}"#
        ),
    )
    .unwrap();
    let said = stdout(&ok(&mut lock_command(&sample, &registry, &devcontainer)));
    assert!(said.contains("locked 4 images"), "image + 2 features + the dependency: {said}");
    let lock: toml::Value = toml::from_str(&fs::read_to_string(sample.path("sample.lock")).unwrap()).unwrap();
    let images = lock["image"].as_array().unwrap();
    let feature = |name: &str| images.iter().find(|i| i["name"].as_str() == Some(&format!("devcontainers/features/{name}"))).unwrap().clone();
    for (name, (manifest, _)) in [("common-utils", &common_utils), ("node", &node), ("python", &python)] {
        let locked = feature(name);
        assert_eq!(locked["kind"].as_str(), Some("devcontainer-feature"), "{locked}");
        assert_eq!(locked["tag"].as_str(), Some("1"));
        assert_eq!(locked["digest"].as_str(), Some(digest_of(manifest).as_str()));
    }
    assert_eq!(lock["devcontainer"].as_array().unwrap().len(), 1);
    // The low side's firewall list names the feature registry, the dependency included.
    let endpoints = stdout(&ok(airlock()
        .args(["bundle", "endpoints", "--manifest"])
        .arg(sample.path("sample.toml"))
        .arg("--lock")
        .arg(sample.path("sample.lock"))));
    let line = endpoints.lines().find(|l| l.starts_with(&format!("{host} "))).unwrap_or_else(|| panic!("{host} missing:\n{endpoints}"));
    assert!(line.contains(&format!("devcontainer feature {host}/devcontainers/features/common-utils:1 (locked)")), "{line}");

    let bundle = sample.create("dev", &["--lock", sample.path("sample.lock").to_str().unwrap()]);
    let inspect = stdout(&ok(airlock().args(["bundle", "inspect"]).arg(&bundle)));
    for name in ["common-utils", "node", "python"] {
        assert!(
            inspect.lines().any(|l| l.trim_start().starts_with("devcontainer-feature") && l.contains(&format!("devcontainers/features/{name}"))),
            "{inspect}"
        );
    }

    let data = sample.path("mirror");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&data));
    let server = MirrorServer::start(&data, &[]);
    let client = reqwest::blocking::Client::new();
    for (name, (manifest, layer)) in [("common-utils", &common_utils), ("node", &node), ("python", &python)] {
        let got = client
            .get(server.url(&format!("/v2/devcontainers/features/{name}/manifests/1")))
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(got.status().as_u16(), 200, "{name}");
        assert_eq!(got.headers()["content-type"].to_str().unwrap(), OCI_MANIFEST);
        assert_eq!(got.bytes().unwrap().to_vec(), *manifest, "{name} manifest");
        let blob = client.get(server.url(&format!("/v2/devcontainers/features/{name}/blobs/{}", digest_of(layer)))).send().unwrap();
        assert_eq!(blob.status().as_u16(), 200, "{name} layer");
        assert_eq!(blob.bytes().unwrap().to_vec(), *layer, "{name} layer");
    }
    let image = client.get(server.url("/v2/library/devbase/manifests/tiny")).header("accept", OCI_MANIFEST).send().unwrap();
    assert_eq!(image.status().as_u16(), 200, "the devcontainer's image is served too");
}

#[test]
fn a_dockerfile_devcontainer_and_a_missing_feature_are_refused_by_name() {
    let sample = Sample::new();
    let registry = Registry::start();
    let host = registry.host();
    registry.push(&sample.path("layouts/base"), "tiny", "library/devbase:tiny");

    let built = sample.path("built/devcontainer.json");
    fs::create_dir_all(built.parent().unwrap()).unwrap();
    fs::write(&built, r#"{ "build": { "dockerfile": "Dockerfile" } }"#).unwrap();
    let err = fails(&mut lock_command(&sample, &registry, &built));
    assert!(err.contains("`build.dockerfile` = `Dockerfile`") && err.contains("push it") && err.contains("name it in `image`"), "{err}");
    assert!(err.contains("built/devcontainer.json"), "{err}");

    let missing = sample.path("missing/devcontainer.json");
    fs::create_dir_all(missing.parent().unwrap()).unwrap();
    fs::write(&missing, format!(r#"{{ "image": "{host}/library/devbase:tiny", "features": {{ "{host}/devcontainers/features/absent:1": {{}} }} }}"#)).unwrap();
    let err = fails(&mut lock_command(&sample, &registry, &missing));
    assert!(err.contains(&format!("feature {host}/devcontainers/features/absent:1")), "{err}");
    assert!(err.contains("missing/devcontainer.json"), "{err}");
    assert!(!sample.path("sample.lock").exists(), "a failed lock writes nothing");
}
