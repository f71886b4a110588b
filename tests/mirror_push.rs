//! `mirror push` into Debian's `docker-registry` (CNCF distribution), read back with skopeo;
//! and pushes into the mirror itself (`mirror serve --allow-push`): what a push token may
//! change, and the limits on upload sessions.

mod common;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use airlock_testkit::wait_until;
use common::*;
use reqwest::blocking::Client;
use reqwest::StatusCode;

/// Debian's docker-registry on a free loopback port, stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is not installed (`make test` installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, addr, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn everything_lands_in_docker_registry_with_the_same_digests_and_a_rerun_uploads_nothing() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let data = sample.path("mirror");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&data));
    let manifest: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(&bundle)).stdout).unwrap();
    let registry = Registry::start();
    let url = format!("http://{}", registry.addr);

    let out = stdout(&ok(airlock().args(["mirror", "push", "--output", "json", "--to", &url, "--data-dir"]).arg(&data)));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["artifacts"], 2);
    assert_eq!(report["manifests"], 2);
    // Image: config + layer; release file: empty config + layer.
    assert_eq!(report["blobsUploaded"], 4, "{report}");

    for artifact in manifest["artifacts"].as_array().unwrap() {
        let reference = format!(
            "docker://{}/{}:{}",
            registry.addr,
            artifact["repository"].as_str().unwrap(),
            artifact["tag"].as_str().unwrap()
        );
        let raw = ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &reference])).stdout;
        assert_eq!(format!("sha256:{}", sha256_hex(&raw)), artifact["digest"].as_str().unwrap(), "{reference}");
    }
    // Layers arrive intact: copy the image out again, digests preserved.
    let copy = sample.path("copy");
    ok(Command::new("skopeo").args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/devcontainers/base:tiny", registry.addr),
        &format!("oci:{}:tiny", copy.display()),
    ]));

    let again = stdout(&ok(airlock().args(["mirror", "push", "--output", "json", "--to", &url, "--data-dir"]).arg(&data)));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["blobsUploaded"], 0, "{again}");
    assert_eq!(again["blobsPresent"], 4, "{again}");
}

#[test]
fn only_selects_a_kind_and_an_unreachable_registry_is_named() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let data = sample.path("mirror");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&data));
    let registry = Registry::start();
    let url = format!("http://{}", registry.addr);
    let out = stdout(&ok(airlock().args(["mirror", "push", "--output", "json", "--only", "release-file", "--to", &url, "--data-dir"]).arg(&data)));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["artifacts"], 1);
    let err = fails(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/devcontainers/base", registry.addr),
    ]));
    assert!(err.contains("404"), "the image repository exists despite --only: {err}");
    ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/release-file/airlock-cli:0.1.0-linux-x64", registry.addr),
    ]));
    drop(registry);

    let err = fails(airlock().args(["mirror", "push", "--to", &url, "--data-dir"]).arg(&data));
    assert!(err.contains(&url) && err.contains("failed"), "{err}");
}

#[test]
fn a_target_outside_egress_allow_is_refused_before_connecting_and_audited() {
    let data = tempfile::tempdir().unwrap();
    let err = fails(
        airlock()
            .env_remove("AIRLOCK_EGRESS_ALLOW")
            .env_remove("AIRLOCK_CONFIG")
            .args(["mirror", "push", "--to", "https://harbor.example.com", "--data-dir"])
            .arg(data.path()),
    );
    assert!(err.contains("harbor.example.com") && err.contains("egress.allow"), "{err}");
    let audit = std::fs::read_to_string(data.path().join("mirror/egress-audit.jsonl")).unwrap();
    assert!(audit.contains("harbor.example.com") && audit.contains("\"mirror\""), "{audit}");
}

/// A registry that answers every request with a redirect to a host outside egress.allow.
fn redirecting_registry() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // The thread ends with the test process; it holds nothing the test depends on.
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://registry.outside.example{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = reader.get_mut().write_all(answer.as_bytes());
        }
    });
    addr
}

#[test]
fn a_redirect_out_of_egress_allow_is_refused_and_audited() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let data = sample.path("mirror");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&data));
    let url = format!("http://{}", redirecting_registry());
    let err = fails(
        airlock()
            .env_remove("AIRLOCK_EGRESS_ALLOW")
            .env_remove("AIRLOCK_CONFIG")
            .args(["mirror", "push", "--to", &url, "--data-dir"])
            .arg(&data),
    );
    assert!(err.contains("refused outbound connection to registry.outside.example:80") && err.contains("egress.allow"), "the refused hop is named: {err}");
    let audit = fs::read_to_string(data.join("mirror/egress-audit.jsonl")).unwrap();
    assert!(audit.contains("registry.outside.example") && audit.contains("\"mirror\""), "{audit}");
}

// ---- Pushes into the mirror -------------------------------------------------------------

fn token(data: &Path, name: &str) -> String {
    stdout(&ok(airlock().args(["mirror", "token", "create", "--name", name, "--data-dir"]).arg(data))).trim().to_string()
}

fn import_sample(sample: &Sample, data: &Path) -> serde_json::Value {
    let bundle = sample.create("sample", &[]);
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(data));
    serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(&bundle)).stdout).unwrap()
}

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)).build().unwrap()
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The first layer of the sample image, as the bundle carried it.
fn sample_layer(sample: &Sample) -> String {
    let layout = sample.path("layouts/base");
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(manifest)).unwrap()).unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_string()
}

/// POST ?digest=: a monolithic blob upload.
fn push_blob(server: &MirrorServer, token: &str, repo: &str, bytes: &[u8]) -> reqwest::blocking::Response {
    client()
        .post(server.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", digest_of(bytes))))
        .basic_auth("ci", Some(token))
        .body(bytes.to_vec())
        .send()
        .unwrap()
}

fn skopeo_push(sample: &Sample, token: &str, target: &str) -> std::process::Output {
    Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", &format!("ci:{token}")])
        .arg(format!("oci:{}:tiny", sample.path("layouts/base").display()))
        .arg(target)
        .output()
        .unwrap()
}

/// Finding 5: a push token cannot re-tag, untag or delete what signed bundles brought; blob
/// deletes are scoped to the repository and never remove a blob a manifest references.
#[test]
fn imported_repositories_are_read_only_to_push_and_blob_deletes_stay_in_their_repository() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let manifest = import_sample(&sample, &data);
    let bundle_id = manifest["bundleId"].as_str().unwrap().to_string();
    let token = token(&data, "ci");
    let server = MirrorServer::start(&data, &["--allow-push"]);
    let tiny = format!("docker://{}/devcontainers/base:tiny", server.addr);
    let pulled_before = ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &tiny])).stdout;

    // Re-tagging or untagging an imported repository: DENIED, naming the bundle.
    let out = skopeo_push(&sample, &token, &format!("docker://{}/devcontainers/base:evil", server.addr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&bundle_id) && err.contains("read-only"), "{err}");
    let err = fails(Command::new("skopeo").args(["delete", "--tls-verify=false", "--creds", &format!("ci:{token}"), &tiny]));
    assert!(err.contains(&bundle_id), "{err}");
    let r = client()
        .delete(server.url("/v2/devcontainers/base/manifests/tiny"))
        .basic_auth("ci", Some(&token))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().unwrap();
    assert!(body.contains("DENIED") && body.contains(&bundle_id), "{body}");
    let pulled_after = ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &tiny])).stdout;
    assert_eq!(pulled_before, pulled_after, "the imported tag is unchanged");

    // Any other name stays pushable.
    let out = skopeo_push(&sample, &token, &format!("docker://{}/scratch/base:v1", server.addr));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A blob an imported manifest references cannot be deleted through any repository.
    let layer = sample_layer(&sample);
    for repo in ["scratch/base", "elsewhere/x"] {
        let r = client().delete(server.url(&format!("/v2/{repo}/blobs/{layer}"))).basic_auth("ci", Some(&token)).send().unwrap();
        let status = r.status();
        let body = r.text().unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{repo}: {body}");
        assert!(body.contains("delete that manifest first"), "{body}");
    }
    let r = client().get(server.url(&format!("/v2/devcontainers/base/blobs/{layer}"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the imported layer is still served");
    ok(Command::new("skopeo").args(["copy", "--src-tls-verify=false", &tiny]).arg(format!("oci:{}:tiny", sample.path("copy").display())));

    // A blob pushed into two repositories: deleting it from one leaves it in the other.
    let bytes = b"a blob pushed twice".to_vec();
    let digest = digest_of(&bytes);
    for repo in ["scratch/a", "scratch/b"] {
        assert_eq!(push_blob(&server, &token, repo, &bytes).status(), StatusCode::CREATED);
    }
    let delete = |repo: &str| client().delete(server.url(&format!("/v2/{repo}/blobs/{digest}"))).basic_auth("ci", Some(&token)).send().unwrap().status();
    let get = || client().get(server.url(&format!("/v2/scratch/b/blobs/{digest}"))).send().unwrap().status();
    assert_eq!(delete("scratch/never-pushed"), StatusCode::NOT_FOUND, "another repository's blob is not this one's to delete");
    assert_eq!(delete("scratch/a"), StatusCode::ACCEPTED);
    assert_eq!(get(), StatusCode::OK, "scratch/b still has it");
    assert_eq!(delete("scratch/a"), StatusCode::NOT_FOUND);
    assert_eq!(delete("scratch/b"), StatusCode::ACCEPTED);
    assert_eq!(get(), StatusCode::NOT_FOUND);
}

/// Pulls by digest answer only for blobs the named repository holds: a pushed blob cannot be
/// read through another name, nor mounted or referenced into another repository to read it.
#[test]
fn blob_pulls_are_scoped_to_the_repository() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    import_sample(&sample, &data);
    let token = token(&data, "ci");
    let server = MirrorServer::start(&data, &["--allow-push"]);
    let fetch = |method: reqwest::Method, repo: &str, digest: &str| {
        client().request(method, server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().unwrap()
    };
    let unknown_through = |repo: &str, digest: &str| {
        assert_eq!(fetch(reqwest::Method::HEAD, repo, digest).status(), StatusCode::NOT_FOUND, "HEAD {digest} through {repo}");
        let r = fetch(reqwest::Method::GET, repo, digest);
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "GET {digest} through {repo}");
        let body = r.text().unwrap();
        assert!(body.contains("BLOB_UNKNOWN"), "{body}");
    };

    let private = b"a private pushed blob".to_vec();
    let digest = digest_of(&private);
    assert_eq!(push_blob(&server, &token, "scratch/private", &private).status(), StatusCode::CREATED);
    assert_eq!(fetch(reqwest::Method::GET, "scratch/private", &digest).bytes().unwrap().as_ref(), private.as_slice());
    for repo in ["scratch/other", "devcontainers/base", "never/pushed"] {
        unknown_through(repo, &digest);
    }

    // An imported layer is served through its repository only.
    let layer = sample_layer(&sample);
    assert_eq!(fetch(reqwest::Method::HEAD, "devcontainers/base", &layer).status(), StatusCode::OK);
    unknown_through("scratch/private", &layer);

    // A mount needs `from` naming a repository that holds the blob; otherwise it is an
    // ordinary upload session, and the blob stays unreadable there.
    let mount = |query: &str| {
        client().post(server.url(&format!("/v2/scratch/mine/blobs/uploads/?{query}"))).basic_auth("ci", Some(&token)).send().unwrap().status()
    };
    assert_eq!(mount(&format!("mount={digest}")), StatusCode::ACCEPTED);
    assert_eq!(mount(&format!("mount={digest}&from=scratch/other")), StatusCode::ACCEPTED);
    unknown_through("scratch/mine", &digest);
    assert_eq!(mount(&format!("mount={digest}&from=scratch/private")), StatusCode::CREATED);
    assert_eq!(fetch(reqwest::Method::GET, "scratch/mine", &digest).status(), StatusCode::OK);

    // A manifest cannot reference another repository's blob into its own.
    let config = digest_of(b"{}");
    assert_eq!(push_blob(&server, &token, "scratch/evil", b"{}").status(), StatusCode::CREATED);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2 },
        "layers": [{ "mediaType": "application/octet-stream", "digest": digest, "size": private.len() }],
    }))
    .unwrap();
    let r = client()
        .put(server.url("/v2/scratch/evil/manifests/v1"))
        .basic_auth("ci", Some(&token))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().unwrap().contains("MANIFEST_BLOB_UNKNOWN"));
    unknown_through("scratch/evil", &digest);
}

/// Finding 5: `mirror.push_namespaces` confines pushes, in `mirror serve` and `airlock server`.
#[test]
fn push_namespaces_confine_pushes_in_mirror_serve_and_in_airlock_server() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let token = token(&data, "ci");
    let server = MirrorServer::start_with(&data, &["--allow-push"], &[("AIRLOCK_MIRROR_PUSH_NAMESPACES", "scratch/,team-a")]);
    let out = skopeo_push(&sample, &token, &format!("docker://{}/team-b/base:v1", server.addr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("mirror.push_namespaces") && err.contains("scratch/team-b/base"), "{err}");
    for target in ["scratch/base:v1", "team-a/base:v1"] {
        let out = skopeo_push(&sample, &token, &format!("docker://{}/{target}", server.addr));
        assert!(out.status.success(), "{target}: {}", String::from_utf8_lossy(&out.stderr));
    }
    drop(server);

    // `airlock server` reads the same setting from airlock.toml.
    let dir = tempfile::tempdir().unwrap();
    let token = self::token(&dir.path().join("data"), "ci");
    let config = dir.path().join("airlock.toml");
    fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mirror]\nlisten = \"127.0.0.1:0\"\nallow_push = true\npush_namespaces = [\"scratch/\"]\n\
             [control_plane]\nenabled = false\n[runner]\nenabled = false\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Running(
        airlock().env_remove("AIRLOCK_CONFIG").args(["server", "--config"]).arg(&config).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut addr = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.0.stdout.take().unwrap())) {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("mirror listening on http://") {
            addr = a.to_string();
        }
        if line == "airlock server ready" {
            break;
        }
    }
    let url = |repo: &str, bytes: &[u8]| format!("http://{addr}/v2/{repo}/blobs/uploads/?digest={}", digest_of(bytes));
    let r = client().post(url("team-b/app", b"x")).basic_auth("ci", Some(&token)).body(&b"x"[..]).send().unwrap();
    let status = r.status();
    let body = r.text().unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let r = client().post(url("scratch/app", b"x")).basic_auth("ci", Some(&token)).body(&b"x"[..]).send().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(body.contains("mirror.push_namespaces"), "{body}");
}

/// Starts a PATCH that sends `sent` of the `announced` bytes and then stalls, on a raw socket
/// (the test decides when the client goes quiet).
fn stalled_patch(server: &MirrorServer, token: &str, location: &str, announced: usize, sent: usize) -> std::net::TcpStream {
    let auth = client().get("http://unused").basic_auth("ci", Some(token)).build().unwrap().headers()["authorization"].clone();
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {announced}\r\n\r\n",
        server.addr,
        auth.to_str().unwrap()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![7u8; sent]).unwrap();
    stream
}

fn start_session(server: &MirrorServer, token: &str, repo: &str) -> String {
    let r = client().post(server.url(&format!("/v2/{repo}/blobs/uploads/"))).basic_auth("ci", Some(token)).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    r.headers()["location"].to_str().unwrap().to_string()
}

fn staging_is_empty(data: &Path) -> bool {
    fs::read_dir(data.join("mirror/staging")).map(|mut d| d.next().is_none()).unwrap_or(false)
}

/// Finding 6: a stalled PATCH holds up no other upload; stalled and abandoned sessions end
/// at the session expiry and their partial files go.
#[test]
fn a_stalled_upload_holds_up_no_other_and_idle_sessions_expire() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let token = token(&data, "ci");
    let server = MirrorServer::start_with(&data, &["--allow-push"], &[("AIRLOCK_MIRROR_PUSH_SESSION_EXPIRY_SECONDS", "8")]);
    let stalled_at = start_session(&server, &token, "scratch/stalled");
    let mut stalled = stalled_patch(&server, &token, &stalled_at, 1000, 10);
    let abandoned_at = start_session(&server, &token, "scratch/abandoned");
    let r = client().patch(server.url(&abandoned_at)).basic_auth("ci", Some(&token)).body(vec![1u8; 100]).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Another client's chunked upload completes while the first is stalled mid-PATCH.
    let bytes = vec![42u8; 4096];
    let started = Instant::now();
    let location = start_session(&server, &token, "scratch/other");
    let r = client().patch(server.url(&location)).basic_auth("ci", Some(&token)).body(bytes.clone()).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = client()
        .put(server.url(&format!("{location}?digest={}", digest_of(&bytes))))
        .basic_auth("ci", Some(&token))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap_or_default());
    // Well under the expiry: it did not wait for the stalled request to be cut off.
    assert!(started.elapsed() < Duration::from_secs(6), "the other upload waited {:?} for the stalled one", started.elapsed());

    // The stalled request is answered once the expiry passes without bytes, and both
    // sessions are gone with their partial files.
    stalled.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("mirror.push_session_expiry_seconds"), "{answer}");
    for location in [&stalled_at, &abandoned_at] {
        wait_until(&format!("{location} expires"), Duration::from_secs(30), || {
            client().get(server.url(location)).basic_auth("ci", Some(&token)).send().unwrap().status() == StatusCode::NOT_FOUND
        });
    }
    wait_until("partial upload files removed", Duration::from_secs(30), || staging_is_empty(&data));
}

/// Finding 6: blobs over `mirror.push_max_blob_bytes` and uploads that would eat into
/// `mirror.push_free_space_reserve_bytes` are refused, and their sessions end.
#[test]
fn uploads_are_capped_in_size_and_keep_a_free_space_reserve() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let token = token(&data, "ci");
    let server = MirrorServer::start_with(&data, &["--allow-push"], &[("AIRLOCK_MIRROR_PUSH_MAX_BLOB_BYTES", "1000")]);
    // Monolithic, announced size.
    let r = push_blob(&server, &token, "scratch/big", &[1u8; 1001]);
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = r.text().unwrap();
    assert!(body.contains("SIZE_INVALID") && body.contains("mirror.push_max_blob_bytes"), "{body}");
    // Chunked: the chunk that crosses the cap ends the session.
    let location = start_session(&server, &token, "scratch/big");
    let r = client().patch(server.url(&location)).basic_auth("ci", Some(&token)).body(vec![1u8; 600]).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = client().patch(server.url(&location)).basic_auth("ci", Some(&token)).body(vec![1u8; 600]).send().unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(client().get(server.url(&location)).basic_auth("ci", Some(&token)).send().unwrap().status(), StatusCode::NOT_FOUND);
    // Streamed without a length: counted as it arrives.
    let location = start_session(&server, &token, "scratch/big");
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(vec![1u8; 5000]));
    let r = client().patch(server.url(&location)).basic_auth("ci", Some(&token)).body(body).send().unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the cap, it works.
    assert_eq!(push_blob(&server, &token, "scratch/small", &[1u8; 1000]).status(), StatusCode::CREATED);
    wait_until("partial upload files removed", Duration::from_secs(30), || staging_is_empty(&data));
    drop(server);

    // A reserve larger than any disk: every upload is refused, saying which setting.
    let server = MirrorServer::start_with(&data, &["--allow-push"], &[("AIRLOCK_MIRROR_PUSH_FREE_SPACE_RESERVE_BYTES", "4611686018427387904")]);
    let r = push_blob(&server, &token, "scratch/any", b"small");
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body = r.text().unwrap();
    assert!(body.contains("mirror.push_free_space_reserve_bytes"), "{body}");
    assert_eq!(client().head(server.url(&format!("/v2/scratch/any/blobs/{}", digest_of(b"small")))).send().unwrap().status(), StatusCode::NOT_FOUND);
}

/// `mirror serve --allow-push` (with `env`) on a fresh folder, and two push tokens.
fn push_mirror_with_two_tokens(env: &[(&str, &str)]) -> (Sample, MirrorServer, String, String) {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let mine = token(&data, "ci");
    let theirs = token(&data, "other");
    let server = MirrorServer::start_with(&data, &["--allow-push"], env);
    (sample, server, mine, theirs)
}

/// Finding 6: upload status needs the token that started the session, and its repository.
#[test]
fn upload_status_needs_the_sessions_token_and_repository() {
    let (_sample, server, mine, theirs) = push_mirror_with_two_tokens(&[]);
    let location = start_session(&server, &mine, "scratch/app");
    let id = location.rsplit('/').next().unwrap();
    let status = |path: &str, token: Option<&str>| {
        let mut request = client().get(server.url(path));
        if let Some(token) = token {
            request = request.basic_auth("ci", Some(token));
        }
        request.send().unwrap().status()
    };
    assert_eq!(status(&location, None), StatusCode::UNAUTHORIZED);
    assert_eq!(status(&format!("/v2/scratch/other/blobs/uploads/{id}"), Some(&mine)), StatusCode::NOT_FOUND);
    assert_eq!(status(&location, Some(&theirs)), StatusCode::NOT_FOUND);
    let r = client().patch(server.url(&location)).basic_auth("ci", Some(&theirs)).body(vec![1u8; 10]).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another token cannot write into the session");
    assert_eq!(status(&location, Some(&mine)), StatusCode::NO_CONTENT);
}

/// Upload sessions are capped per push token: the one over the cap gets 429 TOOMANYREQUESTS
/// naming the setting, other tokens are unaffected, and ending a session frees its place.
#[test]
fn upload_sessions_are_capped_per_push_token() {
    let (_sample, server, mine, theirs) = push_mirror_with_two_tokens(&[("AIRLOCK_MIRROR_PUSH_MAX_SESSIONS_PER_TOKEN", "3")]);
    let open: Vec<String> = (0..3).map(|i| start_session(&server, &mine, &format!("scratch/app{i}"))).collect();
    let r = client().post(server.url("/v2/scratch/app9/blobs/uploads/")).basic_auth("ci", Some(&mine)).send().unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("mirror.push_max_sessions_per_token"), "{body}");

    // Another token has its own allowance; finishing a blob in one request opens no session.
    start_session(&server, &theirs, "scratch/theirs");
    assert_eq!(push_blob(&server, &mine, "scratch/app0", b"whole").status(), StatusCode::CREATED);

    // Cancelling a session frees its place.
    let r = client().delete(server.url(&open[0])).basic_auth("ci", Some(&mine)).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    start_session(&server, &mine, "scratch/app9");
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a server command that must refuse to start; returns its standard error.
fn refuses_to_start(mut cmd: Command) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut child = Running(cmd.stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap()).spawn().unwrap());
    let status = airlock_testkit::wait_for("the server to refuse to start", Duration::from_secs(20), || {
        child.0.try_wait().unwrap().ok_or_else(|| fs::read_to_string(&log).unwrap_or_default())
    });
    assert!(!status.success());
    fs::read_to_string(&log).unwrap()
}

/// Finding 9: push tokens never cross the network in clear.
#[test]
fn push_over_plain_http_off_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = airlock();
    cmd.args(["mirror", "serve", "--allow-push", "--listen", "0.0.0.0:0", "--data-dir"]).arg(dir.path().join("mirror"));
    let err = refuses_to_start(cmd);
    assert!(err.contains("plain HTTP on 0.0.0.0:0") && err.contains("--tls-cert") && err.contains("--tls-key"), "{err}");

    let mut cmd = airlock();
    cmd.env_remove("AIRLOCK_CONFIG")
        .env("AIRLOCK_DATA_DIR", dir.path().join("data"))
        .env("AIRLOCK_MIRROR_ALLOW_PUSH", "true")
        .env("AIRLOCK_MIRROR_LISTEN", "0.0.0.0:0")
        .env("AIRLOCK_CONTROL_PLANE_ENABLED", "false")
        .env("AIRLOCK_RUNNER_ENABLED", "false")
        .arg("server");
    let err = refuses_to_start(cmd);
    assert!(err.contains("plain HTTP") && err.contains("mirror.tls_cert"), "{err}");
}
