//! The whole chain with a real runner: a bundle imported into the mirror, a control plane, and
//! `airlock runner` pulling the image from the mirror, starting the environment with runc and
//! serving it over SSH to the stock OpenSSH client through `airlock ssh-config`. Then the
//! faults: kill -9 of the runner (adoption), a stop with a workspace snapshot restored on
//! another runner, and a full runner keeping an environment pending.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_control_plane::client::{Client, Method};
use airlock_testkit::wait_until;
use airlock_runner::engine::{Engine, EngineOptions};
use common::{airlock, ok, MirrorServer, Sample};
use serde_json::{json, Value};

/// A running `control-plane serve`, killed when dropped.
struct ControlPlane {
    child: Child,
    url: String,
    owner: String,
}

impl ControlPlane {
    fn start(dir: &Path) -> ControlPlane {
        ok(airlock().args(["control-plane", "gen-kek", "--out"]).arg(dir.join("kek")));
        let init = ok(airlock()
            .args(["admin", "init", "--org", "acme", "--owner", "owner@acme.internal", "--data-dir"])
            .arg(dir.join("cp")));
        let owner = String::from_utf8_lossy(&init.stdout).trim().to_string();
        let mut child = airlock()
            .args(["control-plane", "serve", "--listen", "127.0.0.1:0", "--runner-inactive-after", "3"])
            .arg("--data-dir")
            .arg(dir.join("cp"))
            .arg("--kek-file")
            .arg(dir.join("kek"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("cp.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("control plane started").to_string();
        ControlPlane { child, url, owner }
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.url, Some(token.to_string()), None).unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `airlock runner` process. Dropping it kills the process and then removes every
/// environment it left behind (containers outlive their runner by design).
struct Runner {
    child: Option<Child>,
    data: PathBuf,
    uid_base: u32,
}

impl Runner {
    fn start(data: &Path, cp: &ControlPlane, mirror: &MirrorServer, token: Option<&str>, capacity: usize, uid_base: u32) -> Runner {
        let mut cmd = airlock();
        cmd.args(["runner", "--control-plane", &cp.url, "--ssh-listen", "127.0.0.1:0", "--poll-interval", "300ms"])
            .args(["--plain-http-registry", &mirror.addr, "--capacity", &capacity.to_string()])
            .args(["--uid-base", &uid_base.to_string(), "--data-dir"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(data.with_extension("log")).unwrap());
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("runner ssh gateway listening on"),
            "runner did not start: {line:?}\n{}",
            std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
        );
        Runner { child: Some(child), data: data.to_path_buf(), uid_base }
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            c.wait().unwrap();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill_9();
        let mut opts = EngineOptions::new(&self.data);
        opts.uid_base = self.uid_base;
        if let Ok(engine) = Engine::open(opts) {
            for env in engine.list().unwrap_or_default() {
                let _ = engine.delete(&env.id);
            }
        }
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

fn call(c: &Client, method: Method, path: &str, body: Option<&Value>) -> Value {
    c.call(method, path, &[], body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Polls an environment until `done` says so (or fails the test with its events).
fn wait_env(c: &Client, env: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = call(c, Method::GET, &format!("/api/v1/environments/{env}"), None);
        if done(&v) {
            return v;
        }
        if Instant::now() > deadline || (v["phase"] == "failed" && what != "failed") {
            let events = call(c, Method::GET, &format!("/api/v1/environments/{env}/events"), None);
            panic!("environment {env} did not become {what}: {v}\nevents: {events}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `git daemon` serving the test's repositories on a loopback port: the internal git server.
struct GitDaemon {
    child: Child,
    addr: String,
}

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stderr(Stdio::null())
            // `git daemon` runs `git-daemon` as a child: its own process group lets the drop
            // end both.
            .process_group(0)
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, addr }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // SAFETY: signals the process group the daemon leads; no memory is involved.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

struct Site {
    _sample: Sample,
    _git: GitDaemon,
    dir: tempfile::TempDir,
    mirror: MirrorServer,
    cp: ControlPlane,
    member: String,
    project: String,
    key: PathBuf,
}

impl Site {
    /// Mirror with the sample bundle, control plane with a project on the mirror's image, a
    /// member with an SSH key, a git repository, and two secrets.
    fn new() -> Site {
        let sample = Sample::new();
        let bundle = sample.create("sample", &[]);
        let dir = tempfile::tempdir().unwrap();
        ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(dir.path()));
        let mirror = MirrorServer::start(dir.path(), &[]);
        let cp = ControlPlane::start(dir.path());
        let owner = cp.client(&cp.owner);

        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("README.md"), "backend service\n").unwrap();
        for args in [&["init", "-q", "-b", "main"][..], &["add", "."], &["-c", "user.name=t", "-c", "user.email=t@acme.internal", "commit", "-qm", "first"]] {
            ok(Command::new("git").args(args).current_dir(&repo));
        }

        let git = GitDaemon::start(dir.path());
        let class = call(&owner, Method::POST, "/api/v1/classes", Some(&json!({"name": "small", "resources": {"cpu_millis": 1000, "memory_mib": 256, "disk_gib": 1, "pids": 256}})));
        let project = call(&owner, Method::POST, "/api/v1/projects", Some(&json!({
            "name": "backend",
            "repository_url": format!("git://{}/repo", git.addr),
            "image": format!("{}/devcontainers/base:tiny", mirror.addr),
            "class_id": id(&class),
            "tasks": [{"name": "prepare", "command": "echo task-ran > /workspace/task.out"}],
        })));
        let project = id(&project);
        call(&owner, Method::POST, "/api/v1/secrets", Some(&json!({"name": "db-password", "scope": {"kind": "project", "project_id": project}, "value": "s3cret-value-42", "delivery": {"kind": "file", "path": "/run/secrets/db-password"}})));
        call(&owner, Method::POST, "/api/v1/secrets", Some(&json!({"name": "api-token", "scope": {"kind": "org"}, "value": "tok-9000", "delivery": {"kind": "env", "name": "API_TOKEN"}})));

        call(&owner, Method::POST, "/api/v1/users", Some(&json!({"email": "dev@acme.internal", "role": "member", "password": "correct horse battery"})));
        let login = cp.client("").call(Method::POST, "/api/v1/auth/login", &[], Some(&json!({"email": "dev@acme.internal", "password": "correct horse battery"}))).unwrap();
        let member = login["token"].as_str().unwrap().to_string();
        let key = dir.path().join("id_ed25519");
        ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key));
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        call(&cp.client(&member), Method::POST, "/api/v1/ssh-keys", Some(&json!({"name": "laptop", "public_key": public.trim()})));
        Site { _sample: sample, _git: git, dir, mirror, cp, member, project, key }
    }

    fn runner(&self, name: &str, capacity: usize, uid_base: u32) -> Runner {
        let owner = self.cp.client(&self.cp.owner);
        let created = call(&owner, Method::POST, "/api/v1/runners", Some(&json!({"name": name, "capacity": 10})));
        let token = created["exchange_token"].as_str().unwrap().to_string();
        let runner = Runner::start(&self.dir.path().join(name), &self.cp, &self.mirror, Some(&token), capacity, uid_base);
        // Environments are scheduled only on runners that have heartbeated.
        let path = format!("/api/v1/runners/{}", created["runner"]["id"].as_str().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while call(&owner, Method::GET, &path, None)["phase"] != "active" {
            assert!(Instant::now() < deadline, "runner {name} never became active");
            std::thread::sleep(Duration::from_millis(50));
        }
        runner
    }

    fn member(&self) -> Client {
        self.cp.client(&self.member)
    }

    fn create_env(&self) -> String {
        id(&call(&self.member(), Method::POST, "/api/v1/environments", Some(&json!({"project_id": self.project}))))
    }

    /// `ssh ENV.airlock.environment COMMAND` through the files `airlock ssh-config` writes.
    fn ssh(&self, env: &str, command: &str) -> std::process::Output {
        let dir = self.dir.path().join("ssh");
        ok(airlock()
            .args(["ssh-config", "--url", &self.cp.url, "--token", &self.member, "--dir"])
            .arg(&dir)
            .arg("--identity-file")
            .arg(&self.key));
        Command::new("ssh")
            .arg("-F")
            .arg(dir.join("config"))
            .args(["-o", "BatchMode=yes", &format!("{env}.airlock.environment"), command])
            .output()
            .unwrap()
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn an_environment_from_the_mirror_over_ssh_survives_a_runner_crash_and_moves_with_its_workspace() {
    let site = Site::new();
    let mut first = site.runner("rack-1", 5, 1_000_000);
    let env = site.create_env();
    wait_env(&site.member(), &env, "running", |v| v["phase"] == "running");

    let out = site.ssh(&env, "id -u; hostname; cat /workspace/README.md /workspace/task.out /run/secrets/db-password; echo; echo token=$API_TOKEN; ls /sys/class/net");
    assert!(out.status.success(), "ssh failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {stdout}");
    assert!(lines[1].starts_with("backend-"), "hostname is the environment's name: {stdout}");
    assert!(stdout.contains("backend service"), "the repository was cloned into /workspace: {stdout}");
    assert!(stdout.contains("task-ran"), "the project's task ran: {stdout}");
    assert!(stdout.contains("s3cret-value-42"), "the secret file is there: {stdout}");
    assert!(stdout.contains("token=tok-9000"), "the secret variable is set: {stdout}");
    assert_eq!(lines.last(), Some(&"lo"), "only loopback: {stdout}");
    let exit = site.ssh(&env, "exit 7");
    assert_eq!(exit.status.code(), Some(7));
    // Package clients are pointed at the mirror the image came from, with no flags.
    let clients = text(&site.ssh(&env, "cat /etc/pip.conf /.cargo/config.toml $NPM_CONFIG_GLOBALCONFIG").stdout);
    let mirror = site.mirror.url("");
    for expected in [format!("index-url = {mirror}/pypi/simple/"), format!("sparse+{mirror}/cargo/index/"), format!("registry={mirror}/npm/")] {
        assert!(clients.contains(&expected), "{expected} missing: {clients}");
    }

    // The connections are on the control plane's audit log.
    let owner = site.cp.client(&site.cp.owner);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = owner.call(Method::GET, "/api/v1/audit", &[("action", "environment.ssh".into())], None).unwrap();
        let details: Vec<String> = audit["items"].as_array().unwrap().iter().map(|r| r["detail"].to_string()).collect();
        if details.iter().any(|d| d.contains("`exit 7`") && d.contains("status 7")) {
            assert!(details.iter().any(|d| d.contains("accepted")), "{details:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no SSH audit records: {details:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // kill -9 the runner: the environment keeps running and is adopted after the restart.
    assert!(site.ssh(&env, "echo before > /workspace/note").status.success());
    first.kill_9();
    let data = first.data.clone();
    let mut first = Runner::start(&data, &site.cp, &site.mirror, None, 5, 1_000_000);
    let out = site.ssh(&env, "cat /workspace/note");
    assert_eq!(text(&out.stdout).trim(), "before", "{}", text(&out.stderr));
    assert_eq!(call(&site.member(), Method::GET, &format!("/api/v1/environments/{env}"), None)["phase"], "running");

    // Stop: the workspace is snapshotted to the control plane.
    call(&site.member(), Method::POST, &format!("/api/v1/environments/{env}/stop"), None);
    let stopped = wait_env(&site.member(), &env, "stopped with a backup", |v| v["phase"] == "stopped" && v["backup"]["digest"].is_string());
    assert!(stopped["backup"]["digest"].as_str().unwrap().starts_with("sha256:"));

    // The first runner goes away; the next start lands on a second runner (another uid range),
    // which restores the snapshot instead of cloning again.
    first.terminate();
    let mut second = site.runner("rack-2", 5, 2_000_000);
    // Once rack-1 has missed heartbeats for 3 s the control plane counts it inactive, and
    // starts go elsewhere.
    let owner = site.cp.client(&site.cp.owner);
    wait_until("rack-1 to be counted inactive", Duration::from_secs(30), || {
        let runners = call(&owner, Method::GET, "/api/v1/runners", None);
        runners["items"].as_array().unwrap().iter().any(|r| r["name"] == "rack-1" && r["phase"] == "inactive")
    });
    call(&site.member(), Method::POST, &format!("/api/v1/environments/{env}/start"), None);
    let moved = wait_env(&site.member(), &env, "running again", |v| v["phase"] == "running");
    assert_ne!(moved["runner_id"], stopped["runner_id"], "it moved to the other runner");
    let out = site.ssh(&env, "cat /workspace/note /workspace/README.md");
    assert_eq!(text(&out.stdout), "before\nbackend service\n", "{}", text(&out.stderr));

    // Delete: gone from the runner's disk.
    call(&site.member(), Method::DELETE, &format!("/api/v1/environments/{env}"), None);
    wait_env(&site.member(), &env, "deleted", |v| v["phase"] == "deleted");
    assert!(!second.data.join("runner/envs").join(&env).exists(), "the environment's files are removed");
    second.terminate();
}

#[test]
fn a_full_runner_keeps_the_environment_pending_until_a_place_frees_up() {
    let site = Site::new();
    let _runner = site.runner("small-rack", 1, 3_000_000);
    let first = site.create_env();
    wait_env(&site.member(), &first, "running", |v| v["phase"] == "running");
    let second = site.create_env();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = call(&site.member(), Method::GET, &format!("/api/v1/environments/{second}/events"), None);
        if events["items"].as_array().unwrap().iter().any(|e| e["kind"] == "pending") {
            break;
        }
        assert!(Instant::now() < deadline, "no pending event: {events}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let waiting = call(&site.member(), Method::GET, &format!("/api/v1/environments/{second}"), None);
    assert_eq!(waiting["phase"], "creating", "pending, not failed: {waiting}");

    call(&site.member(), Method::DELETE, &format!("/api/v1/environments/{first}"), None);
    wait_env(&site.member(), &second, "running once the first is gone", |v| v["phase"] == "running");
}

/// A global (non-loopback) IPv4 address of this host, so that a control plane "off loopback"
/// can be a listener here and the test can see whether the runner ever connected.
fn global_ipv4() -> std::net::Ipv4Addr {
    let out = ok(Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]));
    text(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next()?.parse().ok())
        .expect("this test needs a non-loopback IPv4 address on the host (`ip -4 addr show scope global` lists none)")
}

/// Finding 9 (issue 14): a plain http:// control plane off loopback would carry the exchange
/// token and then the runner's credential in cleartext. The runner refuses it before it sends
/// anything, naming the flag that fixes it.
#[test]
fn a_plain_http_control_plane_off_loopback_is_refused_before_any_connection() {
    let ip = global_ipv4();
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let child = airlock()
        .args(["runner", "--control-plane", &url, "--token", "alk_rex_not-a-real-token", "--ssh-listen", "127.0.0.1:0"])
        .args(["--egress-allow", &format!("{ip}/32")])
        .arg("--data-dir")
        .arg(dir.path().join("runner"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed if the test fails while it still runs.
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut runner = Kill(child);
    let status = airlock_testkit::wait_for("the runner to exit on a cleartext control-plane URL", Duration::from_secs(20), || {
        runner.0.try_wait().unwrap().ok_or("still running (it went on to use the URL)")
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(runner.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&url) && stderr.contains("--control-plane") && stderr.contains("https://"), "{stderr}");
    assert!(listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "the runner connected to {url} anyway");

    // Loopback stays allowed (a control plane on the same host): the runner gets past the
    // check and fails only at the exchange, since nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = airlock()
        .args(["runner", "--control-plane", &format!("http://{closed}"), "--token", "alk_rex_x", "--ssh-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("loopback"))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("cleartext"), "{stderr}");
}

/// Finding 2, end to end: disabling the owner closes their open SSH session into a runc
/// environment within one heartbeat, refuses new ones, and puts the closing on the audit log.
#[test]
fn disabling_the_owner_closes_their_open_ssh_session() {
    let site = Site::new();
    let _runner = site.runner("rack-1", 2, 5_000_000);
    let env = site.create_env();
    wait_env(&site.member(), &env, "running", |v| v["phase"] == "running");
    // Writes the ssh config (with the member's token, which disabling revokes) and checks it works.
    assert!(site.ssh(&env, "true").status.success());
    let ssh = |command: &str| {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(site.dir.path().join("ssh").join("config"))
            .args(["-o", "BatchMode=yes", &format!("{env}.airlock.environment"), command]);
        cmd
    };
    /// The ssh client, killed if the test fails before the gateway closes it.
    struct Session(Child);
    impl Drop for Session {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut session = Session(ssh("echo ready; exec sleep 600").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(session.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let owner = site.cp.client(&site.cp.owner);
    let me = call(&site.member(), Method::GET, "/api/v1/auth/whoami", None);
    call(&owner, Method::PATCH, &format!("/api/v1/users/{}", id(&me["user"])), Some(&json!({"disabled": true})));
    // One heartbeat of the control plane (15 s) at most.
    wait_until("the open SSH session to be closed", Duration::from_secs(15), || session.0.try_wait().unwrap().is_some());
    let refused = ssh("true").output().unwrap();
    assert!(!refused.status.success(), "a new login is refused: {}", text(&refused.stdout));
    wait_until("the closing on the audit log", Duration::from_secs(15), || {
        let audit = owner.call(Method::GET, "/api/v1/audit", &[("action", "environment.ssh".into())], None).unwrap();
        audit["items"].as_array().unwrap().iter().any(|r| r["detail"].as_str().is_some_and(|d| d.contains("access withdrawn")))
    });
}

/// `airlock admin environments create|stop|start|delete --wait` follows the environment to the
/// state asked for, printing its events, and exits non-zero when it fails; names stand for ids.
#[test]
fn the_admin_cli_waits_for_the_state_it_asked_for() {
    let site = Site::new();
    let _runner = site.runner("rack-wait", 2, 7_000_000);
    let admin = |args: &[&str]| {
        airlock()
            .arg("admin")
            .args(args)
            .env("AIRLOCK_URL", &site.cp.url)
            .env("AIRLOCK_TOKEN", &site.member)
            .output()
            .unwrap()
    };
    let created = admin(&["environments", "create", "--project-id", "backend", "--name", "work", "--wait", "--timeout", "90s", "--output", "json"]);
    let log = text(&created.stderr);
    assert!(created.status.success(), "{log}");
    let env: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(env["phase"], "running", "{env}");
    assert!(
        log.contains("image-pull") && log.contains("started    the environment is running"),
        "the events were printed while waiting: {log}"
    );

    for (verb, phase) in [("stop", "stopped"), ("start", "running"), ("delete", "deleted")] {
        let out = admin(&["environments", verb, "work", "--wait", "--output", "json"]);
        assert!(out.status.success(), "{verb}: {}", text(&out.stderr));
        let env: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(env["phase"], phase, "{verb}: {env}");
    }

    // An image the mirror does not have: the environment fails and so does the command.
    let owner = site.cp.client(&site.cp.owner);
    let class = call(&owner, Method::GET, &format!("/api/v1/projects/{}", site.project), None)["class_id"].clone();
    call(&owner, Method::POST, "/api/v1/projects", Some(&json!({
        "name": "broken",
        "repository_url": "git://127.0.0.1:9/none",
        "image": format!("{}/devcontainers/absent:1", site.mirror.addr),
        "class_id": class,
    })));
    let failed = admin(&["environments", "create", "--project-id", "broken", "--wait", "--timeout", "90s"]);
    let err = text(&failed.stderr);
    assert!(!failed.status.success(), "{err}");
    assert!(err.contains("error: environment env_") && err.contains("failed:"), "{err}");
}
