//! `mirror push` into Debian's `docker-registry` (CNCF distribution), read back with skopeo.

mod common;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

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
    let audit = std::fs::read_to_string(data.path().join("egress-audit.jsonl")).unwrap();
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
    let audit = fs::read_to_string(data.join("egress-audit.jsonl")).unwrap();
    assert!(audit.contains("registry.outside.example") && audit.contains("\"mirror\""), "{audit}");
}
