//! `bundle endpoints`, and the real platform manifest: it parses and its hosts are listed.

mod common;

use std::path::Path;

use common::*;

#[test]
fn the_platform_manifest_parses_and_lists_every_host_the_low_side_must_reach() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("offline-manifests/platform.toml");
    let text = stdout(&ok(airlock().args(["bundle", "endpoints", "--manifest"]).arg(&manifest)));
    for host in [
        "mcr.microsoft.com:443",
        "*.data.mcr.microsoft.com:443",
        "update.code.visualstudio.com:443",
        "vscode.download.prss.microsoft.com:443",
        "open-vsx.org:443",
        "data.services.jetbrains.com:443",
        "download.jetbrains.com:443",
    ] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{host} "))), "{host} missing:\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["bundle", "endpoints", "--output", "json", "--manifest"]).arg(&manifest)).stdout).unwrap();
    let addresses: Vec<&str> = json.as_array().unwrap().iter().map(|e| e["address"].as_str().unwrap()).collect();
    let mut sorted = addresses.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(addresses, sorted, "the list is sorted and has no repeats");
}

#[test]
fn endpoints_follow_configured_base_urls_and_docker_hub_names() {
    let sample = Sample::new();
    let m = sample.path("m.toml");
    std::fs::write(
        &m,
        "[bundle]\nname = \"m\"\nchannel = \"c\"\n\n\
         [[image]]\nname = \"library/ubuntu\"\ntag = \"24.04\"\nsource = \"registry:docker.io/library/ubuntu:24.04\"\n\n\
         [[image]]\nname = \"proxied/base\"\ntag = \"1\"\nsource = \"registry:ghcr.io/x/base:1\"\nbase_url = \"http://proxy.site.internal:5000\"\n\n\
         [[openvsx]]\nbase_url = \"https://vsx.site.internal:8443\"\nextensions = [\"a.b\"]\n\n\
         [[https]]\nname = \"cli\"\nversion = \"1\"\nurl = \"http://releases.site.internal/cli\"\nsidecar = true\n",
    )
    .unwrap();
    let text = stdout(&ok(airlock().args(["bundle", "endpoints", "--manifest"]).arg(&m)));
    for host in ["registry-1.docker.io:443", "auth.docker.io:443", "proxy.site.internal:5000", "vsx.site.internal:8443", "releases.site.internal:80"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{host} "))), "{host} missing:\n{text}");
    }
    assert!(!text.lines().any(|l| l.starts_with("ghcr.io")), "a proxied registry's own host is not needed:\n{text}");
}

/// A `[[devcontainer]]`'s image and features are read from its devcontainer.json: their
/// registries (or the configured base URL for one) are listed with the reason; a file that
/// cannot be read is named.
#[test]
fn devcontainer_images_and_features_bring_their_registries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".devcontainer")).unwrap();
    std::fs::write(
        dir.path().join(".devcontainer/devcontainer.json"),
        "// the shape the public templates use\n{\n  \"image\": \"mcr.microsoft.com/devcontainers/base:1\",\n  \
         \"features\": {\n    \"ghcr.io/devcontainers/features/node:1\": {},\n    \"features.site.internal:8443/team/tool:2\": {},\n  },\n}\n",
    )
    .unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        "[bundle]\nname = \"m\"\nchannel = \"c\"\n\n[[devcontainer]]\npath = \".devcontainer/devcontainer.json\"\n\
         base_urls = { \"features.site.internal:8443\" = \"http://proxy.site.internal:5000\" }\n",
    )
    .unwrap();
    let text = stdout(&ok(airlock().args(["bundle", "endpoints", "--manifest"]).arg(&m)));
    for (host, why) in [
        ("mcr.microsoft.com:443", "devcontainer image mcr.microsoft.com/devcontainers/base:1"),
        ("*.data.mcr.microsoft.com:443", "downloads redirect here"),
        ("ghcr.io:443", "devcontainer feature ghcr.io/devcontainers/features/node:1"),
        ("pkg-containers.githubusercontent.com:443", "downloads redirect here"),
        ("proxy.site.internal:5000", "devcontainer feature features.site.internal:8443/team/tool:2"),
    ] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{host} ")) && l.contains(why)), "{host} ({why}) missing:\n{text}");
    }
    assert!(!text.contains("features.site.internal:8443 "), "a proxied registry's own host is not needed:\n{text}");

    std::fs::remove_file(dir.path().join(".devcontainer/devcontainer.json")).unwrap();
    let out = airlock().args(["bundle", "endpoints", "--manifest"]).arg(&m).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("devcontainer.json"), "{err}");
}
