//! The control plane driven through the `airlock` binary: init, serve (HTTP on loopback and
//! HTTPS), the admin CLI, audit verify/export on the data directory, and a kill -9 crash.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_control_plane::client::{Client, Method};
use airlock_testkit::wait_until;
use airlock_control_plane::store::{keys, Store};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// A running `control-plane serve`, killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "control-plane",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .arg("--kek-file")
        .arg(dir.join("kek"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "server did not start: {line:?}\n{}",
                    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
                )
            });
        Server {
            url: url.to_string(),
            child,
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn airlock(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("AIRLOCK_URL")
        .env_remove("AIRLOCK_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// gen-kek + init; returns the owner's token.
fn set_up(dir: &Path) -> String {
    let kek = airlock(
        &[
            "control-plane",
            "gen-kek",
            "--out",
            dir.join("kek").to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(kek.status.success(), "{}", text(&kek.stderr));
    let data = dir.join("data");
    let init = airlock(
        &[
            "admin",
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--org",
            "acme",
            "--owner",
            "admin@acme.internal",
        ],
        &[],
        None,
    );
    assert!(init.status.success(), "{}", text(&init.stderr));
    let out = text(&init.stdout);
    assert_eq!(
        out.lines().count(),
        1,
        "init prints the token alone: {out:?}"
    );
    out.trim().to_string()
}

#[test]
fn init_serve_and_the_admin_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    assert!(token.starts_with("alk_pat_"));
    let again = airlock(
        &[
            "admin",
            "init",
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--org",
            "other",
            "--owner",
            "x@y.internal",
        ],
        &[],
        None,
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already initialized"),
        "{}",
        text(&again.stderr)
    );

    let server = Server::start(tmp.path(), &[]);
    let env = [
        ("AIRLOCK_URL", server.url.as_str()),
        ("AIRLOCK_TOKEN", token.as_str()),
    ];
    let run = |args: &[&str]| airlock(args, &env, None);
    let json_of = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = airlock(&all, &env, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let me = json_of(&["admin", "whoami"]);
    assert_eq!(
        (me["user"]["email"].as_str(), me["site_admin"].as_bool()),
        (Some("admin@acme.internal"), Some(true))
    );
    let class = json_of(&[
        "admin",
        "classes",
        "create",
        "--name",
        "small",
        "--cpu-millis",
        "2000",
        "--memory-mib",
        "4096",
        "--disk-gib",
        "20",
        "--pids",
        "1024",
    ]);
    let class_id = class["id"].as_str().unwrap();
    let project = json_of(&[
        "admin",
        "projects",
        "create",
        "--name",
        "backend",
        "--repository-url",
        "https://git.acme.internal/backend.git",
        "--image",
        "mirror.acme.internal:5000/dev/rust:1",
        "--class-id",
        class_id,
        "--task",
        "build=cargo build",
    ]);
    assert_eq!(
        project["tasks"][0],
        json!({"name": "build", "command": "cargo build"})
    );
    let table = run(&["admin", "projects", "list"]);
    let listing = text(&table.stdout);
    assert!(
        listing.starts_with("ID ")
            && listing.contains("backend")
            && listing.contains("mirror.acme.internal:5000/dev/rust:1"),
        "{listing}"
    );

    // Bad input: a clear message naming the field, exit status 1, nothing created.
    let bad = run(&[
        "admin",
        "projects",
        "create",
        "--name",
        "x",
        "--repository-url",
        "nope",
        "--image",
        "mirror.acme.internal/x:1",
        "--class-id",
        class_id,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("field `repository_url`"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(
        json_of(&["admin", "projects", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A runner's exchange token comes alone on standard output.
    let created = run(&[
        "admin",
        "runners",
        "create",
        "--name",
        "rack-1",
        "--capacity",
        "2",
    ]);
    let exchange = text(&created.stdout).trim().to_string();
    assert!(exchange.starts_with("alk_rex_"), "{exchange}");

    // Secret values go in on standard input and never come back out.
    let secret = airlock(
        &[
            "admin",
            "secrets",
            "create",
            "--name",
            "db",
            "--project-id",
            project["id"].as_str().unwrap(),
            "--output",
            "json",
        ],
        &env,
        Some("hunter2-value\n"),
    );
    assert!(secret.status.success(), "{}", text(&secret.stderr));
    let listed = run(&["admin", "secrets", "list"]);
    assert!(
        text(&listed.stdout).contains("/run/secrets/db")
            && !text(&listed.stdout).contains("hunter2")
    );

    // A member created with a password logs in.
    let member = airlock(
        &[
            "admin",
            "users",
            "create",
            "--email",
            "dev@acme.internal",
            "--role",
            "member",
            "--password-stdin",
        ],
        &env,
        Some("correct horse battery\n"),
    );
    assert!(member.status.success(), "{}", text(&member.stderr));
    let login = airlock(
        &[
            "admin",
            "login",
            "--email",
            "dev@acme.internal",
            "--password-stdin",
        ],
        &[("AIRLOCK_URL", server.url.as_str())],
        Some("correct horse battery\n"),
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    let session = text(&login.stdout).trim().to_string();
    let denied = airlock(
        &["admin", "runners", "list"],
        &[
            ("AIRLOCK_URL", server.url.as_str()),
            ("AIRLOCK_TOKEN", session.as_str()),
        ],
        None,
    );
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stderr).contains("403 forbidden"),
        "{}",
        text(&denied.stderr)
    );

    let audit = text(&run(&["admin", "audit", "list", "--action", "project.*"]).stdout);
    assert!(
        audit.contains("project.create") && audit.contains("admin@acme.internal"),
        "{audit}"
    );
    let verify = run(&["admin", "audit", "verify"]);
    assert!(verify.status.success());
    assert!(
        text(&verify.stdout).starts_with("ok: "),
        "{}",
        text(&verify.stdout)
    );

    // Without a token: a clear error, not a stack trace.
    let anonymous = airlock(
        &["admin", "projects", "list"],
        &[("AIRLOCK_URL", server.url.as_str())],
        None,
    );
    assert!(
        text(&anonymous.stderr).contains("no token"),
        "{}",
        text(&anonymous.stderr)
    );
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    set_up(tmp.path());
    let out = airlock(
        &[
            "control-plane",
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--kek-file",
            tmp.path().join("kek").to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refusing to serve plain HTTP on 0.0.0.0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serves_https_with_a_given_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
    let write = |name: &str, pem: String| {
        let path = tmp.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca_file = write("ca.pem", ca.pem());
    let cert = write("cp.crt", leaf.pem());
    let key = write("cp.key", leaf_key.serialize_pem());
    let server = Server::start(
        tmp.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let trusted = airlock(
        &["admin", "whoami"],
        &[
            ("AIRLOCK_URL", &server.url),
            ("AIRLOCK_TOKEN", &token),
            ("AIRLOCK_CA_CERT", ca_file.to_str().unwrap()),
        ],
        None,
    );
    assert!(trusted.status.success(), "{}", text(&trusted.stderr));
    assert!(text(&trusted.stdout).contains("admin@acme.internal"));
    let untrusted = airlock(
        &["admin", "whoami"],
        &[("AIRLOCK_URL", &server.url), ("AIRLOCK_TOKEN", &token)],
        None,
    );
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        text(&untrusted.stderr).contains("is not signed by a CA this client trusts") && text(&untrusted.stderr).contains("AIRLOCK_CA_CERT"),
        "{}",
        text(&untrusted.stderr)
    );
}

/// Acknowledged writes survive kill -9, each with its audit record, and the chain verifies.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let client = Client::new(&server.url, Some(token.clone()), None).unwrap();
    let class = client
        .call(Method::POST, "/api/v1/classes", &[], Some(&json!({"name": "c", "resources": {"cpu_millis": 1000, "memory_mib": 1024, "disk_gib": 5, "pids": 512}})))
        .unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, token, acked, stop, class_id) = (server.url.clone(), token.clone(), acked.clone(), stop.clone(), class["id"].clone());
            std::thread::spawn(move || {
                let client = Client::new(&url, Some(token), None).unwrap();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = json!({"name": format!("w{w}-{i}"), "repository_url": "https://git.internal/p.git", "image": "mirror.internal/p:1", "class_id": class_id});
                    match client.call(Method::POST, "/api/v1/projects", &[], Some(&body)) {
                        Ok(p) => acked.lock().unwrap().push(p["id"].as_str().unwrap().to_string()),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Enough acknowledged writes to make the check below mean something, however slow the
    // machine; then the kill lands while the writers are still going.
    wait_until("20 acknowledged writes", Duration::from_secs(120), || acked.lock().unwrap().len() >= 20);
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let server = Server::start(tmp.path(), &[]);
    let client = Client::new(&server.url, Some(token.clone()), None).unwrap();
    let projects: Vec<String> = client
        .list_all("/api/v1/projects", &[])
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let audited: Vec<String> = client
        .list_all("/api/v1/audit", &[("action", "project.create".to_string())])
        .unwrap()
        .iter()
        .map(|r| {
            r["subject"]
                .as_str()
                .unwrap()
                .trim_start_matches("project/")
                .to_string()
        })
        .collect();
    for id in &acked {
        assert!(projects.contains(id), "acknowledged project {id} lost");
        assert!(
            audited.contains(id),
            "acknowledged project {id} has no audit record"
        );
    }
    drop(server);
    let data = tmp.path().join("data");
    let verify = airlock(
        &[
            "admin",
            "audit",
            "verify",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

#[test]
fn audit_verify_on_the_data_dir_names_tampered_records() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    {
        let server = Server::start(tmp.path(), &[]);
        let client = Client::new(&server.url, Some(token), None).unwrap();
        for i in 0..5 {
            client
                .call(
                    Method::POST,
                    "/api/v1/tokens",
                    &[],
                    Some(&json!({"name": format!("t{i}")})),
                )
                .unwrap();
        }
    }
    let data: PathBuf = tmp.path().join("data");
    let dir = data.to_str().unwrap();
    let verify = || airlock(&["admin", "audit", "verify", "--data-dir", dir], &[], None);
    let clean = verify();
    assert!(clean.status.success());
    let head = text(&clean.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();

    let export = airlock(&["admin", "audit", "export", "--data-dir", dir], &[], None);
    let lines: Vec<Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5]["hash"], head.as_str());

    {
        let store = Store::open(&data.join("control-plane")).unwrap();
        let mut record: Value =
            serde_json::from_slice(&store.raw_get(&keys::audit(3)).unwrap().unwrap()).unwrap();
        record["action"] = json!("token.revoke");
        store
            .raw_put(&keys::audit(3), Some(serde_json::to_vec(&record).unwrap()))
            .unwrap();
        store.raw_put(&keys::audit(5), None).unwrap();
        // `airlock admin audit verify` opens the folder next, from another process.
        store.close().unwrap();
    }
    let broken = verify();
    assert_eq!(broken.status.code(), Some(1));
    let report = text(&broken.stdout);
    assert!(report.contains("record 3 was modified"), "{report}");
    assert!(report.contains("record 5 is missing"), "{report}");

    // A rewound log is caught with the head kept from before.
    let truncated = airlock(
        &[
            "admin",
            "audit",
            "verify",
            "--data-dir",
            dir,
            "--expect-head",
            "0123abcd",
        ],
        &[],
        None,
    );
    assert!(
        text(&truncated.stdout).contains("is not in the log"),
        "{}",
        text(&truncated.stdout)
    );
}

/// A small tmpfs mounted on `path` for the test, unmounted when dropped (also when the test
/// fails), so a full file system can be had without filling the machine's disk.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", text(&out.stderr));
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let mut chunk = vec![0x5a_u8; 1 << 20];
        while !chunk.is_empty() {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => chunk.truncate(chunk.len() / 2),
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(&self.path).status();
        if !done.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn api_status(result: Result<Value, airlock_control_plane::client::ClientError>) -> (u16, String) {
    match result {
        Ok(_) => (200, String::new()),
        Err(airlock_control_plane::client::ClientError::Api { status, code, message, .. }) => (status, format!("{code}: {message}")),
        Err(e) => panic!("unexpected client error: {e}"),
    }
}

#[test]
fn a_failed_flush_poisons_the_store_until_restart_and_clients_get_503() {
    let tmp = tempfile::tempdir().unwrap();
    // The data directory is a 16 MiB tmpfs; the KEK and the log stay outside it.
    let disk = Tmpfs::mount(&tmp.path().join("data"), "16m");
    let token = set_up(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let client = Client::new(&server.url, Some(token.clone()), None).unwrap();
    let user = |i: usize| json!({"email": format!("u{i}@acme.internal"), "role": "member", "password": "correct horse battery"});
    client.call(Method::POST, "/api/v1/users", &[], Some(&user(0))).unwrap();

    let filler = disk.fill();
    // Each write adds a little to sled's log; the first one that cannot reach the disk is
    // refused. (A few may still fit in pages the file system already holds.)
    let mut refused = None;
    for i in 1..200 {
        let (status, message) = api_status(client.call(Method::POST, "/api/v1/users", &[], Some(&user(i))));
        assert!(status == 200 || status == 503, "write {i} on a full disk: {status} {message}");
        if status == 503 {
            refused = Some((i, message));
            break;
        }
    }
    let (failed, message) = refused.expect("some write on a full file system is refused");
    assert!(message.starts_with("unavailable: ") && message.contains("restart"), "{message}");

    // With space back, the store still refuses: reads (which would show the unacknowledged
    // user) and writes alike, until the restart.
    std::fs::remove_file(&filler).unwrap();
    let (status, message) = api_status(client.call(Method::GET, "/api/v1/users", &[("limit", "500".into())], None));
    assert_eq!(status, 503, "a read after the failed flush: {message}");
    let (status, message) = api_status(client.call(Method::POST, "/api/v1/users", &[], Some(&user(failed + 1))));
    assert_eq!(status, 503, "a write after the failed flush: {message}");
    let log = std::fs::read_to_string(tmp.path().join("serve.log")).unwrap();
    assert!(log.contains("flush failed") || log.contains("writing failed"), "the failure is logged: {log}");

    // After a restart everything works again and the audit chain is whole.
    server.kill();
    let server = Server::start(tmp.path(), &[]);
    let client = Client::new(&server.url, Some(token), None).unwrap();
    client.call(Method::POST, "/api/v1/users", &[], Some(&user(1000))).unwrap();
    let verify = client.call(Method::GET, "/api/v1/audit/verify", &[], None).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    drop(server);
    drop(disk);
}

/// Bytes the files under `dir` take on disk.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { disk_usage(&entry.path()) } else { meta.blocks() * 512 };
    }
    total
}

/// Finding 1: oversized and rate-limited logins cannot fill the disk. (Before: 60 logins with
/// a 2 MB email grew the database by hundreds of MiB.)
#[test]
fn oversized_and_rate_limited_logins_add_almost_nothing_to_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let owner = Client::new(&server.url, Some(token), None).unwrap();
    owner
        .call(Method::POST, "/api/v1/users", &[], Some(&json!({"email": "dev@acme.internal", "role": "member", "password": "correct horse battery"})))
        .unwrap();
    let anonymous = Client::new(&server.url, None, None).unwrap();
    let data = tmp.path().join("data");
    let before = disk_usage(&data);

    // Just under axum's general 2 MiB limit, so only the login's own limit stops it. Sent by
    // curl, which (as for any large body) waits for `100 Continue`: the server answers from
    // the declared length and never takes the body. (A client that sends it regardless may
    // see the connection closed under it instead of the answer.)
    let huge = tmp.path().join("huge-login.json");
    std::fs::write(&huge, json!({"email": format!("{}@acme.internal", "a".repeat(1_900_000)), "password": "x"}).to_string()).unwrap();
    for _ in 0..60 {
        let out = Command::new("curl")
            .args(["-sS", "-H", "content-type: application/json", "-H", "expect: 100-continue", "-w", "\n%{http_code}", "--data-binary"])
            .arg(format!("@{}", huge.display()))
            .arg(format!("{}/api/v1/auth/login", server.url))
            .output()
            .expect("curl is missing (`make test` installs it)");
        let answer = text(&out.stdout);
        assert!(out.status.success() && answer.ends_with("\n413"), "{answer} {}", text(&out.stderr));
        assert!(answer.contains("too_large") && answer.contains("8192 bytes"), "{answer}");
    }
    let long = format!("{}@acme.internal", "a".repeat(6000));
    for _ in 0..60 {
        let (status, message) = api_status(anonymous.call(Method::POST, "/api/v1/auth/login", &[], Some(&json!({"email": long, "password": "x"}))));
        assert_eq!(status, 400, "{message}");
        assert!(message.contains("at most 254 bytes"), "{message}");
    }
    let wrong = json!({"email": "dev@acme.internal", "password": "not the password"});
    for _ in 0..5 {
        assert_eq!(api_status(anonymous.call(Method::POST, "/api/v1/auth/login", &[], Some(&wrong))).0, 401);
    }
    for _ in 0..200 {
        let (status, message) = api_status(anonymous.call(Method::POST, "/api/v1/auth/login", &[], Some(&wrong)));
        assert_eq!(status, 429, "{message}");
        assert!(message.contains("try again in"), "{message}");
    }
    let grown = disk_usage(&data).saturating_sub(before);
    eprintln!("the database grew by {grown} bytes");
    // Five failures and one refusal record, a few hundred bytes each, plus sled's framing.
    assert!(grown < 256 * 1024, "the database grew by {grown} bytes");
    drop(server);
}

/// `airlock server` with only the control plane, on `data`: its exit status (None: it got
/// ready, and was stopped), stdout and stderr.
fn all_in_one(dir: &Path, data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    all_in_one_with_env(dir, data, args, &[])
}

fn all_in_one_with_env(dir: &Path, data: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mirror]\nenabled = false\n[control_plane]\nlisten = \"127.0.0.1:0\"\n[runner]\nenabled = false\n",
            data.display()
        ),
    )
    .unwrap();
    let log = dir.join("server.err");
    let mut child = Command::new(BIN)
        .args(["server", "--config"])
        .arg(&config)
        .args(args)
        .env_remove("AIRLOCK_CONTROL_PLANE_KEK_FILES")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut ready = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line == "airlock server ready" {
            ready = true;
            break;
        }
    }
    let status = if ready {
        child.kill().unwrap();
        child.wait().unwrap();
        None
    } else {
        child.wait().unwrap().code()
    };
    (status, out, std::fs::read_to_string(&log).unwrap())
}

/// Finding 10: the all-in-one server does not keep the KEK beside the database it protects.
#[test]
fn the_all_in_one_server_keeps_its_kek_outside_the_data_folder() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("airlock-data");

    // No KEK location: refused, with the flag and the setting named, before anything is made.
    let (status, _, err) = all_in_one(tmp.path(), &data, &[]);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("--kek-file") && err.contains("control_plane.kek_files") && err.contains("outside the data folder"), "{err}");
    assert!(!data.join("control-plane").join("db").exists(), "no database was made");
    assert!(!data.join("control-plane").join("kek").exists(), "no key beside it either");

    // A KEK inside the data folder: refused.
    let inside = data.join("keys").join("kek");
    let (status, _, err) = all_in_one(tmp.path(), &data, &["--kek-file", inside.to_str().unwrap()]);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("is inside the data folder"), "{err}");
    assert!(!inside.exists());

    // Elsewhere: created on first start, and the first-run output says where and why.
    let kek = tmp.path().join("etc").join("kek");
    let (status, _, err) = all_in_one(tmp.path(), &data, &["--kek-file", kek.to_str().unwrap()]);
    assert_eq!(status, None, "{err}");
    assert!(err.contains(&format!("created key-encryption key {}", kek.display())) && err.contains("outside the data folder"), "{err}");
    assert_eq!(std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777, 0o600);
    let key = std::fs::read(&kek).unwrap();
    let (status, _, err) = all_in_one(tmp.path(), &data, &["--kek-file", kek.to_str().unwrap()]);
    assert_eq!(status, None, "{err}");
    assert!(!err.contains("created key-encryption key"), "made once: {err}");
    assert_eq!(std::fs::read(&kek).unwrap(), key);

    // An installation from before, with its key in DATA/control-plane/kek, is told to move it.
    std::fs::copy(&kek, data.join("control-plane").join("kek")).unwrap();
    let (status, _, err) = all_in_one(tmp.path(), &data, &[]);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("move it out first"), "{err}");

    // `control-plane serve` refuses a key inside its data directory too.
    let serve = airlock(
        &["control-plane", "serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--kek-file", data.join("control-plane").join("kek").to_str().unwrap()],
        &[],
        None,
    );
    assert!(!serve.status.success());
    assert!(text(&serve.stderr).contains("is inside the data directory"), "{}", text(&serve.stderr));
}

/// A lost owner token is not the end of the site: root on the control plane's host issues a new
/// one, and the audit chain records who did.
#[test]
fn a_lost_owner_token_is_recovered_locally_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cp")).unwrap();
    let _lost = set_up(&dir.path().join("cp"));
    let data = dir.path().join("cp/data");
    let data_arg = data.to_str().unwrap();

    // Not while a server holds the data directory.
    let server = Server::start(&dir.path().join("cp"), &[]);
    let busy = airlock(&["admin", "recover", "--data-dir", data_arg], &[], None);
    assert!(!busy.status.success() && text(&busy.stderr).contains("in use by another control plane"), "{}", text(&busy.stderr));
    server.kill();

    let wrong = airlock(&["admin", "recover", "--data-dir", data_arg, "--owner", "nobody@acme.internal"], &[], None);
    assert!(
        text(&wrong.stderr).contains("nobody@acme.internal is not an active owner") && text(&wrong.stderr).contains("admin@acme.internal"),
        "{}",
        text(&wrong.stderr)
    );
    let empty = airlock(&["admin", "recover", "--data-dir", dir.path().join("nothing").to_str().unwrap()], &[], None);
    assert!(text(&empty.stderr).contains("holds no initialized control plane"), "{}", text(&empty.stderr));
    let unprivileged = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "admin", "recover", "--data-dir", data_arg])
        .output()
        .unwrap();
    assert!(text(&unprivileged.stderr).contains("runs as root only"), "{}", text(&unprivileged.stderr));

    let recovered = airlock(&["admin", "recover", "--data-dir", data_arg], &[("SUDO_USER", "operator-jo")], None);
    assert!(recovered.status.success(), "{}", text(&recovered.stderr));
    let token = text(&recovered.stdout).trim().to_string();
    assert!(token.starts_with("alk_pat_"), "{token}");

    let server = Server::start(&dir.path().join("cp"), &[]);
    let env = [("AIRLOCK_URL", server.url.as_str()), ("AIRLOCK_TOKEN", token.as_str())];
    let whoami = airlock(&["admin", "whoami"], &env, None);
    assert!(text(&whoami.stdout).contains("admin@acme.internal"), "{}", text(&whoami.stderr));
    let audit = airlock(&["admin", "audit", "export"], &env, None);
    let record = text(&audit.stdout).lines().find(|l| l.contains("site.recover")).map(str::to_string);
    let record = record.unwrap_or_else(|| panic!("no site.recover record: {}", text(&audit.stdout)));
    assert!(record.contains("operator-jo (uid 0)"), "{record}");
}

/// `airlock server` reports why its control plane did not start, not a closed channel.
#[test]
fn a_control_plane_that_cannot_listen_says_why_and_names_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("airlock-data");
    let kek = tmp.path().join("etc").join("kek");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, err) = all_in_one_with_env(
        tmp.path(),
        &data,
        &["--kek-file", kek.to_str().unwrap()],
        &[("AIRLOCK_CONTROL_PLANE_LISTEN", &addr)],
    );
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("the control plane did not start") && err.contains("control_plane.listen"), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"), "{err}");
    assert!(!err.contains("channel closed"), "{err}");
    drop(taken);
}

/// `airlock admin` takes a resource's name wherever it takes its id; a name that matches
/// nothing, several resources, or an id of another kind is an error saying what to run.
#[test]
fn admin_commands_take_names_where_they_take_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let env = [("AIRLOCK_URL", server.url.as_str()), ("AIRLOCK_TOKEN", token.as_str())];
    let json_of = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = airlock(&all, &env, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let refused = |args: &[&str]| -> String {
        let out = airlock(args, &env, None);
        assert!(!out.status.success(), "{args:?} succeeded");
        text(&out.stderr)
    };
    let resources = ["--cpu-millis", "1000", "--memory-mib", "512", "--disk-gib", "1", "--pids", "128"];
    let small = json_of(&[&["admin", "classes", "create", "--name", "small"][..], &resources].concat());
    // The class is named, not given by id.
    let project = json_of(&[
        "admin", "projects", "create", "--name", "backend", "--repository-url", "git://git.acme.internal/backend",
        "--image", "mirror.acme.internal/devcontainers/base:1", "--class-id", "small",
    ]);
    assert_eq!(project["class_id"], small["id"]);
    assert_eq!(json_of(&["admin", "projects", "get", "backend"])["id"], project["id"]);
    assert_eq!(json_of(&["admin", "users", "get", "admin@acme.internal"])["email"], "admin@acme.internal");
    let renamed = json_of(&["admin", "classes", "update", "small", "--name", "tiny"]);
    assert_eq!(renamed["id"], small["id"]);

    let missing = refused(&["admin", "environments", "create", "--project-id", "frontend"]);
    assert!(
        missing.contains("no project has the name `frontend`") && missing.contains("airlock admin projects list"),
        "{missing}"
    );
    let wrong_kind = refused(&["admin", "projects", "get", small["id"].as_str().unwrap()]);
    assert!(
        wrong_kind.contains("is a class id, not a project id") && wrong_kind.contains("airlock admin projects list"),
        "{wrong_kind}"
    );
    // A secret's name is unique in its scope only: an org secret and a project secret may share it.
    for scope in [&[][..], &["--project-id", "backend"][..]] {
        let out = airlock(&[&["admin", "secrets", "create", "--name", "db-password"][..], scope].concat(), &env, Some("s3cret"));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let ambiguous = refused(&["admin", "secrets", "get", "db-password"]);
    assert!(ambiguous.contains("2 secrets have the name `db-password`; give one of their ids:"), "{ambiguous}");
    assert_eq!(ambiguous.matches("sec_").count(), 2, "both candidates are listed: {ambiguous}");
}

/// Network narrowing from the CLI: a project's set, each entry's shape checked (the error
/// names the entry), replaced as a whole and dropped; an org's policy narrowing what its
/// projects may ask for, and what each new environment gets.
#[test]
fn network_narrowing_by_org_and_project_is_set_checked_and_dropped_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let env_vars = [("AIRLOCK_URL", server.url.as_str()), ("AIRLOCK_TOKEN", token.as_str())];
    let json_of = |args: &[&str]| -> Value {
        let out = airlock(&[args, &["--output", "json"][..]].concat(), &env_vars, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let resources = ["--cpu-millis", "1000", "--memory-mib", "512", "--disk-gib", "1", "--pids", "128"];
    json_of(&[&["admin", "classes", "create", "--name", "small"][..], &resources].concat());
    let create = ["admin", "projects", "create", "--repository-url", "", "--image", "mirror.internal/devcontainers/base:1", "--class-id", "small"];
    let project = json_of(&[&create[..], &["--name", "backend", "--network-allow", "git.internal:443", "--network-allow", "10.20.0.0/16:5432"]].concat());
    assert_eq!(project["network"], json!({"allow": ["git.internal:443", "10.20.0.0/16:5432"]}));
    assert!(json_of(&[&create[..], &["--name", "open"]].concat()).get("network").is_none(), "no narrowing unless asked");

    let out = airlock(&[&create[..], &["--name", "bad", "--network-allow", "git.internal"]].concat(), &env_vars, None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("network.allow") && err.contains("`git.internal`") && err.contains("host:port"), "{err}");

    let updated = json_of(&["admin", "projects", "update", "backend", "--network-allow", "git.internal:22"]);
    assert_eq!(updated["network"], json!({"allow": ["git.internal:22"]}), "replaced as a whole");
    let renamed = json_of(&["admin", "projects", "update", "backend", "--name", "backend2"]);
    assert_eq!(renamed["network"], updated["network"], "other updates keep it");
    let site = json_of(&["admin", "projects", "update", "backend2", "--network-site"]);
    assert!(site.get("network").is_none(), "{site}");

    // The org's policy narrows the site's list; projects narrow within it.
    let org = json_of(&["admin", "orgs", "update", "acme", "--network-allow", "10.20.0.0/16:5432", "--network-allow", "git.internal:443"]);
    assert_eq!(org["policy"]["network"], json!({"allow": ["10.20.0.0/16:5432", "git.internal:443"]}), "{org}");
    let env = json_of(&["admin", "environments", "create", "--project-id", "open"]);
    assert_eq!(env["spec"]["network"], org["policy"]["network"], "a project without a list gets the org's");
    json_of(&["admin", "projects", "update", "backend2", "--network-allow", "10.20.3.0/24:5432"]);
    let env = json_of(&["admin", "environments", "create", "--project-id", "backend2"]);
    assert_eq!(env["spec"]["network"], json!({"allow": ["10.20.3.0/24:5432"]}), "within the org's: the project's own");
    json_of(&["admin", "projects", "update", "backend2", "--network-allow", "git.internal:22"]);
    let out = airlock(&["admin", "environments", "create", "--project-id", "backend2"], &env_vars, None);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("`git.internal:22`") && err.contains("org's policy"), "{err}");
}

/// `control-plane serve --config` takes single sign-on from the site configuration: the
/// provider is listed, and with local passwords turned off a password login is refused.
/// (Discovery is fetched at the first sign-in, so the provider need not answer here; the
/// sign-in itself is tested against a real provider in the control plane's sso tests.)
#[test]
fn control_plane_serve_takes_single_sign_on_from_the_site_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    set_up(tmp.path());
    let config = tmp.path().join("airlock.toml");
    std::fs::write(
        &config,
        "[control_plane]\npublic_url = \"https://cp.acme.internal:8443\"\n\n[egress]\nallow = [\"idp.acme.internal\"]\n\n\
         [sso]\nlocal_passwords = false\n\n[[sso.providers]]\nid = \"acme\"\ndisplay_name = \"ACME sign-in\"\n\
         issuer = \"https://idp.acme.internal/realms/acme\"\nclient_id = \"airlock\"\n\n\
         [[sso.providers.mappings]]\ngroup = \"developers\"\norg = \"acme\"\nrole = \"member\"\n",
    )
    .unwrap();
    let server = Server::start(tmp.path(), &["--config", config.to_str().unwrap()]);
    let anonymous = Client::new(&server.url, None, None).unwrap();
    let providers = anonymous.call(Method::GET, "/api/v1/auth/sso", &[], None).unwrap();
    assert_eq!(providers["providers"][0]["id"], "acme", "{providers}");
    let (status, message) = api_status(anonymous.call(Method::POST, "/api/v1/auth/login", &[], Some(&json!({"email": "admin@acme.internal", "password": "whatever-it-is"}))));
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("password logins are turned off"), "{message}");

    // Without the file: no providers, and a clear answer.
    drop(server);
    let server = Server::start(tmp.path(), &[]);
    let anonymous = Client::new(&server.url, None, None).unwrap();
    let providers = anonymous.call(Method::GET, "/api/v1/auth/sso", &[], None).unwrap();
    assert!(providers["providers"].as_array().is_none_or(|p| p.is_empty()), "{providers}");
}

/// `airlock ssh-config` warns before ssh would answer `Permission denied (publickey)`: no key
/// registered, or none of the keys ssh offers is one of the registered ones.
#[test]
fn ssh_config_warns_when_no_key_ssh_offers_is_registered() {
    let tmp = tempfile::tempdir().unwrap();
    let token = set_up(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let home_str = home.to_str().unwrap();
    let env = [("AIRLOCK_URL", server.url.as_str()), ("AIRLOCK_TOKEN", token.as_str()), ("HOME", home_str), ("SSH_AUTH_SOCK", "")];
    let ssh_config = |extra: &[&str]| -> String {
        let dir = tmp.path().join("ssh");
        let out = airlock(&[&["ssh-config", "--dir", dir.to_str().unwrap()][..], extra].concat(), &env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let keygen = |path: &Path| {
        let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).output().unwrap();
        assert!(out.status.success());
    };

    let none = ssh_config(&[]);
    assert!(none.contains("warning: you have no SSH key registered with airlock") && none.contains("airlock admin ssh-keys add"), "{none}");

    let default_key = home.join(".ssh/id_ed25519");
    keygen(&default_key);
    let add = airlock(&["admin", "ssh-keys", "add", "--name", "laptop", "--key-file", &format!("{}.pub", default_key.display())], &env, None);
    assert!(add.status.success(), "{}", text(&add.stderr));
    let fine = ssh_config(&[]);
    assert!(!fine.contains("warning"), "the default key is registered: {fine}");

    let other = tmp.path().join("other_key");
    keygen(&other);
    let unregistered = ssh_config(&["--identity-file", other.to_str().unwrap()]);
    assert!(
        unregistered.contains("warning: none of the SSH keys ssh will offer")
            && unregistered.contains("other_key.pub")
            && unregistered.contains("Registered: laptop (SHA256:"),
        "{unregistered}"
    );
    let given = ssh_config(&["--identity-file", default_key.to_str().unwrap()]);
    assert!(!given.contains("warning"), "{given}");
}
