//! Every source kind in one manifest, against stand-ins answering the real wire shapes
//! (VS Code update service, Open VSX registry API, JetBrains products API, a release server,
//! AMI descriptors) and docker-registry: lock → create → verify → inspect.

mod common;
mod upstreams;

use std::fs;

use common::*;
use serde_json::json;
use upstreams::*;

const COMMIT: &str = "0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2";
const OLDER: &str = "1a5daa3a0231a0fbba4f14db7ec463cf99d7768e";

/// Puts a file on the stand-in and returns its URL and sha256.
fn file(server: &StandIn, path: &str, bytes: Vec<u8>) -> (String, String) {
    let sha = sha256_hex(&bytes);
    server.put(path, bytes, "application/octet-stream");
    (server.url(path), sha)
}

fn vscode(server: &StandIn) {
    for platform in ["server-linux-x64", "server-linux-x64-web"] {
        server.put_json(&format!("/vscode/api/commits/stable/{platform}"), &json!([COMMIT, OLDER]));
        let cdn = format!("/cdn/{COMMIT}/vscode-{platform}.tar.gz");
        file(server, &cdn, pseudo_random(50_000, platform.len() as u64));
        server.redirect(&format!("/vscode/commit:{COMMIT}/{platform}/stable"), &server.url(&cdn));
    }
}

/// An extension pack whose members depend on each other, one with per-platform builds.
fn openvsx(server: &StandIn) {
    let ext = |ns: &str, name: &str, version: &str, platform: &str, deps: &[(&str, &str)], pack: &[(&str, &str)], sha_link: bool| {
        let file_name = format!("{ns}.{name}-{version}{}.vsix", if platform == "universal" { String::new() } else { format!("@{platform}") });
        let (download, sha) = file(server, &format!("/openvsx/api/{ns}/{name}/{platform}/{version}/file/{file_name}"), pseudo_random(20_000, (ns.len() * 7 + name.len() + platform.len()) as u64));
        let mut files = json!({ "download": download });
        if sha_link {
            let link = format!("/openvsx/api/{ns}/{name}/{platform}/{version}/file/{file_name}.sha256");
            server.put(&link, sha, "text/plain");
            files["sha256"] = json!(server.url(&link));
        }
        let refs = |list: &[(&str, &str)]| list.iter().map(|(n, e)| json!({"namespace": n, "extension": e})).collect::<Vec<_>>();
        let body = json!({
            "namespace": ns, "name": name, "version": version, "targetPlatform": platform,
            "files": files, "dependencies": refs(deps), "bundledExtensions": refs(pack),
            "allVersions": { version: server.url(&format!("/openvsx/api/{ns}/{name}/{version}")) }
        });
        if platform == "universal" {
            server.put_json(&format!("/openvsx/api/{ns}/{name}"), &body);
        } else {
            server.put_json(&format!("/openvsx/api/{ns}/{name}/{platform}"), &body);
        }
    };
    ext("vscjava", "vscode-java-pack", "0.29.0", "universal", &[], &[("redhat", "java"), ("vscjava", "vscode-java-debug")], true);
    ext("redhat", "java", "1.38.0", "linux-x64", &[("vscjava", "vscode-java-dependency")], &[], true);
    ext("redhat", "java", "1.38.0", "linux-arm64", &[("vscjava", "vscode-java-dependency")], &[], true);
    ext("vscjava", "vscode-java-debug", "0.58.1", "universal", &[("redhat", "java")], &[], true);
    ext("vscjava", "vscode-java-dependency", "0.24.1", "universal", &[], &[], false);
}

fn jetbrains(server: &StandIn) {
    let mut downloads = serde_json::Map::new();
    for (key, suffix) in [("linux", ""), ("linuxARM64", "-aarch64")] {
        let name = format!("goland-2024.3.1{suffix}.tar.gz");
        let (link, sha) = file(server, &format!("/download/go/{name}"), pseudo_random(40_000, suffix.len() as u64 + 3));
        server.put(&format!("/download/go/{name}.sha256"), format!("{sha} *{name}"), "text/plain");
        downloads.insert(key.into(), json!({"link": link, "size": 40_000, "checksumLink": server.url(&format!("/download/go/{name}.sha256"))}));
    }
    server.put_json(
        "/jb/products/releases?code=GO&type=release&latest=true",
        &json!({"GO": [{"date": "2024-12-10", "type": "release", "version": "2024.3.1", "majorVersion": "2024.3", "build": "243.22562.218", "downloads": downloads}]}),
    );
}

fn ami_image(name: &str, owner: &str) -> serde_json::Value {
    json!({"name": name, "name_pattern": format!("{name}-*"), "owner": owner, "architecture": "x86_64",
           "purpose": "Runner service", "version": "1.20.0", "regions": {"us-east-1": "ami-0123456789abcdef0"}})
}

fn manifest(server: &StandIn, registry: &Registry, release_sha: &str) -> String {
    format!(
        r#"
[bundle]
name = "everything"
channel = "stable"

[[image]]
name = "devcontainers/base"
tag = "tiny"
source = "registry:{reg}/devcontainers/base:tiny"
base_url = "http://{reg}"

[[vscode_server]]
base_url = "{base}/vscode"
commit = "latest"
platforms = ["server-linux-x64", "server-linux-x64-web"]

[[openvsx]]
base_url = "{base}/openvsx"
extensions = ["vscjava.vscode-java-pack"]
target_platforms = ["linux-x64", "linux-arm64"]

[[jetbrains]]
base_url = "{base}/jb"
products = ["GO"]
platforms = ["linux", "linuxARM64"]

[[https]]
name = "gitpod-cli"
version = "stable"
platform = "linux-amd64"
url = "{base}/cli/stable/gitpod-linux-amd64"
sha256 = "{release_sha}"

[ami]
allowed_owners = ["149721548608", "995913728426"]
descriptor_urls = ["{base}/ec2/stable/amis.json"]

[[ami.image]]
name = "bottlerocket-aws-ecs-1-x86_64"
name_pattern = "bottlerocket-aws-ecs-1-x86_64-*"
owner = "149721548608"
architecture = "x86_64"
purpose = "Runner service"
version = "1.20.0"
regions = {{ "us-east-1" = "ami-0aaaaaaaaaaaaaaaa" }}
"#,
        reg = registry.host(),
        base = server.base()
    )
}

#[test]
fn lock_create_verify_inspect_with_every_source_kind() {
    let sample = Sample::new();
    let registry = Registry::start();
    registry.push(&sample.path("layouts/base"), "tiny", "devcontainers/base:tiny");
    let server = StandIn::start();
    vscode(&server);
    openvsx(&server);
    jetbrains(&server);
    let (_, release_sha) = file(&server, "/cli/stable/gitpod-linux-amd64", pseudo_random(30_000, 9));
    server.put_json("/ec2/stable/amis.json", &json!({"images": [ami_image("ec2-runner-ami", "995913728426")]}));
    let m = sample.path("everything.toml");
    fs::write(&m, manifest(&server, &registry, &release_sha)).unwrap();
    let cache = sample.path("cache");

    ok(airlock().args(["bundle", "lock", "--manifest"]).arg(&m).arg("--cache-dir").arg(&cache));
    let lock = fs::read_to_string(sample.path("everything.lock")).unwrap();
    assert!(lock.contains(&format!("version = \"{COMMIT}\"")), "latest was not resolved to the newest commit:\n{lock}");
    assert!(lock.contains("verified_by = \"checksumLink\""), "{lock}");
    // JetBrains archives are checked by checksumLink, so lock downloads none of them.
    assert!(server.seen().iter().all(|s| !s.target.ends_with(".tar.gz") || s.target.contains("/cdn/")), "lock downloaded a JetBrains archive");

    let bundle = sample.path("everything.airlock.tar.zst");
    ok(airlock()
        .args(["bundle", "create", "--manifest"])
        .arg(&m)
        .arg("--key")
        .arg(sample.path("key.key"))
        .arg("--out")
        .arg(&bundle)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--created", CREATED, "--sequence", "5"]));
    ok(&mut sample.verify(&bundle));
    let inspect: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["bundle", "inspect", "--output", "json"]).arg(&bundle)).stdout).unwrap();
    let mut found: Vec<String> = inspect["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {} {} {}", a["kind"].as_str().unwrap(), a["name"].as_str().unwrap(), a["version"].as_str().unwrap(), a["platform"].as_str().unwrap_or("-")))
        .collect();
    found.sort();
    let mut expected = vec![
        "ami-descriptor bottlerocket-aws-ecs-1-x86_64 1.20.0 x86_64".to_string(),
        "ami-descriptor ec2-runner-ami 1.20.0 x86_64".into(),
        "image devcontainers/base tiny -".into(),
        "jetbrains-ide goland 2024.3.1 linux".into(),
        "jetbrains-ide goland 2024.3.1 linuxARM64".into(),
        "release-file gitpod-cli stable linux-amd64".into(),
        "vscode-extension redhat.java 1.38.0 linux-arm64".into(),
        "vscode-extension redhat.java 1.38.0 linux-x64".into(),
        "vscode-extension vscjava.vscode-java-debug 0.58.1 universal".into(),
        "vscode-extension vscjava.vscode-java-dependency 0.24.1 universal".into(),
        "vscode-extension vscjava.vscode-java-pack 0.29.0 universal".into(),
        format!("vscode-server vscode-server {COMMIT} server-linux-x64"),
        format!("vscode-server vscode-server {COMMIT} server-linux-x64-web"),
    ];
    expected.sort();
    assert_eq!(found, expected);

    // The extension's manifest records what it depends on; the layer is the VSIX served.
    let extracted = sample.path("x");
    fs::create_dir(&extracted).unwrap();
    ok(std::process::Command::new("tar").arg("--zstd").arg("-xf").arg(&bundle).arg("-C").arg(&extracted));
    let raw = ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:vscode-extension/redhat.java:1.38.0-linux-arm64", extracted.display()),
    ]));
    let artifact: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(artifact["annotations"]["vnd.airlock.vscode-extension.dependencies"], "vscjava.vscode-java-dependency");
    assert_eq!(artifact["layers"][0]["annotations"]["org.opencontainers.image.title"], "redhat.java-1.38.0@linux-arm64.vsix");

    // A second create with a warm cache touches no stand-in.
    let before = server.seen().len();
    let again = sample.path("again.airlock.tar.zst");
    ok(airlock()
        .args(["bundle", "create", "--manifest"])
        .arg(&m)
        .arg("--key")
        .arg(sample.path("key.key"))
        .arg("--out")
        .arg(&again)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--created", CREATED, "--sequence", "5"]));
    assert_eq!(server.seen().len(), before, "a warm-cache create made requests");
    assert!(fs::read(&again).unwrap() == fs::read(&bundle).unwrap());
}

#[test]
fn an_ami_from_a_disallowed_owner_is_refused() {
    let sample = Sample::new();
    let server = StandIn::start();
    server.put_json("/amis.json", &json!([ami_image("ec2-runner-ami", "995913728426"), ami_image("sneaky", "123456789012")]));
    let m = sample.path("ami.toml");
    fs::write(
        &m,
        format!("[bundle]\nname = \"ami\"\nchannel = \"stable\"\n\n[ami]\nallowed_owners = [\"995913728426\"]\ndescriptor_urls = [\"{}\"]\n", server.url("/amis.json")),
    )
    .unwrap();
    let err = fails(airlock().args(["bundle", "lock", "--manifest"]).arg(&m).arg("--cache-dir").arg(sample.path("c")));
    assert!(err.contains("AMI sneaky") && err.contains("refused") && err.contains("123456789012") && err.contains("995913728426"), "{err}");
    assert!(!sample.path("ami.lock").exists());
}

#[test]
fn an_unknown_extension_names_who_asked_for_it() {
    let sample = Sample::new();
    let server = StandIn::start();
    openvsx(&server);
    server.status("/openvsx/api/vscjava/vscode-java-debug", 404);
    let m = sample.path("x.toml");
    fs::write(
        &m,
        format!("[bundle]\nname = \"x\"\nchannel = \"stable\"\n\n[[openvsx]]\nbase_url = \"{}/openvsx\"\nextensions = [\"vscjava.vscode-java-pack\"]\n", server.base()),
    )
    .unwrap();
    let err = fails(airlock().args(["bundle", "lock", "--manifest"]).arg(&m).arg("--cache-dir").arg(sample.path("c")));
    assert!(err.contains("vscjava.vscode-java-debug") && err.contains("vscjava.vscode-java-pack"), "{err}");
}
