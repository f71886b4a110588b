//! The engine end to end with real runc and namespaces, from an image pushed with skopeo to
//! Debian's docker-registry: isolation seen from inside and from the host, secrets, persistence
//! across stop/start, adoption by a new engine, terminals.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_runner::engine::{Engine, EngineEvent, EngineOptions, EnvStatus, SecretFile};
use airlock_runner::error::EngineError;
use airlock_ssh_gateway::{ExecIo, ExecRequest, PtyRequest};
use support::*;

/// A registry with the test image, and an engine.
fn setup() -> (Registry, String, TestEngine) {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "devcontainers/test:1");
    let engine = TestEngine::new(&registry.addr);
    (registry, image, engine)
}

fn running_pid(engine: &Engine, id: &str) -> i32 {
    let env = engine.list().unwrap().into_iter().find(|e| e.id == id).unwrap_or_else(|| panic!("{id} not listed"));
    match env.status {
        EnvStatus::Running { pid } => pid,
        other => panic!("{id} is {other:?}"),
    }
}

fn status_field(pid: i32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field}")).trim().to_string()
}

#[test]
fn inside_an_environment_only_its_own_processes_loopback_and_hostname_exist() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    let mut s = spec("env_iso1", &image);
    s.hostname = Some("devbox".into());
    s.env = vec![("PROJECT".into(), "airlock".into())];
    let events = guard.start(&s);
    assert!(events.iter().any(|e| matches!(e, EngineEvent::BlobDownloading { .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, EngineEvent::Started { pid, .. } if *pid > 0)), "{events:?}");

    assert_eq!(run_ok(&t.engine, "env_iso1", "id -u"), "0");
    assert_eq!(run_ok(&t.engine, "env_iso1", "hostname"), "devbox");
    assert_eq!(run_ok(&t.engine, "env_iso1", "echo $IMAGE_VAR $PROJECT"), "from-image airlock");

    // Shell builtins only, so the listing itself adds no process: init, its sleep, this shell.
    let procs = run_ok(&t.engine, "env_iso1", "for p in /proc/[0-9]*; do read c < $p/comm; echo \"${p#/proc/} $c\"; done");
    let procs: Vec<(u32, String)> =
        procs.lines().map(|l| l.split_once(' ').map(|(p, c)| (p.parse().unwrap(), c.to_string())).unwrap()).collect();
    assert!(procs.contains(&(1, "sh".into())), "pid 1 is the init shell: {procs:?}");
    assert!(procs.len() <= 4 && procs.iter().all(|(_, c)| c == "sh" || c == "sleep"), "foreign processes visible: {procs:?}");
    let host_procs = fs::read_dir("/proc").unwrap().flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count();
    assert!(host_procs > procs.len() + 10, "the host has {host_procs} processes, the environment sees {}", procs.len());

    assert_eq!(run_ok(&t.engine, "env_iso1", "ls /sys/class/net"), "lo");
    let (code, _, err) = run(&t.engine, "env_iso1", "nc -w 2 10.255.255.1 80 </dev/null");
    assert_ne!(code, 0, "an outside address was reachable");
    assert!(err.contains("unreachable"), "{err}");

    // The host's loopback is not the environment's loopback.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let (code, _, _) = run(&t.engine, "env_iso1", &format!("nc -w 2 127.0.0.1 {port} </dev/null"));
    assert_ne!(code, 0, "the host's port {port} was reachable");
    assert_eq!(host.accept().map(|_| ()).unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "the host listener got a connection");
    // ...while the environment's own loopback works (so the failures above mean isolation).
    // Both sides retry until the bytes have arrived: under load the client may connect before
    // the listener is up, or its `-w` timer may end a connection before it wrote anything
    // (the listener then saw an empty connection and must listen again).
    let own = run_ok(
        &t.engine,
        "env_iso1",
        "(while [ ! -s /tmp/got ]; do nc -l -p 7777 > /tmp/got; done) & listener=$!; \
         i=0; while [ ! -s /tmp/got ] && [ $i -lt 100 ]; do echo ping | nc -w 5 127.0.0.1 7777; i=$((i+1)); sleep 0.1; done; \
         kill $listener 2>/dev/null; cat /tmp/got",
    );
    assert_eq!(own, "ping");

    // Hardening, read from the process itself.
    let status = run_ok(&t.engine, "env_iso1", "cat /proc/self/status");
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().to_string();
    let cap_eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    for (bit, name) in [(13, "NET_RAW"), (27, "MKNOD"), (21, "SYS_ADMIN"), (19, "SYS_PTRACE"), (16, "SYS_MODULE")] {
        assert_eq!(cap_eff & (1 << bit), 0, "CAP_{name} is effective: {cap_eff:x}");
    }
    assert_ne!(cap_eff & 1, 0, "CAP_CHOWN (kept) is missing: {cap_eff:x}");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");

    // cgroup limits from the resources (cgroup v1 here; v2 paths otherwise).
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").is_dir();
    let read = |v1_path: &str, v2_file: &str| {
        let path = if v1 { format!("/sys/fs/cgroup/{v1_path}") } else { format!("/sys/fs/cgroup/airlock/env_iso1/{v2_file}") };
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_string()
    };
    assert_eq!(read("memory/airlock/env_iso1/memory.limit_in_bytes", "memory.max"), (256u64 << 20).to_string());
    assert_eq!(read("pids/airlock/env_iso1/pids.max", "pids.max"), "256");
    if v1 {
        assert_eq!(read("cpu/airlock/env_iso1/cpu.cfs_quota_us", ""), "100000");
    }
}

#[test]
fn environments_run_as_distinct_mapped_uids_on_the_host_and_image_owners_are_mapped() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_uida", &image));
    guard.start(&spec("env_uidb", &image));
    let (a, b) = (t.engine.host_uid("env_uida").unwrap(), t.engine.host_uid("env_uidb").unwrap());
    assert_ne!(a, b);
    assert!(a >= 65536 && b >= 65536 && (a as i64 - b as i64).abs() >= 65536, "{a} {b}");
    for (id, uid) in [("env_uida", a), ("env_uidb", b)] {
        let pid = running_pid(&t.engine, id);
        assert_eq!(status_field(pid, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"), "{id}");
        assert_eq!(status_field(pid, "Gid"), format!("{uid}\t{uid}\t{uid}\t{uid}"), "{id}");
        let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", &uid.to_string(), "65536"]);
    }
    // The image's uid 1000 is 1000 inside and host_uid + 1000 outside; the image itself,
    // shared by both environments, still says 1000 (no copy, no chown).
    assert_eq!(run_ok(&t.engine, "env_uida", "stat -c %u:%g /home/dev"), "1000:1000");
    let data = t.data();
    assert_eq!(fs::metadata(data.join("envs/env_uida/lower/home/dev")).unwrap().uid(), a + 1000);
    assert_eq!(fs::metadata(data.join("envs/env_uidb/lower/home/dev")).unwrap().uid(), b + 1000);
    let images: Vec<_> = fs::read_dir(data.join("images/rootfs")).unwrap().flatten().collect();
    assert_eq!(images.len(), 1, "one unpacked image for both environments");
    assert_eq!(fs::metadata(images[0].path().join("home/dev")).unwrap().uid(), 1000);
    // What root creates inside lands in the upper dir as the mapped root.
    run_ok(&t.engine, "env_uida", "echo x > /root/made-inside");
    assert_eq!(fs::metadata(data.join("envs/env_uida/upper/root/made-inside")).unwrap().uid(), a);
    assert!(!images[0].path().join("root/made-inside").exists(), "a write reached the shared image");
}

#[test]
fn one_environment_cannot_reach_another_ones_workspace() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_wsa", &image));
    guard.start(&spec("env_wsb", &image));
    run_ok(&t.engine, "env_wsa", "echo only-for-a > /workspace/a.txt");
    assert_eq!(run_ok(&t.engine, "env_wsb", "ls -A /workspace"), "", "B sees A's workspace");
    let (code, _, _) = run(&t.engine, "env_wsb", "cat /workspace/a.txt");
    assert_ne!(code, 0);

    let ws_a = t.engine.workspace_dir("env_wsa");
    let meta = fs::metadata(&ws_a).unwrap();
    let (uid_a, uid_b) = (t.engine.host_uid("env_wsa").unwrap(), t.engine.host_uid("env_wsb").unwrap());
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (uid_a, 0o700));
    let cat_as = |uid: u32, path: &std::path::Path| Command::new("cat").arg(path).uid(uid).gid(uid).output().unwrap();
    let denied = cat_as(uid_b, &ws_a.join("a.txt"));
    assert!(!denied.status.success(), "B's host uid read A's workspace");
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Permission denied"), "{denied:?}");
    let listing = Command::new("ls").arg(t.data().join("envs/env_wsa")).uid(uid_b).gid(uid_b).output().unwrap();
    assert!(!listing.status.success(), "B's host uid can list A's environment folder");
    // The file is there and readable by A's uid: the denial is about the uid.
    let allowed = cat_as(uid_a, &ws_a.join("a.txt"));
    assert_eq!(String::from_utf8_lossy(&allowed.stdout).trim(), "only-for-a");
}

#[test]
fn secrets_reach_the_environment_but_never_the_host_disk() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    let file_secret = format!("file-secret-{}-{:?}", std::process::id(), Instant::now());
    let env_secret = format!("env-secret-{}-{:?}", std::process::id(), Instant::now());
    let mut s = spec("env_sec", &image);
    s.secret_files = vec![SecretFile { path: "/run/secrets/db".into(), value: file_secret.clone().into_bytes() }];
    s.secret_env = vec![("DB_PASSWORD".into(), env_secret.clone())];
    assert!(!format!("{s:?}").contains(&env_secret) && !format!("{s:?}").contains(&file_secret), "Debug shows a secret");
    guard.start(&s);

    assert_eq!(run_ok(&t.engine, "env_sec", "cat /run/secrets/db"), file_secret);
    assert_eq!(run_ok(&t.engine, "env_sec", "stat -c '%a %u %g' /run/secrets/db"), "400 0 0");
    assert_eq!(run_ok(&t.engine, "env_sec", "echo $DB_PASSWORD"), env_secret);
    let (code, _, _) = run(&t.engine, "env_sec", "echo overwrite > /run/secrets/db");
    assert_ne!(code, 0, "the secret file is writable");

    let data = t.data();
    let run_dir = data.join("envs/env_sec/run");
    // The search works: both values are on the tmpfs...
    assert!(!files_containing(&run_dir, file_secret.as_bytes()).is_empty());
    assert!(!files_containing(&run_dir, env_secret.as_bytes()).is_empty());
    // ...and on no disk-backed file of the data dir (the walk does not enter other mounts).
    assert_eq!(files_containing(&data, file_secret.as_bytes()), Vec::<std::path::PathBuf>::new());
    assert_eq!(files_containing(&data, env_secret.as_bytes()), Vec::<std::path::PathBuf>::new());

    t.engine.stop("env_sec").unwrap();
    assert_eq!(mounts_under(&data), Vec::<String>::new(), "mounts left after stop");
    for value in [&file_secret, &env_secret] {
        assert_eq!(files_containing(&data, value.as_bytes()), Vec::<std::path::PathBuf>::new(), "after stop");
    }
}

/// Configuration files (the package clients' settings the agent gives every environment) are
/// readable by every user, read-only, at the paths asked for; a path into the runtime's own
/// trees or out of the root is refused before anything starts.
#[test]
fn configuration_files_are_readable_read_only_and_confined_to_plain_paths() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    let mut s = spec("env_conf", &image);
    s.config_files = airlock_packages::clients::config_files("http://mirror.site.internal:5000")
        .into_iter()
        .map(|(path, text)| (path.to_string(), text))
        .collect();
    guard.start(&s);
    for (path, text) in &s.config_files {
        assert_eq!(run_ok(&t.engine, "env_conf", &format!("cat {path}")), text.trim_end(), "{path}");
        assert_eq!(run_ok(&t.engine, "env_conf", &format!("stat -c '%a' {path}")), "444", "{path}");
        let (code, _, _) = run(&t.engine, "env_conf", &format!("echo changed > {path}"));
        assert_ne!(code, 0, "{path} is writable inside");
    }

    for bad in ["etc/pip.conf", "/etc/../root/x", "/proc/self/x", "/run/airlock/x", "/"] {
        let mut s = spec("env_confbad", &image);
        s.config_files = vec![(bad.to_string(), "x".into())];
        let err = t.engine.start(&s, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("configuration file path") && err.contains(bad), "{bad}: {err}");
        let _ = t.engine.delete("env_confbad");
    }
}

#[test]
fn workspace_and_root_changes_persist_across_stop_and_start() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    let s = spec("env_keep", &image);
    guard.start(&s);
    run_ok(&t.engine, "env_keep", "echo kept > /workspace/notes.txt && echo installed > /root/tool");
    let pid = running_pid(&t.engine, "env_keep");
    guard.start(&s); // already running: nothing happens
    assert_eq!(running_pid(&t.engine, "env_keep"), pid);

    t.engine.stop("env_keep").unwrap();
    t.engine.stop("env_keep").unwrap(); // idempotent
    let listed = t.engine.list().unwrap();
    assert_eq!(listed.iter().find(|e| e.id == "env_keep").unwrap().status, EnvStatus::Stopped);
    assert_eq!(mounts_under(&t.data()), Vec::<String>::new());
    assert!(t.engine.workspace_dir("env_keep").join("notes.txt").is_file());
    match t.engine.exec("env_keep", &ExecRequest { command: Some("true".into()), ..Default::default() }) {
        Err(EngineError::NotRunning { .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("exec in a stopped environment started something"),
    }

    let mut events = Vec::new();
    t.engine.start(&s, &mut |e| events.push(e)).unwrap();
    assert!(!events.iter().any(|e| matches!(e, EngineEvent::BlobDownloading { .. })), "restart downloaded again: {events:?}");
    assert_eq!(run_ok(&t.engine, "env_keep", "cat /workspace/notes.txt /root/tool"), "kept\ninstalled");
    assert_ne!(running_pid(&t.engine, "env_keep"), pid);

    let mut other = s.clone();
    other.image = format!("{image}-other");
    assert!(matches!(t.engine.start(&other, &mut |_| {}), Err(EngineError::ImageChanged { .. })));
}

/// Holds the first engine; when dropped (test passed or not) it drops that engine, then
/// deletes the environment through a fresh one.
struct Adopt {
    first: Option<Engine>,
    opts: EngineOptions,
}

impl Drop for Adopt {
    fn drop(&mut self) {
        self.first.take();
        match Engine::open(self.opts.clone()) {
            Ok(engine) => {
                let _ = engine.delete("env_adopt");
            }
            Err(e) => eprintln!("cleanup: cannot reopen the engine: {e}"),
        }
    }
}

#[test]
fn a_new_engine_adopts_running_environments_after_the_old_one_died() {
    let (_registry, image, t) = setup();
    let data = t.data();
    let TestEngine { engine, dir: _dir, opts } = t;
    let mut adopt = Adopt { first: Some(engine), opts: opts.clone() };
    let a = adopt.first.as_ref().unwrap();
    a.start(&spec("env_adopt", &image), &mut |_| {}).unwrap();
    run_ok(a, "env_adopt", "echo before > /workspace/mark");
    assert!(matches!(Engine::open(opts.clone()), Err(EngineError::Locked(_))), "two engines on one data dir");
    let pid = running_pid(a, "env_adopt");

    // Like kill -9: no stop, no cleanup.
    adopt.first.take();
    // Its lock goes with its descriptor, but a process another test is forking at that moment
    // holds a copy until it execs: wait for that, not for a fixed time.
    let b = airlock_testkit::wait_for("the dead engine's lock to be released", Duration::from_secs(30), || Engine::open(opts.clone()));
    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, EnvStatus::Running { pid });
    assert!(listed[0].missing_mounts.is_empty(), "{:?}", listed[0].missing_mounts);
    assert_eq!(run_ok(&b, "env_adopt", "cat /workspace/mark; id -u"), "before\n0");
    b.stop("env_adopt").unwrap();
    b.start(&spec("env_adopt", &image), &mut |_| {}).unwrap();
    assert_eq!(run_ok(&b, "env_adopt", "cat /workspace/mark"), "before");
    b.delete("env_adopt").unwrap();
    b.delete("env_adopt").unwrap(); // idempotent
    assert!(b.list().unwrap().is_empty());
    assert_eq!(mounts_under(&data), Vec::<String>::new());
    assert!(fs::read_dir(data.join("slots")).unwrap().next().is_none(), "slot not freed");
    assert!(!data.join("envs/env_adopt").exists());
}

#[test]
fn a_terminal_session_has_a_pty_follows_resizes_and_reports_the_exit_status() {
    let (_registry, image, t) = setup();
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_tty", &image));
    let req = ExecRequest {
        command: None,
        env: vec![("GREETING".into(), "hello".into())],
        pty: Some(PtyRequest { term: "xterm-256color".into(), cols: 80, rows: 24 }),
    };
    let mut process = t.engine.exec("env_tty", &req).unwrap();
    let ExecIo::Pty { master } = process.io else { panic!("a pty was asked") };
    let mut terminal = fs::File::from(master);
    let reader = terminal.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = [0u8; 4096];
        // EIO once the other side is closed: the session ended.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let wait_until_seen = |what: &str, done: &dyn Fn(&str) -> bool, output: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(output) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => output.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("{what} never came; terminal output so far:\n{output}"),
            }
        }
    };
    let wait_for = |needle: &str, output: &mut String| wait_until_seen(&format!("`{needle}`"), &|o| o.contains(needle), output);
    // `h""i` prints `hi`, which the echoed command line does not contain.
    terminal.write_all(b"tty; echo h\"\"i $GREETING $TERM; stty size\n").unwrap();
    wait_for("24 80", &mut output);
    // The prompt again before the next line: typed earlier, it races the shell's return to
    // its line editor and the resize signal (under load the line was lost).
    wait_until_seen("the prompt after `24 80`", &|o| o.split("24 80").nth(1).is_some_and(|rest| rest.contains("# ")), &mut output);
    assert!(output.contains("\nhi hello xterm-256color"), "{output}");
    assert!(output.contains("/dev/pts/"), "{output}");

    let size = rustix::termios::Winsize { ws_row: 40, ws_col: 132, ws_xpixel: 0, ws_ypixel: 0 };
    // Takes effect at once: the ioctl sets the size `stty` reads back.
    rustix::termios::tcsetwinsize(&terminal, size).unwrap();
    terminal.write_all(b"stty size; exit 3\n").unwrap();
    wait_for("40 132", &mut output);
    let status = process.child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{output}");

    // Without a terminal, `command: None` is a login shell reading commands from stdin.
    let mut shell = t.engine.exec("env_tty", &ExecRequest::default()).unwrap();
    let ExecIo::Pipes { mut stdin, mut stdout, .. } = shell.io else { panic!("pipes expected") };
    stdin.write_all(b"echo login-$((40 + 2)) $0\nexit 0\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    assert!(shell.child.wait().unwrap().success());
    assert_eq!(out.trim(), "login-42 /bin/sh");
}

#[test]
fn the_image_user_runs_sessions_owns_the_workspace_and_gets_no_capabilities() {
    let registry = Registry::start();
    let mut parts = test_image();
    let mut config: serde_json::Value = serde_json::from_slice(&parts.config).unwrap();
    config["config"]["User"] = "dev".into();
    parts.config = serde_json::to_vec(&config).unwrap();
    parts.manifest = parts.make_manifest();
    let image = registry.push(&parts, "devcontainers/user:1");
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_user", &image));
    let out = run_ok(&t.engine, "env_user", "id -u; id -g; echo $HOME $USER; pwd; touch /workspace/mine && echo wrote; grep CapEff /proc/self/status");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "1000", "/home/dev dev", "/workspace", "wrote", "CapEff:\t0000000000000000"]);
    let host_uid = t.engine.host_uid("env_user").unwrap();
    assert_eq!(fs::metadata(t.engine.workspace_dir("env_user")).unwrap().uid(), host_uid + 1000);
}
