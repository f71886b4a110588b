//! The mirror with real clients: import through the binary, pull and push with skopeo,
//! raw HTTP for ranges and paging, and the fault cases (each leaves the mirror unchanged).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

use common::MirrorServer as Server;

fn import(sample: &Sample, bundle: &Path, data: &Path) -> Command {
    let mut cmd = airlock();
    cmd.args(["mirror", "import"]).arg(bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(data);
    cmd
}

fn ls(data: &Path) -> String {
    stdout(&ok(airlock().args(["mirror", "ls", "--output", "json", "--data-dir"]).arg(data)))
}

fn bundle_manifest(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(bundle)).stdout).unwrap()
}

/// One HTTP/1.1 request over a fresh connection; returns (status, headers, body).
fn http(addr: &str, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.replace('\n', "\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn get(addr: &str, path: &str, extra_headers: &str) -> (u16, String, Vec<u8>) {
    http(addr, &format!("GET {path} HTTP/1.1\nHost: {addr}\nConnection: close\n{extra_headers}\n"))
}

#[test]
fn skopeo_pulls_what_was_imported_with_the_bundles_digests() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let data = sample.path("mirror");
    let out = stdout(&ok(&mut import(&sample, &bundle, &data)));
    assert!(out.contains("imported bundle"), "{out}");
    let manifest = bundle_manifest(&bundle);
    let server = Server::start(&data, &[]);

    let image = format!("docker://{}/devcontainers/base:tiny", server.addr);
    let inspect: serde_json::Value =
        serde_json::from_slice(&ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", &image])).stdout).unwrap();
    assert_eq!(inspect["Digest"], manifest["artifacts"][0]["digest"]);

    let copy = sample.path("copied");
    // --preserve-digests: fail rather than recompress, so equal digests mean equal bytes.
    ok(Command::new("skopeo").args(["copy", "--preserve-digests", "--src-tls-verify=false", &image, &format!("oci:{}:tiny", copy.display())]));
    let index: serde_json::Value = serde_json::from_slice(&fs::read(copy.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest["artifacts"][0]["digest"]);

    // The release file is served as an OCI artifact in its own repository.
    let raw = ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/release-file/airlock-cli:0.1.0-linux-x64", server.addr),
    ]));
    let artifact: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(artifact["artifactType"], "application/vnd.airlock.release-file.v1+json");
}

#[test]
fn blobs_honour_ranges_and_tags_page_with_links() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let data = sample.path("mirror");
    ok(&mut import(&sample, &bundle, &data));
    let server = Server::start(&data, &[]);
    let release = fs::read(sample.path("dist/airlock")).unwrap();
    let digest = format!("sha256:{}", sha256_hex(&release));
    let path = format!("/v2/release-file/airlock-cli/blobs/{digest}");

    let (status, head, body) = get(&server.addr, &path, "Range: bytes=3-9\n");
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, &release[3..10]);
    assert!(head.to_lowercase().contains(&format!("content-range: bytes 3-9/{}", release.len())), "{head}");
    let (status, _, body) = get(&server.addr, &path, "Range: bytes=-4\n");
    assert_eq!((status, body.as_slice()), (206, &release[release.len() - 4..]));
    let (status, head, _) = get(&server.addr, &path, &format!("Range: bytes={}-\n", release.len() + 10));
    assert_eq!(status, 416, "{head}");
    let (status, _, body) = get(&server.addr, &path, "");
    assert_eq!((status, body), (200, release.clone()));

    let (status, _, body) = get(&server.addr, "/v2/_catalog?n=1", "");
    assert_eq!(status, 200);
    let catalog: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["devcontainers/base"]));
    let (_, head, _) = get(&server.addr, "/v2/_catalog?n=1", "");
    assert!(head.contains("/v2/_catalog?n=1&last=devcontainers/base>; rel=\"next\""), "{head}");

    let (status, _, body) = get(&server.addr, "/v2/nothing/here/manifests/latest", "");
    assert_eq!(status, 404);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["errors"][0]["code"], "NAME_UNKNOWN");
    let (status, _, body) = get(&server.addr, "/v2/devcontainers/base/manifests/nope", "");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN"));
}

#[test]
fn refused_bundles_leave_the_mirror_unchanged_and_are_recorded() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let current = sample.create("current", &["--sequence", "10"]);
    ok(&mut import(&sample, &current, &data));
    let before = ls(&data);

    // Older sequence on the same channel: rollback.
    let older = sample.create("older", &["--sequence", "9", "--channel", "stable"]);
    let err = fails(&mut import(&sample, &older, &data));
    assert!(err.contains("rollback") && err.contains("--allow-downgrade"), "{err}");

    // Expired.
    let expired = sample.create("expired", &["--sequence", "11", "--expires", "1h"]);
    let err = fails(&mut import(&sample, &expired, &data));
    assert!(err.contains("expired at 2026-11-01T01:00:00Z"), "{err}");

    // Wrong key.
    let other = sample.path("other");
    ok(airlock().arg("keygen").arg("--out").arg(&other));
    let newer = sample.create("newer", &["--sequence", "12", "--created", "2026-11-20T00:00:00Z"]);
    let err = fails(
        airlock()
            .args(["mirror", "import"])
            .arg(&newer)
            .arg("--trusted-key")
            .arg(sample.path("other.pub"))
            .arg("--data-dir")
            .arg(&data),
    );
    assert!(err.contains("0 of the required 1 trusted keys"), "{err}");

    // Tampered content (a flipped byte in the largest blob).
    let mut entries = unpack(&newer);
    let i = (0..entries.len()).max_by_key(|&i| entries[i].data.len()).unwrap();
    let middle = entries[i].data.len() / 2;
    entries[i].data[middle] ^= 1;
    let tampered = sample.path("tampered.airlock.tar.zst");
    repack(&entries, &[], &tampered);
    let err = fails(&mut import(&sample, &tampered, &data));
    assert!(err.contains("does not match the signed manifest"), "{err}");

    assert_eq!(ls(&data), before, "a refused import changed the mirror");
    let history: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["mirror", "history", "--output", "json", "--data-dir"]).arg(&data)).stdout).unwrap();
    let results: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["imported", "refused", "refused", "refused", "failed"]);
    assert!(history[4]["message"].as_str().unwrap().contains("does not match"));

    // Overrides work and are recorded as such.
    ok(import(&sample, &older, &data).arg("--allow-downgrade"));
    let history: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["mirror", "history", "--output", "json", "--data-dir"]).arg(&data)).stdout).unwrap();
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["result"], "imported");
    assert!(last["overrides"][0].as_str().unwrap().contains("downgrade from sequence 10 to 9"), "{last}");
}

/// A bundle big enough that importing it takes a while (a 64 MiB incompressible file).
fn big_sample() -> Sample {
    let sample = Sample::new();
    let mut file = std::io::BufWriter::new(fs::File::create(sample.path("dist/airlock")).unwrap());
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..(64 << 20) / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        file.write_all(&state.to_le_bytes()).unwrap();
    }
    file.flush().unwrap();
    sample
}

#[test]
fn an_import_killed_midway_leaves_nothing_visible_and_a_rerun_completes() {
    let sample = big_sample();
    let bundle = sample.create("big", &[]);
    let data = sample.path("site");
    // The mirror's own folder inside the site folder.
    let store = data.join("mirror");
    fs::create_dir_all(store.join("staging")).unwrap();

    let mut child = import(&sample, &bundle, &data).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Kill it while a blob is being staged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::read_dir(store.join("staging")).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the import never started staging");
        assert!(child.try_wait().unwrap().is_none(), "the import finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert_eq!(ls(&data).trim(), "[]", "a killed import made content visible");
    let server = Server::start(&data, &[]);
    let (status, _, _) = get(&server.addr, "/v2/devcontainers/base/manifests/tiny", "");
    assert_eq!(status, 404);
    drop(server);

    let out = stdout(&ok(&mut import(&sample, &bundle, &data)));
    assert!(out.contains("imported bundle"), "{out}");
    assert_eq!(fs::read_dir(store.join("staging")).unwrap().count(), 0, "staging was not cleaned");
    ok(airlock().args(["mirror", "verify", "--data-dir"]).arg(&data));
    let listed: serde_json::Value = serde_json::from_str(&ls(&data)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[test]
fn pulls_keep_working_during_an_import_through_the_running_server() {
    let sample = big_sample();
    let data = sample.path("mirror");
    let first = sample.create("first", &["--sequence", "1"]);
    ok(&mut import(&sample, &first, &data));
    let server = Server::start(&data, &[]);

    let manifest_path = "/v2/devcontainers/base/manifests/tiny";
    let addr = server.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let puller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut pulls = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, head, _) = get(&addr, manifest_path, "");
                assert_eq!(status, 200, "a pull failed during the import: {head}");
                pulls += 1;
            }
            pulls
        })
    };
    // The release adapters answer from the store as it is now (and cache that answer).
    let edge_manifest = "/releases/edge/manifest.json";
    assert_eq!(get(&server.addr, edge_manifest, "").0, 404);
    // A second bundle on another channel, imported through the server's admin socket
    // (sled lets only the server open the folder).
    let second = sample.create("second", &["--sequence", "2", "--channel", "edge"]);
    let out = stdout(&ok(&mut import(&sample, &second, &data)));
    assert!(out.contains("imported bundle"), "{out}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let pulls = puller.join().unwrap();
    assert!(pulls > 0);
    let (status, head, _) = get(&server.addr, edge_manifest, "");
    assert_eq!(status, 200, "the committed import shows at once: {head}");

    let history: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["mirror", "history", "--output", "json", "--data-dir"]).arg(&data)).stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["channel"], "edge");
}

#[test]
fn skopeo_pushes_with_a_token_and_reads_back() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let token = stdout(&ok(airlock().args(["mirror", "token", "create", "--name", "ci", "--data-dir"]).arg(&data)));
    let token = token.trim();
    assert!(token.starts_with("alm_"));
    let server = Server::start(&data, &["--allow-push"]);
    let source = format!("oci:{}:tiny", sample.path("layouts/base").display());
    let target = format!("docker://{}/pushed/base:v1", server.addr);

    let err = fails(Command::new("skopeo").args(["copy", "--dest-tls-verify=false", "--dest-creds", "ci:wrong", &source, &target]));
    assert!(err.to_lowercase().contains("unauthorized") || err.contains("401"), "{err}");
    ok(Command::new("skopeo").args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("ci:{token}"),
        &source,
        &target,
    ]));

    let inspect: serde_json::Value =
        serde_json::from_slice(&ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", &target])).stdout).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(sample.path("layouts/base/index.json")).unwrap()).unwrap();
    assert_eq!(inspect["Digest"], index["manifests"][0]["digest"]);

    // A read-only mirror refuses pushes with a message saying how to enable them.
    drop(server);
    let server = Server::start(&data, &[]);
    let err = fails(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("ci:{token}"),
        &source,
        &format!("docker://{}/pushed/base:v2", server.addr),
    ]));
    assert!(err.contains("read-only") || err.contains("UNSUPPORTED") || err.contains("405"), "{err}");
}

#[test]
fn verify_names_a_corrupt_blob_and_gc_removes_only_unreferenced_ones() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let data = sample.path("site");
    let store = data.join("mirror");
    ok(&mut import(&sample, &bundle, &data));
    ok(airlock().args(["mirror", "verify", "--data-dir"]).arg(&data));

    // An orphan blob (as a killed import leaves) is collected; referenced ones are not.
    let orphan: PathBuf = store.join("blobs/sha256").join(&sha256_hex(b"orphan")[..2]).join(sha256_hex(b"orphan"));
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, b"orphan").unwrap();
    let dry = stdout(&ok(airlock().args(["mirror", "gc", "--dry-run", "--data-dir"]).arg(&data)));
    assert!(dry.contains("would remove 1 unreferenced blobs"), "{dry}");
    assert!(orphan.exists());
    let done = stdout(&ok(airlock().args(["mirror", "gc", "--data-dir"]).arg(&data)));
    assert!(done.contains("removed 1 unreferenced blobs"), "{done}");
    assert!(!orphan.exists());
    ok(airlock().args(["mirror", "verify", "--data-dir"]).arg(&data));

    let release = fs::read(sample.path("dist/airlock")).unwrap();
    let hex = sha256_hex(&release);
    let path = store.join("blobs/sha256").join(&hex[..2]).join(&hex);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let err = fails(airlock().args(["mirror", "verify", "--data-dir"]).arg(&data));
    assert!(err.contains(&hex) && err.contains("corrupt"), "{err}");
}

#[test]
fn a_delta_is_refused_until_its_base_is_imported() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    let full = sample.create("full", &["--sequence", "1"]);
    let full_manifest = bundle_manifest(&full);
    // The next release changes one file; the image stays as it was.
    fs::write(sample.path("dist/airlock"), b"#!/bin/sh\necho release two\n").unwrap();
    let delta = sample.create("delta", &["--sequence", "2", "--base", sample.path("full.airlock-bundle.json").to_str().unwrap()]);
    let delta_manifest = bundle_manifest(&delta);
    assert_eq!(delta_manifest["base"]["bundleId"], full_manifest["bundleId"]);
    assert!(!delta_manifest["baseBlobs"].as_array().unwrap().is_empty());

    let err = fails(&mut import(&sample, &delta, &data));
    let base_id = full_manifest["bundleId"].as_str().unwrap();
    assert!(err.contains(&format!("from its base bundle {base_id}")) && err.contains("import the base bundle first"), "{err}");
    assert_eq!(ls(&data).trim(), "[]");

    ok(&mut import(&sample, &full, &data));
    ok(&mut import(&sample, &delta, &data));
    let listed: serde_json::Value = serde_json::from_str(&ls(&data)).unwrap();
    let release = listed.as_array().unwrap().iter().find(|a| a["kind"] == "release-file").unwrap();
    assert_eq!(release["bundleId"], delta_manifest["bundleId"]);
    // The image, carried only by the base, is still served whole.
    let server = Server::start(&data, &[]);
    let image = format!("docker://{}/devcontainers/base:tiny", server.addr);
    let copy = sample.path("copied");
    ok(Command::new("skopeo").args(["copy", "--preserve-digests", "--src-tls-verify=false", &image, &format!("oci:{}:tiny", copy.display())]));
    let (status, _, body) = get(&server.addr, &format!("/v2/release-file/airlock-cli/blobs/sha256:{}", sha256_hex(b"#!/bin/sh\necho release two\n")), "");
    assert_eq!((status, body.as_slice()), (200, &b"#!/bin/sh\necho release two\n"[..]));
}

#[test]
fn volumes_import_in_order_and_a_damaged_volume_is_named() {
    let sample = Sample::new();
    let data = sample.path("mirror");
    // 3 MiB that do not compress, so 1 MiB volumes make several.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..(3 << 20) / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    fs::write(sample.path("dist/airlock"), noise).unwrap();
    let bundle = sample.create("split", &["--volume-size", "1M"]);
    let list = sample.path("split.airlock-volumes.json");
    assert!(list.exists() && !bundle.exists(), "expected volumes instead of one file");
    let volumes: Vec<PathBuf> = (1..).map(|n| sample.path(&format!("split.airlock.tar.zst.{n:03}"))).take_while(|p| p.exists()).collect();
    assert!(volumes.len() >= 3, "only {} volumes", volumes.len());

    // One byte changed in the second volume: refused, that volume named, nothing visible.
    let original = fs::read(&volumes[1]).unwrap();
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    fs::write(&volumes[1], &damaged).unwrap();
    let err = fails(&mut import(&sample, &list, &data));
    assert!(err.contains("split.airlock.tar.zst.002") && err.contains("copy this volume again"), "{err}");
    assert_eq!(ls(&data).trim(), "[]");

    fs::write(&volumes[1], &original).unwrap();
    let out = stdout(&ok(&mut import(&sample, &list, &data)));
    assert!(out.contains("imported bundle"), "{out}");
    let listed: serde_json::Value = serde_json::from_str(&ls(&data)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

/// `repository:tag` → digest, from `mirror ls`.
fn tags(data: &Path) -> std::collections::BTreeMap<String, String> {
    let listed: serde_json::Value = serde_json::from_str(&ls(data)).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (format!("{}:{}", a["repository"].as_str().unwrap(), a["tag"].as_str().unwrap()), a["digest"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_tag_is_not_rolled_back_from_another_channel_nor_by_another_bundle_of_the_same_sequence() {
    // Finding 7: sequences are per channel but tags are shared.
    let sample = Sample::new();
    let data = sample.path("mirror");
    // Old content, on a side channel and (later) claiming stable's sequence.
    let old_beta = sample.create("old-beta", &["--sequence", "1", "--channel", "beta"]);
    let old_same_sequence = sample.create("old-stable", &["--sequence", "10"]);
    let old_beta_later = sample.create("old-beta-3", &["--sequence", "3", "--channel", "beta"]);
    fs::write(sample.path("dist/airlock"), b"#!/bin/sh\necho airlock 0.2, with the fix\n").unwrap();
    let current = sample.create("current", &["--sequence", "10"]);
    let release = |bundle: &Path| {
        let manifest = bundle_manifest(bundle);
        let artifact = manifest["artifacts"].as_array().unwrap().iter().find(|a| a["kind"] == "release-file").unwrap().clone();
        (format!("{}:{}", artifact["repository"].as_str().unwrap(), artifact["tag"].as_str().unwrap()), artifact["digest"].as_str().unwrap().to_string())
    };
    let (tag, fixed) = release(&current);
    assert_ne!(release(&old_beta).1, fixed, "the test needs two versions of the release file");
    ok(&mut import(&sample, &current, &data));
    let before = ls(&data);

    let err = fails(&mut import(&sample, &old_beta, &data));
    assert!(err.contains(&format!("would move {tag}")) && err.contains("belongs to channel `stable` (sequence 10"), "{err}");
    assert!(err.contains("--allow-downgrade"), "{err}");

    let err = fails(&mut import(&sample, &old_same_sequence, &data));
    assert!(err.contains("has sequence 10 on channel `stable`, the sequence of bundle"), "{err}");

    assert_eq!(ls(&data), before, "a refused import changed the mirror");
    assert_eq!(tags(&data)[&tag], fixed);

    // The same content from another channel is no move: it is imported and leaves the tag's owner.
    let same_beta = sample.create("same-beta", &["--sequence", "2", "--channel", "beta"]);
    ok(&mut import(&sample, &same_beta, &data));
    let err = fails(&mut import(&sample, &old_beta_later, &data));
    assert!(err.contains("belongs to channel `stable`"), "{err}");

    // An operator can still move it, and that is recorded.
    ok(import(&sample, &old_beta, &data).arg("--allow-downgrade"));
    assert_ne!(tags(&data)[&tag], fixed);
    let history: serde_json::Value =
        serde_json::from_slice(&ok(airlock().args(["mirror", "history", "--output", "json", "--data-dir"]).arg(&data)).stdout).unwrap();
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["result"], "imported");
    let overrides: Vec<&str> = last["overrides"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert!(overrides.contains(&format!("moved {tag} from channel `stable` sequence 10 to channel `beta` sequence 1").as_str()), "{last}");
}

/// Finding 13: the admin socket is bound inside a directory only the owner can enter, made so
/// before the socket exists, so no other user can reach it at any moment; even under a
/// umask of 000 and over a pre-existing, world-writable directory.
#[test]
fn the_admin_socket_lives_in_a_private_directory_from_the_start() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let sample = Sample::new();
    let data = sample.path("site");
    let private = data.join("mirror/admin");
    fs::create_dir_all(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 000; exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_airlock"), "mirror", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let _server = MirrorServer::spawn(cmd);

    let socket = private.join("admin.sock");
    let dir = fs::symlink_metadata(&private).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.mode() & 0o777, 0o700, "{} is mode {:o}", private.display(), dir.mode() & 0o777);
    assert_eq!(dir.uid(), unsafe { libc::geteuid() });
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "{} is mode {:o}", socket.display(), meta.mode() & 0o777);
    assert!(!data.join("mirror/admin.sock").exists(), "no socket in the shared data folder");
    // And it is the socket the other commands use while the server holds the folder.
    let token = stdout(&ok(airlock().args(["mirror", "token", "create", "--name", "ci", "--data-dir"]).arg(&data)));
    assert!(token.trim().starts_with("alm_"), "{token}");
}

/// What an import reports while it runs, recorded.
#[derive(Default)]
struct Recorded {
    total: std::sync::atomic::AtomicU64,
    advanced: std::sync::atomic::AtomicU64,
    entries: std::sync::Mutex<Vec<String>>,
    finished: std::sync::atomic::AtomicBool,
}

impl airlock_bundle::Progress for Recorded {
    fn start(&self, total_bytes: u64) {
        self.total.store(total_bytes, std::sync::atomic::Ordering::SeqCst);
    }
    fn entry(&self, label: &str) {
        self.entries.lock().unwrap().push(label.to_string());
    }
    fn advance(&self, bytes: u64) {
        self.advanced.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An import through the running server's admin socket reports its progress to the client
/// (bytes, the entry being read, the end) as an import on the folder does.
#[test]
fn an_import_through_the_running_server_reports_its_progress() {
    use airlock_mirror::admin::{self, Request};
    use airlock_mirror::anchor::KeyRequirement;
    use std::sync::atomic::Ordering;

    let sample = big_sample();
    let site = sample.path("site");
    let _server = Server::start(&site, &[]);
    // The library takes the mirror's own folder.
    let data = site.join("mirror");
    assert!(admin::socket_path(&data).exists(), "the server holds the folder");
    let bundle = sample.create("progress", &[]);
    let manifest = bundle_manifest(&bundle);
    let requirement = KeyRequirement::read(&[sample.path("key.pub")], 1, "the test").unwrap();
    let request = Request::Import {
        bundle: bundle.clone(),
        requirements: requirement.into_iter().collect(),
        signatures: Vec::new(),
        allow_downgrade: false,
        allow_expired: false,
        actor: "test".into(),
    };
    let recorded = Recorded::default();
    admin::run(&data, request, &recorded).unwrap();

    let total: u64 = manifest["blobs"].as_array().unwrap().iter().map(|b| b["size"].as_u64().unwrap()).sum();
    assert_eq!(recorded.total.load(Ordering::SeqCst), total, "start announces every blob byte");
    assert!(recorded.advanced.load(Ordering::SeqCst) >= total, "every blob byte was reported read");
    assert!(recorded.finished.load(Ordering::SeqCst));
    let entries = recorded.entries.lock().unwrap();
    let artifact = &manifest["artifacts"][0];
    let label = format!("{} {}:{}", artifact["kind"].as_str().unwrap(), artifact["name"].as_str().unwrap(), artifact["version"].as_str().unwrap());
    assert!(
        entries.iter().any(|e| e == &label || e.starts_with("blob ")),
        "entries are named by artifact or short digest: {entries:?} (expected e.g. {label})"
    );
}
