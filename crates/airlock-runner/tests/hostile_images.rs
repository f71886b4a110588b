//! Pulling from a stand-in registry serving hand-made and tampered content: every hostile case
//! is refused with an error naming what and where, and leaves nothing behind; good content is
//! downloaded and unpacked once however many ask for it at the same time.

mod support;

use std::fs;
use std::path::Path;

use airlock_runner::engine::{EngineEvent, EngineOptions};
use airlock_runner::error::EngineError;
use airlock_runner::registry::RegistryOptions;
use support::*;

/// Nothing of a refused image or environment is left in the data dir.
fn assert_nothing_left(data: &Path, env: &str) {
    assert!(!data.join("envs").join(env).exists(), "environment folder left");
    for dir in ["images/rootfs", "images/tmp", "slots"] {
        let left: Vec<_> = fs::read_dir(data.join(dir)).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "{dir} not empty: {left:?}");
    }
    assert_eq!(mounts_under(data), Vec::<String>::new());
}

fn start_err(t: &TestEngine, id: &str, image: &str) -> String {
    let guard = EnvGuard::new(&t.engine);
    guard.track(id);
    match t.engine.start(&spec(id, image), &mut |_| {}) {
        Ok(()) => panic!("{image} was accepted"),
        Err(e) => {
            eprintln!("{id}: {e}");
            e.to_string()
        }
    }
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_not_cached() {
    let parts = test_image();
    let mut routes = parts.routes("test/img", "1");
    let (_, layer) = &parts.layers[0];
    let digest = sha256(layer);
    let mut tampered = layer.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    routes.insert(format!("/v2/test/img/blobs/{digest}"), "application/octet-stream", tampered.clone());
    let server = StandIn::start(routes);
    let t = TestEngine::new(&server.addr);

    let err = start_err(&t, "env_tamper", &format!("{}/test/img:1", server.addr));
    assert!(err.contains(&digest), "names the blob: {err}");
    assert!(err.contains(&sha256(&tampered)), "names the actual digest: {err}");
    assert!(err.contains(&server.addr), "names the registry: {err}");
    let data = t.data();
    assert!(!data.join("images/blobs/sha256").join(&digest[7..]).exists(), "the bad blob was cached");
    assert_nothing_left(&data, "env_tamper");
}

#[test]
fn a_manifest_that_does_not_match_the_pinned_digest_is_refused() {
    let parts = test_image();
    let mut routes = parts.routes("test/img", "1");
    let mut other = test_image();
    other.config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    other.layers.clear();
    other.manifest = other.make_manifest();
    routes.insert(format!("/v2/test/img/manifests/{}", parts.digest()), MANIFEST, other.manifest.clone());
    let server = StandIn::start(routes);
    let t = TestEngine::new(&server.addr);
    let err = start_err(&t, "env_pinned", &format!("{}/test/img@{}", server.addr, parts.digest()));
    assert!(err.contains("manifest") && err.contains(&parts.digest()) && err.contains(&other.digest()), "{err}");
    assert_nothing_left(&t.data(), "env_pinned");
}

#[test]
fn a_layer_with_a_dotdot_path_is_refused_naming_image_layer_and_entry() {
    let layer = busybox_layer().file("../escape", b"out", 0o644, 0).tar();
    let parts = ImageParts::new(vec![layer]);
    let server = StandIn::start(parts.routes("test/dotdot", "1"));
    let t = TestEngine::new(&server.addr);
    let reference = format!("{}/test/dotdot:1", server.addr);
    let err = start_err(&t, "env_dotdot", &reference);
    assert!(err.contains("../escape"), "names the entry: {err}");
    assert!(err.contains(&sha256(&parts.layers[0].1)), "names the layer: {err}");
    assert!(err.contains(&reference), "names the image: {err}");
    assert!(err.contains("escape"), "{err}");
    let data = t.data();
    assert!(!data.join("images/escape").exists() && !data.join("images/tmp/escape").exists());
    assert_nothing_left(&data, "env_dotdot");
}

#[test]
fn a_layer_writing_through_a_symlink_that_leaves_the_root_is_refused() {
    let target = std::env::temp_dir().join(format!("airlock-pwned-{}", std::process::id()));
    let layer = busybox_layer()
        .symlink("opt", "../../../../../../../../tmp")
        .file(&format!("opt/{}", target.file_name().unwrap().to_string_lossy()), b"pwned", 0o644, 0)
        .tar();
    let parts = ImageParts::new(vec![layer]);
    let server = StandIn::start(parts.routes("test/symlink", "1"));
    let t = TestEngine::new(&server.addr);
    let err = start_err(&t, "env_symlink", &format!("{}/test/symlink:1", server.addr));
    assert!(err.contains("opt/airlock-pwned"), "names the entry: {err}");
    assert!(err.contains("outside the root"), "{err}");
    assert!(err.contains(&sha256(&parts.layers[0].1)), "names the layer: {err}");
    assert!(!target.exists(), "the layer wrote {}", target.display());
    assert_nothing_left(&t.data(), "env_symlink");

    // An absolute symlink is just as refused.
    let layer = busybox_layer().symlink("opt", "/tmp").file("opt/abs-pwned", b"x", 0o644, 0).tar();
    let parts = ImageParts::new(vec![layer]);
    let server = StandIn::start(parts.routes("test/abs", "1"));
    let t = TestEngine::new(&server.addr);
    let err = start_err(&t, "env_abs", &format!("{}/test/abs:1", server.addr));
    assert!(err.contains("opt/abs-pwned") && err.contains("refused"), "{err}");
    assert!(!Path::new("/tmp/abs-pwned").exists());
}

#[test]
fn device_nodes_are_left_out_and_said_so() {
    let layer = busybox_layer().dir("opt", 0o755, 0).char_device("opt/kmem").tar();
    let parts = ImageParts::new(vec![layer]);
    let server = StandIn::start(parts.routes("test/dev", "1"));
    let t = TestEngine::new(&server.addr);
    let mut events = Vec::new();
    let image = t.engine.pull_image(&format!("{}/test/dev:1", server.addr), &mut |e| events.push(e)).unwrap();
    assert!(events.iter().any(|e| matches!(e, EngineEvent::DevicesSkipped { count: 1, .. })), "{events:?}");
    assert!(image.rootfs.join("opt").is_dir());
    assert!(fs::symlink_metadata(image.rootfs.join("opt/kmem")).is_err(), "a device node was created");
}

#[test]
fn an_uncompressed_layer_that_does_not_match_the_config_diff_id_is_refused() {
    let mut parts = test_image();
    let mut config: serde_json::Value = serde_json::from_slice(&parts.config).unwrap();
    config["rootfs"]["diff_ids"][0] = format!("sha256:{}", "0".repeat(64)).into();
    parts.config = serde_json::to_vec(&config).unwrap();
    parts.manifest = parts.make_manifest();
    let server = StandIn::start(parts.routes("test/diffid", "1"));
    let t = TestEngine::new(&server.addr);
    let err = start_err(&t, "env_diffid", &format!("{}/test/diffid:1", server.addr));
    assert!(err.contains("diff_id") && err.contains(&"0".repeat(64)), "{err}");
    assert_nothing_left(&t.data(), "env_diffid");
}

#[test]
fn concurrent_pulls_of_one_image_download_and_unpack_it_once() {
    let parts = test_image();
    let server = StandIn::start(parts.routes("test/img", "1"));
    let t = TestEngine::new(&server.addr);
    let reference = format!("{}/test/img:1", server.addr);
    let pulled: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6).map(|_| scope.spawn(|| t.engine.pull_image(&reference, &mut |_| {}).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(pulled.iter().all(|p| p.digest == parts.digest() && p.rootfs == pulled[0].rootfs));
    assert_eq!(pulled[0].config.env[1], "IMAGE_VAR=from-image");
    for blob in [sha256(&parts.config), sha256(&parts.layers[0].1)] {
        assert_eq!(server.hits(&format!("/v2/test/img/blobs/{blob}")), 1, "{blob} downloaded more than once");
    }
    assert_eq!(fs::read_dir(t.data().join("images/rootfs")).unwrap().count(), 1);

    // Pinned by digest and cached: not even the registry is asked.
    let before = server.hits(&format!("/v2/test/img/manifests/{}", parts.digest()));
    let pinned = t.engine.pull_image(&format!("{}/test/img@{}", server.addr, parts.digest()), &mut |_| {}).unwrap();
    assert_eq!(pinned.rootfs, pulled[0].rootfs);
    assert_eq!(server.hits(&format!("/v2/test/img/manifests/{}", parts.digest())), before);
}

#[test]
fn an_index_resolves_to_the_host_platform_or_names_what_it_offers() {
    let parts = test_image();
    let mut routes = parts.routes("test/multi", "amd64-only");
    let entry = |arch: &str, digest: &str, size: usize| {
        serde_json::json!({"mediaType": MANIFEST, "digest": digest, "size": size, "platform": {"os": "linux", "architecture": arch}})
    };
    let arm_digest = format!("sha256:{}", "a".repeat(64));
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        entry("arm64", &arm_digest, 100), entry("amd64", &parts.digest(), parts.manifest.len())
    ]}))
    .unwrap();
    routes.insert("/v2/test/multi/manifests/multi".into(), INDEX, index);
    let arm_only = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry("arm64", &arm_digest, 100)]})).unwrap();
    routes.insert("/v2/test/multi/manifests/arm".into(), INDEX, arm_only);
    let server = StandIn::start(routes);
    let t = TestEngine::new(&server.addr);
    if std::env::consts::ARCH == "x86_64" {
        let image = t.engine.pull_image(&format!("{}/test/multi:multi", server.addr), &mut |_| {}).unwrap();
        assert_eq!(image.digest, parts.digest());
        let err = t.engine.pull_image(&format!("{}/test/multi:arm", server.addr), &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("linux/amd64") && err.contains("linux/arm64"), "{err}");
    }
}

#[test]
fn registries_outside_the_allow_list_are_never_contacted() {
    let parts = test_image();
    let server = StandIn::start(parts.routes("test/img", "1"));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = EngineOptions::new(dir.path().join("data"));
    opts.runc = "/usr/sbin/runc".into();
    opts.registry = RegistryOptions { plain_http: vec![server.addr.clone()], allowed: vec!["mirror.internal:5000".into()], ..Default::default() };
    let engine = airlock_runner::engine::Engine::open(opts).unwrap();
    let err = engine.pull_image(&format!("{}/test/img:1", server.addr), &mut |_| {}).unwrap_err();
    assert!(matches!(err, EngineError::RegistryNotAllowed { .. }), "{err}");
    assert!(err.to_string().contains("mirror.internal:5000"), "{err}");
    assert_eq!(server.hits("/v2/test/img/manifests/1"), 0);
}

#[test]
fn a_redirect_outside_egress_allow_is_refused_and_audited() {
    let parts = test_image();
    let mut routes = parts.routes("test/img", "1");
    // The registry may send blobs to its storage host, but the site's egress.allow does not
    // list that host.
    let layer = sha256(&parts.layers[0].1);
    routes.redirect(format!("/v2/test/img/blobs/{layer}"), &format!("http://storage.outside.example/{layer}"));
    let server = StandIn::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let audit_file = dir.path().join("egress-audit.jsonl");
    let audit = std::sync::Arc::new(airlock_egress::JsonLinesAudit::open(&audit_file).unwrap());
    let guard = airlock_egress::EgressGuard::from_allow_list::<&str>(&[], audit).unwrap().with_component("runner");
    let mut opts = EngineOptions::new(dir.path().join("data"));
    opts.runc = "/usr/sbin/runc".into();
    opts.registry = RegistryOptions {
        plain_http: vec![server.addr.clone()],
        allowed: vec![server.addr.clone(), "storage.outside.example".into()],
        egress: Some(guard),
        ..Default::default()
    };
    let engine = airlock_runner::engine::Engine::open(opts).unwrap();
    let err = engine.pull_image(&format!("{}/test/img:1", server.addr), &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("storage.outside.example") && err.contains("egress.allow"), "{err}");
    let audit = fs::read_to_string(&audit_file).unwrap();
    assert!(audit.contains("storage.outside.example") && audit.contains("\"runner\""), "{audit}");
}

#[test]
fn a_data_dir_below_a_folder_environments_cannot_pass_is_refused_at_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let closed = dir.path().join("closed");
    fs::create_dir(&closed).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    let mut opts = EngineOptions::new(closed.join("data"));
    opts.runc = "/usr/sbin/runc".into();
    let err = airlock_runner::engine::Engine::open(opts.clone()).err().expect("opened below a 0700 folder");
    assert!(matches!(err, EngineError::DataDirUnreachable { .. }), "{err}");
    assert!(err.to_string().contains(&format!("chmod o+x {}", closed.display())), "{err}");
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o711)).unwrap();
    airlock_runner::engine::Engine::open(opts).unwrap();
}
