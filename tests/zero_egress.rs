//! Zero egress: the whole demo completes in a network namespace with nothing but loopback, and
//! a destination outside the allow-list is refused by the guard before any socket opens, with
//! the destination and the setting named and an audit record.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_control_plane::client::{Client, Method};
use common::{airlock, ok, Sample};
use serde_json::{json, Value};

#[test]
fn the_demo_completes_in_a_network_namespace_with_only_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", "ip link set lo up && exec \"$0\" demo --dir \"$1\""])
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .arg(&work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed under unshare -n:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hello from the demo task"), "{stdout}");
    assert!(stdout.contains("uid=0(root)"), "{stdout}");
    // Nothing was even attempted outside: the guard's refusal log stays empty.
    let refusals = std::fs::read_to_string(work.join("data/egress-audit.jsonl")).unwrap_or_default();
    assert_eq!(refusals, "", "no destination was refused");
}

#[test]
fn an_outside_repository_is_refused_by_the_guard_and_audited() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(data.join("mirror")));
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mirror]\nlisten = \"127.0.0.1:0\"\n[control_plane]\nlisten = \"127.0.0.1:0\"\n[runner]\nssh_listen = \"127.0.0.1:0\"\nuid_base = 4000000\n[egress]\nallow = [\"git.acme.internal\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let mut server = airlock()
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (mut cp, mut mirror) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("control plane listening on ") {
            cp = u.to_string();
        }
        if let Some(u) = line.strip_prefix("mirror listening on http://") {
            mirror = u.to_string();
        }
        if line == "airlock server ready" {
            break;
        }
    }
    assert!(!cp.is_empty() && !mirror.is_empty(), "{}", std::fs::read_to_string(dir.path().join("server.log")).unwrap());
    let token = std::fs::read_to_string(data.join("control-plane/owner-token")).unwrap();
    let api = Client::new(&cp, Some(token.trim().to_string()), None).unwrap();
    let call = |m: Method, p: &str, b: Option<&Value>| api.call(m, p, &[], b).unwrap_or_else(|e| panic!("{p}: {e}"));
    let class = call(Method::POST, "/api/v1/classes", Some(&json!({"name": "small", "resources": {"cpu_millis": 500, "memory_mib": 128, "disk_gib": 1, "pids": 64}})));
    let project = call(Method::POST, "/api/v1/projects", Some(&json!({
        "name": "outside", "repository_url": "https://github.com/example/repo.git",
        "image": format!("{mirror}/devcontainers/base:tiny"), "class_id": class["id"],
    })));
    let env = call(Method::POST, "/api/v1/environments", Some(&json!({"project_id": project["id"]})));
    let id = env["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let v = call(Method::GET, &format!("/api/v1/environments/{id}"), None);
        if v["phase"] == "failed" {
            break v;
        }
        assert!(Instant::now() < deadline, "the environment did not fail: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.contains("github.com") && reason.contains("egress.allow"), "{reason}");
    let audit = std::fs::read_to_string(data.join("egress-audit.jsonl")).unwrap();
    let record: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(record["component"], "runner", "{record}");
    assert!(record["destination"].as_str().unwrap().starts_with("github.com"), "{record}");

    call(Method::DELETE, &format!("/api/v1/environments/{id}"), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(Method::GET, &format!("/api/v1/environments/{id}"), None)["phase"] != "deleted" {
        assert!(Instant::now() < deadline, "not deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success(), "server stops cleanly on SIGTERM");
}
