//! IDEs from the mirror in real environments (issue #16 §2): the VS Code server is mounted
//! read-only where Remote-SSH looks for it, shared between environments, and a VS Code-style
//! connect over stock `ssh` through the gateway finds it, starts it on loopback and reaches it
//! through `ssh -L`, with nothing downloaded and no connection anywhere but the mirror.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use airlock_bundle::{file_artifact_manifest, ArtifactKind};
use airlock_oci::{Descriptor, Digest};
use airlock_runner::engine::EnvironmentSpec;
use airlock_runner::ide::{self, IdeMount};
use airlock_ssh_gateway::ConnectionEventKind;
use airlock_testkit::wait_for;
use support::gateway::*;
use support::*;

const COMMIT: &str = "0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2";
const WORKBENCH: &str = "<title>Visual Studio Code, served from the mirror build</title>";

/// A VS Code server archive in the upstream layout (`vscode-server-linux-x64/bin/code-server`,
/// `product.json`), whose launcher serves the workbench page on the loopback port it is given,
/// as `code-server --start-server --host=127.0.0.1 --port=N` does.
fn vscode_server_archive() -> Vec<u8> {
    let launcher = format!(
        "#!/bin/sh\nport=8000\nfor a; do case \"$a\" in --port=*) port=\"${{a#--port=}}\";; esac; done\n\
         www=/tmp/vscode-web-$$; mkdir -p $www; echo '{WORKBENCH}' > $www/index.html\n\
         echo \"Extension host agent listening on $port\"\nexec busybox httpd -f -p 127.0.0.1:$port -h $www\n"
    );
    let product = format!(
        r#"{{"nameShort":"Code","version":"1.85.1","commit":"{COMMIT}","quality":"stable"}}"#
    );
    let tar = LayerBuilder::default()
        .dir("vscode-server-linux-x64", 0o755, 1001)
        .dir("vscode-server-linux-x64/bin", 0o755, 1001)
        .file(
            "vscode-server-linux-x64/bin/code-server",
            launcher.as_bytes(),
            0o755,
            1001,
        )
        .file(
            "vscode-server-linux-x64/product.json",
            product.as_bytes(),
            0o644,
            1001,
        )
        .tar();
    gzip(&tar)
}

/// Routes serving `file` as the mirror serves a bundle's file artifact.
fn artifact_routes(kind: ArtifactKind, repo: &str, tag: &str, file: Vec<u8>) -> Routes {
    let layer = Descriptor {
        media_type: "application/gzip".into(),
        digest: Digest::of(&file),
        size: file.len() as u64,
        artifact_type: None,
        platform: None,
        annotations: BTreeMap::from([(
            "org.opencontainers.image.title".into(),
            "vscode-server-linux-x64.tar.gz".into(),
        )]),
        urls: None,
        data: None,
    };
    let manifest = file_artifact_manifest(kind, layer, BTreeMap::new());
    let mut routes = Routes::default();
    routes.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        MANIFEST,
        manifest.clone(),
    );
    routes.insert(
        format!("/v2/{repo}/blobs/{}", sha256(&file)),
        "application/octet-stream",
        file,
    );
    routes.insert(
        format!("/v2/{repo}/blobs/{}", sha256(b"{}")),
        "application/octet-stream",
        b"{}".to_vec(),
    );
    routes
}

/// The busybox test image, run as its `dev` user (home /home/dev).
fn dev_user_image() -> ImageParts {
    let mut image = test_image();
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
    config["config"]["User"] = "dev".into();
    image.config = serde_json::to_vec(&config).unwrap();
    image.manifest = image.make_manifest();
    image
}

/// What Remote-SSH's install step does on the remote, reduced to its observable steps: look
/// for the server of its commit, download it only when missing, start it on loopback, report
/// the port. It keeps the session open while the server runs, as the client does.
fn install_check(commit: &str, port: u16) -> String {
    format!(
        r#"COMMIT={commit}
DIR="$HOME/.vscode-server/cli/servers/Stable-$COMMIT"
if [ ! -f "$DIR/server/bin/code-server" ]; then
  echo "server missing, downloading"
  wget -q -O /tmp/vscode-server.tar.gz "https://update.code.visualstudio.com/commit:$COMMIT/server-linux-x64/stable" || echo "download failed"
  exit 1
fi
echo "found $DIR/server"
"$DIR/server/bin/code-server" --start-server --host=127.0.0.1 --port={port} --accept-server-license-terms > "$DIR/log.txt" 2>&1 &
n=0
until grep -q "listening on" "$DIR/log.txt" 2>/dev/null; do n=$((n+1)); [ $n -gt 200 ] && exit 2; sleep 0.05; done
echo "listeningOn=={port}=="
wait
"#
    )
}

#[test]
fn a_vscode_style_connect_finds_the_preinstalled_server_and_downloads_nothing() {
    let image = dev_user_image();
    let server_tag = format!("{COMMIT}-server-linux-x64");
    let mut routes = image.routes("devcontainers/test", "1");
    routes.extend(artifact_routes(
        ArtifactKind::VscodeServer,
        "vscode-server/vscode-server",
        &server_tag,
        vscode_server_archive(),
    ));
    let mirror = StandIn::start(routes);
    let t = Arc::new(TestEngine::new(&mirror.addr));
    let guard = EnvGuard::new(&t.engine);

    // The runner's part: pull once, mount into two environments.
    let artifact = ide::vscode_server(&mirror.addr, COMMIT);
    let tree = t.engine.pull_ide(&artifact.reference, &mut |_| {}).unwrap();
    assert!(
        tree.join("bin/code-server").is_file(),
        "the archive's top folder is the tree: {}",
        tree.display()
    );
    let again = t.engine.pull_ide(&artifact.reference, &mut |_| {}).unwrap();
    assert_eq!(again, tree, "the same digest is unpacked once");
    let mount = IdeMount {
        name: artifact.mount.clone(),
        tree: tree.clone(),
        home_links: artifact.home_links.clone(),
    };
    let reference = format!("{}/devcontainers/test:1", mirror.addr);
    for id in ["env_code", "env_code2"] {
        guard.start(&EnvironmentSpec {
            ide: vec![mount.clone()],
            ..spec(id, &reference)
        });
    }
    let trees: Vec<_> = fs::read_dir(t.data().join("images/ide")).unwrap().collect();
    assert_eq!(
        trees.len(),
        1,
        "one unpacked copy on the runner for both environments"
    );

    // Inside: read-only, owned by the environment's root (ID-mapped), linked in both layouts.
    let server = format!("/home/dev/.vscode-server/cli/servers/Stable-{COMMIT}/server");
    let listing = run_ok(&t.engine, "env_code", &format!("stat -L -c '%u %a' {server}/bin/code-server; readlink /home/dev/.vscode-server/bin/{COMMIT}"));
    assert_eq!(
        listing,
        format!("1001 755\n/opt/airlock/ide/vscode-server-{COMMIT}"),
        "owners as in the archive, mapped"
    );
    let (code, _, err) = run(&t.engine, "env_code", &format!("touch {server}/bin/x"));
    assert_ne!(code, 0, "the server tree is read-only: {err}");
    assert!(err.contains("Read-only file system"), "{err}");
    let (code, _, _) = run(
        &t.engine,
        "env_code2",
        &format!("cat {server}/product.json | grep -q {COMMIT}"),
    );
    assert_eq!(code, 0, "the second environment sees the same server");

    // The client's part, over stock ssh through the gateway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gw = EngineGateway::start(&t, &runtime, &["env_code"], 16);
    let mut clients = Clients(Vec::new());
    let mut install = Command::new("ssh")
        .arg("-F")
        .arg(&gw.files.config)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "env_code.airlock.environment",
            "sh -s",
        ])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    install
        .stdin
        .take()
        .unwrap()
        .write_all(install_check(COMMIT, 8765).as_bytes())
        .unwrap();
    let mut lines = BufReader::new(install.stdout.take().unwrap()).lines();
    clients.0.push(install);
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push(line.clone());
        if line.starts_with("listeningOn==") {
            break;
        }
    }
    assert_eq!(
        said,
        [format!("found {server}"), "listeningOn==8765==".to_string()],
        "the client found the server and started it"
    );

    let local_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tunnel = Command::new("ssh")
        .arg("-F")
        .arg(&gw.files.config)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ExitOnForwardFailure=yes",
            "-N",
            "-L",
        ])
        .arg(format!("127.0.0.1:{local_port}:127.0.0.1:8765"))
        .arg("env_code.airlock.environment")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    clients.0.push(tunnel);
    let page = wait_for(
        "the workbench through ssh -L",
        Duration::from_secs(20),
        || {
            let mut stream =
                TcpStream::connect(("127.0.0.1", local_port)).map_err(|e| e.to_string())?;
            stream
                .write_all(b"GET / HTTP/1.0\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut page = String::new();
            stream
                .read_to_string(&mut page)
                .map_err(|e| e.to_string())?;
            if page.contains("200") {
                Ok(page)
            } else {
                Err(page)
            }
        },
    );
    assert!(page.contains(WORKBENCH), "{page}");

    // Zero egress: the mirror saw only the image and the server, once each; the environment
    // has no interface but loopback, and the gateway forwarded only to its loopback.
    let layer_path = format!(
        "/v2/vscode-server/vscode-server/blobs/{}",
        sha256(&vscode_server_archive())
    );
    assert_eq!(mirror.hits(&layer_path), 1, "{:?}", mirror.paths());
    assert!(
        mirror
            .paths()
            .iter()
            .all(|p| p.starts_with("/v2/devcontainers/test/")
                || p.starts_with("/v2/vscode-server/vscode-server/")),
        "{:?}",
        mirror.paths()
    );
    assert_eq!(run_ok(&t.engine, "env_code", "ls /sys/class/net"), "lo");
    drop(clients);
    let events = wait_for("the forward's record", Duration::from_secs(10), || {
        let events = gw.backend.events.lock().unwrap().clone();
        let forwards: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.kind {
                ConnectionEventKind::ForwardEnded { host, port, .. }
                | ConnectionEventKind::ForwardFailed { host, port, .. } => {
                    Some(format!("{host}:{port}"))
                }
                ConnectionEventKind::RequestRefused { request } => {
                    Some(format!("refused {request}"))
                }
                _ => None,
            })
            .collect();
        if forwards.is_empty() {
            Err(events.len())
        } else {
            Ok(forwards)
        }
    });
    assert!(events.iter().all(|d| d == "127.0.0.1:8765"), "{events:?}");
    runtime.block_on(gw.gateway.shutdown());
}

#[test]
fn a_commit_the_mirror_does_not_carry_is_named_with_the_manifest_lines_that_bring_it() {
    let image = dev_user_image();
    let mirror = StandIn::start(image.routes("devcontainers/test", "1"));
    let t = TestEngine::new(&mirror.addr);
    let missing = "1111111111111111111111111111111111111111";
    let artifact = ide::vscode_server(&mirror.addr, missing);
    let err = t
        .engine
        .pull_ide(&artifact.reference, &mut |_| {})
        .unwrap_err();
    assert!(ide::is_not_found(&err), "{err}");
    assert!(
        artifact
            .manifest_lines
            .contains(&format!("commit = \"{missing}\"")),
        "{}",
        artifact.manifest_lines
    );
    assert!(
        fs::read_dir(t.data().join("images/ide"))
            .unwrap()
            .next()
            .is_none(),
        "nothing unpacked"
    );
}

/// code-server's release layout (`bin/code-server`); the launcher records how it was started
/// and serves the workbench on the `--bind-addr` it is given.
fn code_server_archive() -> Vec<u8> {
    let launcher = format!(
        "#!/bin/sh\necho \"$@\" > $HOME/code-server.args\necho \"$EXTENSIONS_GALLERY\" > $HOME/code-server.gallery\n\
         while [ $# -gt 0 ]; do [ \"$1\" = --bind-addr ] && addr=$2; shift; done\n\
         www=/tmp/code-server-web; mkdir -p $www; echo '{WORKBENCH}' > $www/index.html\n\
         exec busybox httpd -f -p $addr -h $www\n"
    );
    let tar = LayerBuilder::default()
        .dir("code-server-4.96.4-linux-amd64", 0o755, 0)
        .dir("code-server-4.96.4-linux-amd64/bin", 0o755, 0)
        .file(
            "code-server-4.96.4-linux-amd64/bin/code-server",
            launcher.as_bytes(),
            0o755,
            0,
        )
        .tar();
    gzip(&tar)
}

#[test]
fn code_server_starts_on_loopback_with_the_mirror_gallery_and_no_telemetry_or_update_checks() {
    let image = dev_user_image();
    let mut routes = image.routes("devcontainers/test", "1");
    let tag = format!(
        "4.96.4-linux-{}",
        if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "amd64"
        }
    );
    routes.extend(artifact_routes(
        ArtifactKind::CodeServer,
        "code-server/code-server",
        &tag,
        code_server_archive(),
    ));
    let mirror = StandIn::start(routes);
    let t = TestEngine::new(&mirror.addr);
    let guard = EnvGuard::new(&t.engine);
    let artifact = ide::code_server(&mirror.addr, "4.96.4");
    let tree = t.engine.pull_ide(&artifact.reference, &mut |_| {}).unwrap();
    let mount = IdeMount {
        name: artifact.mount.clone(),
        tree,
        home_links: artifact.home_links,
    };
    guard.start(&EnvironmentSpec {
        ide: vec![mount],
        ..spec(
            "env_browser",
            &format!("{}/devcontainers/test:1", mirror.addr),
        )
    });

    let launch =
        ide::code_server_launch(&artifact.mount, &t.engine.registry_base_url(&mirror.addr));
    let mut process = t.engine.exec("env_browser", &launch).unwrap();
    assert!(process.child.wait().unwrap().success());
    let addr = "127.0.0.1:13337".parse().unwrap();
    let page = wait_for(
        "code-server's workbench on the environment's loopback",
        Duration::from_secs(10),
        || {
            let mut stream = t
                .engine
                .connect_loopback("env_browser", addr)
                .map_err(|e| e.to_string())?;
            stream
                .write_all(b"GET / HTTP/1.0\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut page = String::new();
            stream
                .read_to_string(&mut page)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(page)
        },
    );
    assert!(page.contains(WORKBENCH), "{page}");
    let args = run_ok(&t.engine, "env_browser", "cat $HOME/code-server.args");
    assert_eq!(args, "--bind-addr 127.0.0.1:13337 --auth none --disable-telemetry --disable-update-check /workspace");
    let gallery: serde_json::Value = serde_json::from_str(&run_ok(
        &t.engine,
        "env_browser",
        "cat $HOME/code-server.gallery",
    ))
    .unwrap();
    assert_eq!(
        gallery["serviceUrl"],
        format!("http://{}/vscode/gallery", mirror.addr)
    );
}
