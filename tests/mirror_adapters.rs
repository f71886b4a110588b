//! The mirror's protocol adapters with real clients: `ovsx get`, code-server's exact gallery
//! query, curl as VS Code's updater, JetBrains checksum links checked by `sha256sum -c`,
//! release-file sidecars, AMI descriptors, and Host-based routing for the mirrored upstream
//! names. Content is made by the tests and carried in a signed bundle.

mod common;
mod mirror_support;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use mirror_support::*;
use serde_json::{json, Value};

const UPDATE_HOST: &str = "update.code.visualstudio.com";
const OPEN_VSX_HOST: &str = "open-vsx.org";
const JETBRAINS_HOST: &str = "data.services.jetbrains.com";

/// sha256sum -c on a file next to its checksum line: the stock tool is the judge.
fn sha256sum_check(dir: &std::path::Path, file_name: &str, bytes: &[u8], checksum_line: &str) {
    std::fs::write(dir.join(file_name), bytes).unwrap();
    std::fs::write(dir.join("CHECKSUM"), checksum_line).unwrap();
    let out = ok(Command::new("sha256sum").arg("-c").arg("CHECKSUM").current_dir(dir));
    assert!(stdout(&out).contains(&format!("{file_name}: OK")), "{}", stdout(&out));
}

#[test]
fn vscode_update_service_answers_from_stored_servers() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let as_update = |path: &str| Curl::get(&server.url_as(UPDATE_HOST, path)).resolve(UPDATE_HOST, server.port).send();

    // Newest first: 1.86.0 before 1.85.1 (read from each archive's product.json).
    let commits = as_update("/api/commits/stable/server-linux-x64");
    assert_eq!(commits.status, 200, "{}", commits.text());
    assert_eq!(commits.json(), json!([COMMIT_NEW, COMMIT_OLD]));
    assert_eq!(as_update("/api/commits/stable/server-linux-arm64").json(), json!([COMMIT_OLD]));

    // The archive itself: 200 with exactly the imported bytes (no redirect to a CDN).
    let archive = as_update(&format!("/commit:{COMMIT_OLD}/server-linux-x64/stable"));
    assert_eq!(archive.status, 200);
    assert_eq!(archive.body, fixture.file("server-old-x64"));
    assert_eq!(as_update(&format!("/commit:{COMMIT_OLD}/server-linux-arm64/stable")).body, fixture.file("server-old-arm64"));

    let latest = as_update("/api/latest/server-linux-x64/stable").json();
    assert_eq!(latest["version"], COMMIT_NEW);
    assert_eq!(latest["name"], "1.86.0");
    let pinned = as_update("/api/versions/1.85.1/server-linux-x64/stable").json();
    assert_eq!(pinned["version"], COMMIT_OLD);
    assert_eq!(pinned["name"], "1.85.1");

    // The desktop updater: nothing newer → 204; older → where to get the newest, with a
    // link back at the host the client used and the hash of exactly those bytes.
    let current = as_update(&format!("/api/update/server-linux-x64/stable/{COMMIT_NEW}"));
    assert_eq!(current.status, 204);
    assert!(current.body.is_empty());
    let update = as_update(&format!("/api/update/server-linux-x64/stable/{COMMIT_OLD}")).json();
    assert_eq!(update["version"], COMMIT_NEW);
    assert_eq!(update["productVersion"], "1.86.0");
    assert_eq!(update["sha256hash"], fixture.sha256("server-new-x64"));
    let url = update["url"].as_str().unwrap();
    assert_eq!(url, server.url_as(UPDATE_HOST, &format!("/commit:{COMMIT_NEW}/server-linux-x64/stable")));
    let fetched = Curl::get(url).resolve(UPDATE_HOST, server.port).send();
    assert_eq!(sha256_hex(&fetched.body), update["sha256hash"].as_str().unwrap());
    assert!(update["timestamp"].as_u64().unwrap() > 1_700_000_000_000);

    // Unknown commit, wrong platform, unknown quality: 404 with a message that says why.
    let unknown = as_update("/commit:ffffffffffffffffffffffffffffffffffffffff/server-linux-x64/stable");
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("not mirrored"), "{}", unknown.text());
    let wrong_platform = as_update("/api/commits/stable/server-win32-x64");
    assert_eq!(wrong_platform.status, 404);
    assert!(wrong_platform.text().contains("server-linux-x64/stable"), "lists what is mirrored: {}", wrong_platform.text());
    assert_eq!(as_update(&format!("/commit:{COMMIT_OLD}/server-darwin/stable")).status, 404);
    assert_eq!(as_update("/api/latest/server-linux-x64/insider").status, 404);
    assert_eq!(as_update("/api/versions/9.9.9/server-linux-x64/stable").status, 404);

    // On the mirror's own name the service lives under /vscode-update (Open VSX owns /api),
    // and /commit:… also answers at the root, as Remote-SSH's download template expects.
    let own = Curl::get(&server.url("/vscode-update/api/commits/stable/server-linux-x64")).send();
    assert_eq!(own.json(), json!([COMMIT_NEW, COMMIT_OLD]));
    let own_latest = Curl::get(&server.url("/vscode-update/api/latest/server-linux-x64/stable")).send().json();
    assert_eq!(own_latest["url"], server.url(&format!("/vscode-update/commit:{COMMIT_NEW}/server-linux-x64/stable")));
    assert_eq!(Curl::get(own_latest["url"].as_str().unwrap()).send().body, fixture.file("server-new-x64"));
    let root = Curl::get(&server.url(&format!("/commit:{COMMIT_OLD}/server-linux-x64/stable"))).send();
    assert_eq!(root.body, fixture.file("server-old-x64"));
    // Ranges work on adapter downloads too (resumed downloads).
    let part = Curl::get(&server.url(&format!("/commit:{COMMIT_OLD}/server-linux-x64/stable"))).header("Range: bytes=2-9").send();
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &fixture.file("server-old-x64")[2..10]);
}

#[test]
fn release_files_have_stable_paths_sidecars_and_a_channel_manifest() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let work = tempfile::tempdir().unwrap();

    let manifest = Curl::get(&server.url("/releases/stable/manifest.json")).send();
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    let manifest = manifest.json();
    assert_eq!(manifest["channel"], "stable");
    assert_eq!(manifest["sequence"], 3);
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "only the newest version of each file: {manifest:#}");
    let entry = &files[0];
    assert_eq!(entry["name"], "airlock-cli");
    assert_eq!(entry["version"], "0.2.0");
    assert_eq!(entry["sha256"], fixture.sha256("cli-0.2.0"));
    assert_eq!(entry["size"], fixture.file("cli-0.2.0").len());

    // The manifest's URL serves exactly what it describes; the sidecar checks it.
    let url = entry["url"].as_str().unwrap();
    assert_eq!(url, server.url("/releases/stable/airlock-cli/0.2.0/linux-x64/airlock-linux-x64"));
    let bytes = Curl::get(url).send().body;
    assert_eq!(bytes, fixture.file("cli-0.2.0"));
    let sidecar = Curl::get(entry["sha256Url"].as_str().unwrap()).send().text();
    assert_eq!(sidecar, format!("{}  airlock-linux-x64\n", fixture.sha256("cli-0.2.0")));
    sha256sum_check(work.path(), "airlock-linux-x64", &bytes, &sidecar);

    // `latest` is the stable URL; older versions stay at their own paths.
    let latest = Curl::get(&server.url("/releases/stable/airlock-cli/latest/linux-x64/airlock-linux-x64")).send();
    assert_eq!(latest.body, fixture.file("cli-0.2.0"));
    let old = Curl::get(&server.url("/releases/stable/airlock-cli/0.1.0/linux-x64/airlock-linux-x64")).send();
    assert_eq!(old.body, fixture.file("cli-0.1.0"));
    let old_sidecar = Curl::get(&server.url("/releases/stable/airlock-cli/0.1.0/linux-x64/airlock-linux-x64.sha256")).send().text();
    sha256sum_check(work.path(), "airlock-linux-x64", &old.body, &old_sidecar);
    let head = Curl::get(&server.url("/releases/stable/airlock-cli/0.1.0/linux-x64/airlock-linux-x64")).head().send();
    assert_eq!(head.header("content-length").unwrap(), fixture.file("cli-0.1.0").len().to_string());

    let channels = Curl::get(&server.url("/releases/")).send().json();
    assert_eq!(channels["channels"][0]["channel"], "stable");

    // Wrong channel, platform, version or name: 404.
    for path in [
        "/releases/beta/manifest.json",
        "/releases/stable/airlock-cli/0.2.0/linux-arm64/airlock-linux-x64",
        "/releases/stable/airlock-cli/9.9.9/linux-x64/airlock-linux-x64",
        "/releases/stable/airlock-cli/0.2.0/linux-x64/other-name",
        "/releases/stable/airlock-cli/0.2.0/linux-x64/other-name.sha256",
    ] {
        let answer = Curl::get(&server.url(path)).send();
        assert_eq!(answer.status, 404, "{path}: {}", answer.text());
        assert!(answer.json()["error"].is_string());
    }
}

#[test]
fn ami_descriptors_are_served_as_json() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let stored: Value = serde_json::from_slice(fixture.file("ami")).unwrap();
    let list = Curl::get(&server.url("/ami")).send().json();
    assert_eq!(list, json!({ "images": [stored] }));
    assert_eq!(Curl::get(&server.url("/ami?owner=995913728426")).send().json()["images"].as_array().unwrap().len(), 1);
    assert_eq!(Curl::get(&server.url("/ami?owner=149721548608")).send().json(), json!({ "images": [] }));
    let one = Curl::get(&server.url("/ami/ec2-runner-ami")).send();
    assert_eq!(one.body, fixture.file("ami"));
    assert!(one.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(Curl::get(&server.url("/ami/ec2-runner-ami?version=1")).send().body, fixture.file("ami"));
    assert_eq!(Curl::get(&server.url("/ami/ec2-runner-ami?version=2")).send().status, 404);
    assert_eq!(Curl::get(&server.url("/ami/no-such-image")).send().status, 404);
}

#[test]
fn hosts_of_mirrored_upstreams_are_answered_as_those_upstreams() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let as_host = |host: &str, path: &str| Curl::get(&server.url_as(host, path)).resolve(host, server.port).send();

    // A registry host answers the OCI API, for every path.
    let base = as_host("mcr.microsoft.com", "/v2/");
    assert_eq!(base.status, 200);
    assert_eq!(base.header("docker-distribution-api-version").as_deref(), Some("registry/2.0"));
    let catalog = as_host("mcr.microsoft.com", "/v2/_catalog").json();
    assert!(catalog["repositories"].as_array().unwrap().iter().any(|r| r == "release-file/airlock-cli"), "{catalog}");
    let not_oci = as_host("mcr.microsoft.com", "/releases/stable/manifest.json");
    assert_eq!(not_oci.status, 404);
    assert!(not_oci.json()["errors"].is_array(), "a registry's error body: {}", not_oci.text());

    // open-vsx.org answers the registry API and the gallery, with links back at itself,
    // and nothing else.
    let metadata = as_host(OPEN_VSX_HOST, "/api/acme/hello").json();
    assert_eq!(metadata["version"], "1.1.0");
    assert!(metadata["files"]["download"].as_str().unwrap().starts_with(&server.url_as(OPEN_VSX_HOST, "/api/acme/hello/")), "{metadata:#}");
    let latest = as_host(OPEN_VSX_HOST, "/vscode/gallery/vscode/acme/hello/latest").json();
    assert!(latest["versions"][0]["assetUri"].as_str().unwrap().starts_with(&server.url_as(OPEN_VSX_HOST, "/vscode/asset/")));
    assert_eq!(as_host(OPEN_VSX_HOST, "/releases/stable/manifest.json").status, 404);
    assert_eq!(as_host(OPEN_VSX_HOST, "/v2/").status, 404);

    // The update service's host does not serve Open VSX's /api, and vice versa.
    assert_eq!(as_host(UPDATE_HOST, "/api/acme/hello").status, 404);
    assert_eq!(as_host(OPEN_VSX_HOST, "/api/commits/stable/server-linux-x64").status, 404);

    // The Marketplace's host answers the gallery under the Marketplace's paths.
    let query = json!({ "filters": [{ "criteria": [{ "filterType": 7, "value": "acme.hello" }] }], "flags": 950 });
    let answer = Curl::post(&server.url_as("marketplace.visualstudio.com", "/_apis/public/gallery/extensionquery"), query.to_string().as_bytes())
        .resolve("marketplace.visualstudio.com", server.port)
        .header("Content-Type: application/json")
        .send()
        .json();
    assert_eq!(answer["results"][0]["extensions"][0]["extensionName"], "hello");

    // The mirror's own name (anything not mirrored) serves everything side by side.
    assert_eq!(Curl::get(&server.url("/v2/")).send().status, 200);
    assert_eq!(Curl::get(&server.url("/api/acme/hello")).send().status, 200);
    assert_eq!(Curl::get(&server.url("/releases/stable/manifest.json")).send().status, 200);
    let nothing = Curl::get(&server.url("/no/such/thing")).send();
    assert_eq!(nothing.status, 404);

    // Metrics count requests by protocol.
    let metrics = Curl::get(&server.url("/metrics")).send().text();
    for family in ["oci", "openvsx", "gallery", "releases"] {
        assert!(metrics.contains(&format!("family=\"{family}\"")), "{family} missing from\n{metrics}");
    }
}

#[test]
fn jetbrains_products_api_links_back_at_the_mirror_and_checksums_verify() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let work = tempfile::tempdir().unwrap();
    let as_jetbrains = |path: &str| Curl::get(&server.url_as(JETBRAINS_HOST, path)).resolve(JETBRAINS_HOST, server.port).send();

    let answer = as_jetbrains("/products/releases?code=GO&latest=true&type=release");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    let releases = answer["GO"].as_array().unwrap_or_else(|| panic!("keyed by product code: {answer:#}"));
    assert_eq!(releases.len(), 1, "latest only");
    let release = &releases[0];
    assert_eq!(release["version"], "2024.3");
    assert_eq!(release["majorVersion"], "2024.3");
    assert_eq!(release["build"], "243.21565.208", "read from product-info.json");
    assert_eq!(release["type"], "release");
    for (platform, key, file_name) in [("linux", "goland-2024.3-linux", "goland-2024.3.tar.gz"), ("linuxARM64", "goland-2024.3-arm64", "goland-2024.3-aarch64.tar.gz")] {
        let download = &release["downloads"][platform];
        assert_eq!(download["size"], fixture.file(key).len());
        let link = download["link"].as_str().unwrap();
        assert!(link.starts_with(&server.url_as(JETBRAINS_HOST, "/jetbrains/GO/2024.3/")), "{link}");
        let archive = Curl::get(link).resolve(JETBRAINS_HOST, server.port).send();
        assert_eq!(archive.body, fixture.file(key));
        let checksum = Curl::get(download["checksumLink"].as_str().unwrap()).resolve(JETBRAINS_HOST, server.port).send().text();
        assert_eq!(checksum, format!("{} *{file_name}\n", fixture.sha256(key)));
        sha256sum_check(work.path(), file_name, &archive.body, &checksum);
    }

    // Without latest=true every release, newest first; several codes at once; the key is
    // the product code; unknown codes are simply absent.
    let all = as_jetbrains("/products/releases?code=GO,XX").json();
    let versions: Vec<&str> = all["GO"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["2024.3", "2024.2"]);
    assert!(all.get("XX").is_none());
    assert_eq!(as_jetbrains("/products/releases?code=IIU").json(), json!({}));
    assert_eq!(as_jetbrains("/products/releases?code=GO&type=eap").json(), json!({ "GO": [] }));
    assert_eq!(as_jetbrains("/products/releases").status, 400);

    // products.json for Gateway's productsInfoUrl, on the mirror's own name.
    let products = Curl::get(&server.url("/products.json")).send().json();
    assert_eq!(products[0]["code"], "GO");
    assert_eq!(products[0]["name"], "GoLand");
    let link = products[0]["releases"][1]["downloads"]["linux"]["link"].as_str().unwrap();
    assert_eq!(link, server.url("/jetbrains/GO/2024.2/linux/goland-2024.2.tar.gz"));
    assert_eq!(Curl::get(link).send().body, fixture.file("goland-2024.2-linux"));
    assert_eq!(Curl::get(&server.url("/jetbrains/GO/2024.2/mac/goland-2024.2.tar.gz")).send().status, 404);
}

/// `ovsx`, installed by scripts/install-deps.sh into .tools/node (or named by $OVSX).
fn ovsx() -> Command {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let local = root.join(".tools/node/node_modules/.bin/ovsx");
    let program = std::env::var_os("OVSX").map(PathBuf::from).unwrap_or(local);
    assert!(
        program.exists(),
        "ovsx is not installed at {}: run `scripts/install-deps.sh test` (make test does) or set OVSX",
        program.display()
    );
    let mut cmd = Command::new(program);
    // No proxy for the local mirror, no token, no telemetry-like lookups.
    cmd.env_remove("OVSX_PAT").env_remove("OVSX_REGISTRY_URL").env("NO_PROXY", "127.0.0.1").env("no_proxy", "127.0.0.1");
    cmd
}

#[test]
fn ovsx_downloads_extensions_from_the_registry_api() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let registry = server.url("");
    let out = tempfile::tempdir().unwrap();

    // The newest version, under Open VSX's file name, byte for byte.
    let got = ok(ovsx().args(["get", "acme.hello", "--registryUrl", &registry, "-o"]).arg(format!("{}/", out.path().display())));
    assert!(stdout(&got).contains("acme.hello-1.1.0"), "{}", stdout(&got));
    assert_eq!(std::fs::read(out.path().join("acme.hello-1.1.0.vsix")).unwrap(), fixture.file("hello-1.1.0"));

    // An older version through allVersions.
    let older = out.path().join("older.vsix");
    ok(ovsx().args(["get", "acme.hello", "--versionRange", "1.0.0", "--registryUrl", &registry, "-o"]).arg(&older));
    assert_eq!(std::fs::read(&older).unwrap(), fixture.file("hello-1.0.0"));

    // A per-platform build.
    let arm = out.path().join("arm.vsix");
    ok(ovsx().args(["get", "acme.native", "--target", "linux-arm64", "--registryUrl", &registry, "-o"]).arg(&arm));
    assert_eq!(std::fs::read(&arm).unwrap(), fixture.file("native-linux-arm64"));

    // Metadata as ovsx shows it.
    let metadata: Value = serde_json::from_slice(&ok(ovsx().args(["get", "acme.native", "--target", "linux-x64", "--metadata", "--registryUrl", &registry])).stdout).unwrap();
    assert_eq!(metadata["targetPlatform"], "linux-x64");
    assert_eq!(metadata["dependencies"][0]["extension"], "hello");

    // Unknown extension and unknown target: ovsx fails with the registry's message.
    let missing = fails(ovsx().args(["get", "acme.missing", "--registryUrl", &registry, "-o"]).arg(format!("{}/", out.path().display())));
    assert!(missing.contains("Extension not found: acme.missing"), "{missing}");
    let no_target = fails(ovsx().args(["get", "acme.native", "--target", "win32-x64", "--registryUrl", &registry, "-o"]).arg(format!("{}/", out.path().display())));
    assert!(no_target.contains("Extension not found"), "{no_target}");

    // The registry API directly: sha256 files, assets by name, 404s as upstream gives them.
    let sha = Curl::get(&server.url("/api/acme/hello/1.0.0/file/acme.hello-1.0.0.vsix.sha256")).send().text();
    assert_eq!(sha, fixture.sha256("hello-1.0.0"));
    let package = Curl::get(&server.url("/api/acme/native/linux-x64/2.0.0/file/package.json")).send().json();
    assert_eq!(package["name"], "native");
    let readme = Curl::get(&server.url("/api/acme/hello/1.1.0/file/README.md")).send();
    assert_eq!(readme.status, 200);
    assert!(readme.text().starts_with("# acme.hello"));
    let missing = Curl::get(&server.url("/api/acme/missing")).send();
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "Extension not found: acme.missing");
    assert_eq!(Curl::get(&server.url("/api/acme/hello/9.9.9")).send().status, 404);
    assert_eq!(Curl::get(&server.url("/api/acme/hello/1.1.0/file/nothing.txt")).send().status, 404);
    let namespace = Curl::get(&server.url("/api/acme")).send().json();
    assert_eq!(namespace["extensions"].as_object().unwrap().len(), 3);
    let search = Curl::get(&server.url("/api/-/search?query=native")).send().json();
    assert_eq!(search["totalSize"], 1);
    let refs = Curl::get(&server.url("/api/acme/hello/version-references")).send().json();
    assert_eq!(refs["totalSize"], 2);
}

/// code-server's `--install-extension` conversation, as PROTOCOLS.md recorded it.
fn code_server_query(id: &str, flags: u32) -> String {
    format!(
        "{{\"filters\":[{{\"criteria\":[{{\"filterType\":7,\"value\":\"{id}\"}},{{\"filterType\":8,\"value\":\"Microsoft.VisualStudio.Code\"}},{{\"filterType\":12,\"value\":\"4096\"}}],\"pageNumber\":1,\"pageSize\":1,\"sortBy\":0,\"sortOrder\":0}}],\"assetTypes\":[],\"flags\":{flags}}}"
    )
}

fn gallery_query(server: &Server, body: &str) -> Value {
    let answer = Curl::post(&server.url("/vscode/gallery/extensionquery"), body.as_bytes())
        .header("Content-Type: application/json")
        .header("Accept: application/json;api-version=3.0-preview.1")
        .header("Accept-Encoding: gzip")
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

#[test]
fn code_server_installs_through_the_gallery() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);

    // 1. The query, exactly as code-server 4.100 sends it.
    let answer = gallery_query(&server, &code_server_query("acme.hello", 950));
    let result = &answer["results"][0];
    assert_eq!(result["resultMetadata"][0]["metadataItems"][0]["count"], 1);
    let extension = &result["extensions"][0];
    assert!(extension["extensionId"].as_str().unwrap().len() == 36, "{extension:#}");
    assert!(extension["flags"].is_string(), "flags must be a string");
    assert_eq!(extension["publisher"]["publisherName"], "acme");
    let versions = extension["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "latest only (0x200)");
    let version = &versions[0];
    assert_eq!(version["version"], "1.1.0");
    assert_eq!(version["targetPlatform"], "universal");
    let files: Vec<&str> = version["files"].as_array().unwrap().iter().map(|f| f["assetType"].as_str().unwrap()).collect();
    assert!(files.contains(&"Microsoft.VisualStudio.Code.Manifest"), "{files:?}");
    assert!(files.contains(&"Microsoft.VisualStudio.Services.VSIXPackage"), "{files:?}");
    let property = |v: &Value, key: &str| v["properties"].as_array().unwrap().iter().find(|p| p["key"] == key).map(|p| p["value"].clone());
    assert_eq!(property(version, "Microsoft.VisualStudio.Code.Engine"), Some(json!("^1.85.0")));
    let asset_uri = version["assetUri"].as_str().unwrap();
    let fallback = version["fallbackAssetUri"].as_str().unwrap();

    // 2. The manifest, built as {assetUri}/{assetType} plus the client's query string.
    let manifest = Curl::get(&format!("{asset_uri}/Microsoft.VisualStudio.Code.Manifest?targetPlatform=linux-x64")).send();
    assert_eq!(manifest.status, 200);
    assert!(manifest.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(manifest.json(), package_json("acme", "hello", "1.1.0", &[], &[]));

    // 3. The VSIX, served directly with 200.
    let vsix = Curl::get(&format!("{fallback}/Microsoft.VisualStudio.Services.VSIXPackage?redirect=true&targetPlatform=linux-x64&install=true")).send();
    assert_eq!(vsix.status, 200);
    assert_eq!(vsix.body, fixture.file("hello-1.1.0"));

    // `pub.name@1.0.0` asks for all versions (flags 439).
    let all = gallery_query(&server, &code_server_query("acme.hello", 439));
    let all: Vec<&str> = all["results"][0]["extensions"][0]["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(all, ["1.1.0", "1.0.0"]);

    // Per-platform builds: one entry per target platform, each asset URI serving its own build.
    let native = gallery_query(&server, &code_server_query("acme.native", 950));
    let native_ext = &native["results"][0]["extensions"][0];
    let native_versions = native_ext["versions"].as_array().unwrap();
    let platforms: Vec<&str> = native_versions.iter().map(|v| v["targetPlatform"].as_str().unwrap()).collect();
    assert_eq!(platforms, ["linux-arm64", "linux-x64"]);
    for (v, key) in native_versions.iter().zip(["native-linux-arm64", "native-linux-x64"]) {
        // Whatever platform the query string says, the asset URI's platform decides.
        let url = format!("{}/Microsoft.VisualStudio.Services.VSIXPackage?targetPlatform=darwin-x64", v["assetUri"].as_str().unwrap());
        assert_eq!(Curl::get(&url).send().body, fixture.file(key));
        assert_eq!(property(v, "Microsoft.VisualStudio.Code.ExtensionDependencies"), Some(json!("acme.hello")));
    }

    // A follow-up query by UUID (filterType 4) finds the same extension.
    let by_id = format!(
        "{{\"filters\":[{{\"criteria\":[{{\"filterType\":4,\"value\":\"{}\"}}]}}],\"flags\":950}}",
        native_ext["extensionId"].as_str().unwrap()
    );
    assert_eq!(gallery_query(&server, &by_id)["results"][0]["extensions"][0]["extensionName"], "native");

    // The extension pack lists its members; pre-release is flagged.
    let pack = gallery_query(&server, &code_server_query("acme.pack", 950));
    let pack_version = &pack["results"][0]["extensions"][0]["versions"][0];
    assert_eq!(property(pack_version, "Microsoft.VisualStudio.Code.ExtensionPack"), Some(json!("acme.hello,acme.native")));
    assert_eq!(property(pack_version, "Microsoft.VisualStudio.Code.PreRelease"), Some(json!("true")));

    // Both latest URL forms, vspackage, the item page; search text and paging.
    for path in ["/vscode/gallery/acme/hello/latest", "/vscode/gallery/vscode/acme/hello/latest"] {
        let latest = Curl::get(&server.url(path)).header("Accept: application/json;api-version=7.2-preview").send();
        assert_eq!(latest.status, 200, "{path}");
        assert_eq!(latest.json()["versions"][0]["version"], "1.1.0");
    }
    let vspackage = Curl::get(&server.url("/vscode/gallery/publishers/acme/vsextensions/native/2.0.0/vspackage?targetPlatform=linux-x64")).send();
    assert_eq!(vspackage.body, fixture.file("native-linux-x64"));
    let item = Curl::get(&server.url("/vscode/item?itemName=acme.hello")).send();
    assert_eq!(item.status, 200);
    assert!(item.text().contains("hello for tests"));
    let search = gallery_query(&server, r#"{"filters":[{"criteria":[{"filterType":10,"value":"acme"}],"pageNumber":2,"pageSize":2}],"flags":914}"#);
    assert_eq!(search["results"][0]["resultMetadata"][0]["metadataItems"][0]["count"], 3);
    assert_eq!(search["results"][0]["extensions"].as_array().unwrap().len(), 1, "page 2 of 2");
    let get_query = Curl::get(&server.url("/vscode/gallery/extensionquery?q=native")).send().json();
    assert_eq!(get_query["results"][0]["extensions"][0]["extensionName"], "native");

    // Unknown extension: an empty result for a query, 404 for the lookups, as upstream.
    let none = gallery_query(&server, &code_server_query("acme.missing", 950));
    assert_eq!(none["results"][0]["extensions"], json!([]));
    assert_eq!(none["results"][0]["resultMetadata"][0]["metadataItems"][0]["count"], 0);
    assert_eq!(Curl::get(&server.url("/vscode/gallery/vscode/acme/missing/latest")).send().status, 404);
    assert_eq!(Curl::get(&server.url("/vscode/asset/acme/missing/1.0.0/Microsoft.VisualStudio.Code.Manifest")).send().status, 404);
    assert_eq!(Curl::get(&server.url("/vscode/asset/acme/hello/9.9.9/Microsoft.VisualStudio.Code.Manifest")).send().status, 404);
    assert_eq!(Curl::get(&server.url("/vscode/asset/acme/native/2.0.0/win32-x64/Microsoft.VisualStudio.Services.VSIXPackage")).send().status, 404);
    let bad = Curl::post(&server.url("/vscode/gallery/extensionquery"), b"{not json").send();
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("not valid JSON"));
}

/// The bundler's fetchers (written against the real upstreams) as clients of the mirror: a
/// second-tier site locks and bundles from this mirror as if it were the internet, and gets
/// exactly the bytes this mirror holds, dependencies and all.
#[test]
fn the_bundlers_fetchers_lock_and_bundle_from_the_mirror() {
    let fixture = Fixture::build();
    let server = Server::start(&fixture.data, &[]);
    let base = server.url("");
    let work = fixture.dir.path().join("second-tier");
    std::fs::create_dir_all(&work).unwrap();
    let manifest = work.join("tier2.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[bundle]
name = "tier2"
channel = "stable"

[[vscode_server]]
base_url = "{base}/vscode-update"
commit = "latest"
platforms = ["server-linux-x64"]

[[openvsx]]
base_url = "{base}"
extensions = ["acme.pack"]
target_platforms = ["linux-x64"]

[[jetbrains]]
base_url = "{base}"
products = ["GO"]
platforms = ["linux", "linuxARM64"]

[[https]]
name = "airlock-cli"
version = "0.2.0"
platform = "linux-x64"
url = "{base}/releases/stable/airlock-cli/latest/linux-x64/airlock-linux-x64"
sidecar = true
"#
        ),
    )
    .unwrap();
    let cache = work.join("cache");
    ok(airlock().args(["bundle", "lock", "--manifest"]).arg(&manifest).arg("--cache-dir").arg(&cache));
    let lock = std::fs::read_to_string(work.join("tier2.lock")).unwrap();
    assert!(lock.contains(&format!("version = \"{COMMIT_NEW}\"")), "latest is the newest commit:\n{lock}");
    assert!(lock.contains("verified_by = \"checksumLink\""), "JetBrains checksums were used:\n{lock}");
    assert!(lock.contains("verified_by = \"sidecar\""), "the release sidecar was used:\n{lock}");

    ok(airlock().arg("keygen").arg("--out").arg(work.join("key")));
    let bundle = work.join("tier2.airlock.tar.zst");
    ok(airlock()
        .args(["bundle", "create", "--manifest"])
        .arg(&manifest)
        .arg("--key")
        .arg(work.join("key.key"))
        .arg("--out")
        .arg(&bundle)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--created", CREATED, "--sequence", "1"]));
    let inspect: Value = serde_json::from_slice(&ok(airlock().args(["bundle", "inspect", "--output", "json"]).arg(&bundle)).stdout).unwrap();
    let mut found: Vec<String> = Vec::new();
    for artifact in inspect["artifacts"].as_array().unwrap() {
        let name = format!(
            "{} {} {} {}",
            artifact["kind"].as_str().unwrap(),
            artifact["name"].as_str().unwrap(),
            artifact["version"].as_str().unwrap(),
            artifact["platform"].as_str().unwrap_or("-")
        );
        found.push(name);
    }
    found.sort();
    let mut expected = vec![
        "jetbrains-ide goland 2024.3 linux".to_string(),
        "jetbrains-ide goland 2024.3 linuxARM64".into(),
        "release-file airlock-cli 0.2.0 linux-x64".into(),
        "vscode-extension acme.hello 1.1.0 universal".into(),
        "vscode-extension acme.native 2.0.0 linux-x64".into(),
        "vscode-extension acme.pack 0.3.0-beta.1 universal".into(),
        format!("vscode-server vscode-server {COMMIT_NEW} server-linux-x64"),
    ];
    expected.sort();
    assert_eq!(found, expected, "the pack and its dependencies were followed");

    // Imported into a second mirror, the same bytes come out, described by the annotations
    // the fetchers wrote (product code, build, quality).
    let data = work.join("mirror");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(work.join("key.pub")).arg("--data-dir").arg(&data));
    let second = Server::start(&data, &[]);
    let release = Curl::get(&second.url("/products/releases?code=GO")).send().json();
    assert_eq!(release["GO"][0]["build"], "243.21565.208");
    let link = release["GO"][0]["downloads"]["linuxARM64"]["link"].as_str().unwrap();
    assert_eq!(Curl::get(link).send().body, fixture.file("goland-2024.3-arm64"));
    let update = Curl::get(&second.url(&format!("/vscode-update/api/update/server-linux-x64/stable/{COMMIT_OLD}"))).send().json();
    assert_eq!(update["version"], COMMIT_NEW);
    assert_eq!(update["sha256hash"], fixture.sha256("server-new-x64"));
    let vsix = Curl::get(&second.url("/api/acme/native/linux-x64/2.0.0/file/acme.native-2.0.0@linux-x64.vsix")).send();
    assert_eq!(vsix.body, fixture.file("native-linux-x64"));
    let cli = Curl::get(&second.url("/releases/stable/airlock-cli/latest/linux-x64/airlock-linux-x64")).send();
    assert_eq!(cli.body, fixture.file("cli-0.2.0"));
}
