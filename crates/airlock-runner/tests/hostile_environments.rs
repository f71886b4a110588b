//! What an environment's own root can do to the runner, with real runc: its files are read by
//! the host only as bounded regular files (issue 14, finding 3).

mod support;

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use airlock_ssh_gateway::{ConnectionEvent, ConnectionEventKind, SessionExit};
use airlock_testkit::wait_for;
use support::gateway::*;
use support::*;

/// If a reader is stuck opening the FIFO (the behaviour this test guards against), a writer
/// opening it lets that reader go, so that a failing test still ends and cleans up.
struct UnblockFifo(PathBuf);

impl Drop for UnblockFifo {
    fn drop(&mut self) {
        let _ = fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&self.0);
    }
}

fn ssh(config: &Path, env: &str, command: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .arg(format!("{env}.airlock.environment"))
        .arg(command)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Finding 3: a FIFO at /etc/passwd used to block the host thread resolving the session user
/// forever; a few such logins held every gateway connection slot, so nobody could log into any
/// environment. Now the login fails at once with the reason, and other environments work.
#[test]
fn a_fifo_at_etc_passwd_fails_that_login_fast_and_never_stalls_the_gateway() {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "devcontainers/test:1");
    let t = Arc::new(TestEngine::new(&registry.addr));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_fifo", &image));
    guard.start(&spec("env_fine", &image));

    // Two slots: two stuck logins would be enough to lock everyone out.
    let gw = EngineGateway::start(&t, &runtime, &["env_fifo", "env_fine"], 2);
    let (backend, files) = (&gw.backend, &gw.files);
    assert_eq!(String::from_utf8_lossy(&finished(&mut ssh(&files.config, "env_fine", "echo up").spawn().unwrap(), "a first login").stdout), "up\n");

    // As root inside the environment: replace /etc/passwd with a named pipe nobody writes.
    run_ok(&t.engine, "env_fifo", "rm /etc/passwd && mkfifo /etc/passwd && test -p /etc/passwd");
    let _unblock = UnblockFifo(t.data().join("envs/env_fifo/rootfs/etc/passwd"));

    let mut clients = Clients((0..2).map(|_| ssh(&files.config, "env_fifo", "true").spawn().unwrap()).collect());
    for c in &mut clients.0 {
        let out = finished(c, "a login to the environment with the FIFO to fail (not hang)");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // OpenSSH's words for the gateway's refusal of the channel.
        assert!(stderr.contains("exec request failed"), "{stderr}");
    }
    // The reason, in the session record the runner audits and logs.
    let reasons: Vec<String> = backend
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            ConnectionEventKind::SessionEnded { exit: SessionExit::SpawnFailed(reason), .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    for reason in &reasons {
        assert!(reason.contains("/etc/passwd in the environment is a FIFO (named pipe), not a regular file"), "{reason}");
    }

    // Every slot is free again: the other environment is reachable, more than twice over.
    for _ in 0..3 {
        let out = finished(&mut ssh(&files.config, "env_fine", "echo still-up").spawn().unwrap(), "a login to the other environment");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "still-up\n", "{}", String::from_utf8_lossy(&out.stderr));
    }
    runtime.block_on(gw.gateway.shutdown());
}

/// `ssh -W 127.0.0.1:PORT` into `env` with an HTTP request on stdin.
fn http_over_stdio_forward(config: &Path, env: &str, port: u16) -> Output {
    let mut child = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=INFO", "-W", &format!("127.0.0.1:{port}")])
        .arg(format!("{env}.airlock.environment"))
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"GET /hello.txt HTTP/1.0\r\n\r\n");
    drop(child.stdin.take());
    finished(&mut child, "an ssh -W client")
}

/// IDE traffic into real environments: a forward reaches a server on the environment's own
/// loopback (entered through its network namespace), never another environment's; sftp into
/// an image without sftp-server says what to add.
#[test]
fn forwards_reach_only_their_own_environment() {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "devcontainers/test:1");
    let t = Arc::new(TestEngine::new(&registry.addr));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_web", &image));
    guard.start(&spec("env_other", &image));
    for (env, port, text) in [("env_web", 8080, "served inside env_web"), ("env_other", 9090, "secret of env_other")] {
        run_ok(&t.engine, env, &format!("mkdir -p /tmp/www && echo '{text}' > /tmp/www/hello.txt && busybox httpd -p 127.0.0.1:{port} -h /tmp/www"));
    }
    let gw = EngineGateway::start(&t, &runtime, &["env_web", "env_other"], 16);

    let out = http_over_stdio_forward(&gw.files.config, "env_web", 8080);
    assert!(String::from_utf8_lossy(&out.stdout).contains("served inside env_web"), "{out:?}");
    // env_other's server, from env_web: its loopback is not env_web's.
    let out = http_over_stdio_forward(&gw.files.config, "env_web", 9090);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret"), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("open failed"), "{out:?}");
    // Its own owner reaches it.
    let out = http_over_stdio_forward(&gw.files.config, "env_other", 9090);
    assert!(String::from_utf8_lossy(&out.stdout).contains("secret of env_other"), "{out:?}");

    // The busybox image has no sftp-server: the client is told what to add.
    let mut sftp = Command::new("sftp")
        .arg("-F")
        .arg(&gw.files.config)
        .args(["-o", "BatchMode=yes", "-b", "-", "env_web.airlock.environment"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finished(&mut sftp, "sftp into an image without sftp-server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("this environment has no sftp-server") && stderr.contains("openssh-sftp-server"), "{stderr}");

    let events = backend_events_when(&gw.backend, |ev| ev.iter().filter(|e| matches!(e.kind, ConnectionEventKind::ForwardEnded { .. })).count() >= 2);
    assert!(events.iter().any(|e| e.env_id.as_deref() == Some("env_web")
        && matches!(&e.kind, ConnectionEventKind::ForwardEnded { port: 8080, bytes_out, .. } if *bytes_out > 0)), "{events:#?}");
    assert!(events.iter().any(|e| e.env_id.as_deref() == Some("env_web")
        && matches!(&e.kind, ConnectionEventKind::ForwardFailed { port: 9090, .. })), "{events:#?}");
    runtime.block_on(gw.gateway.shutdown());
}

/// The backend's records once `ready` holds for them.
fn backend_events_when(backend: &EngineBackend, ready: impl Fn(&[ConnectionEvent]) -> bool) -> Vec<ConnectionEvent> {
    wait_for("the gateway's records", Duration::from_secs(10), || {
        let events = backend.events.lock().unwrap().clone();
        if ready(&events) { Ok(events) } else { Err(events.len()) }
    })
}

// ---------------------------------------------------------------------------------------------
// Finding 4: the seccomp allow-list, seen from inside a real environment.

/// `crates/airlock-runner/tests/support/seccomp_probe.c`, built static for the environment.
fn probe_binary(dir: &Path) -> Vec<u8> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/seccomp_probe.c");
    let out = dir.join("probe");
    let built = Command::new("gcc").args(["-static", "-O1", "-pthread", "-o"]).arg(&out).arg(&source).output().expect("gcc is missing (apt-get install gcc libc6-dev)");
    assert!(built.status.success(), "gcc: {}", String::from_utf8_lossy(&built.stderr));
    fs::read(out).unwrap()
}

/// Runs the probe for `probes` inside `env`; returns what each one answered.
fn probe(engine: &airlock_runner::engine::Engine, env: &str, probes: &[&str]) -> Vec<(String, String)> {
    let out = run_ok(engine, env, &format!("/usr/local/bin/probe {}", probes.join(" ")));
    out.lines().map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).unwrap()).collect()
}

/// Every family the profile exists to block, one probe each, answered inside a real runc
/// environment with the error the profile gives (EPERM; ENOSYS for clone3 so libc falls back).
#[test]
fn seccomp_refuses_namespaces_mounts_and_kernel_interfaces_inside_an_environment() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = LayerBuilder::default().dir("usr", 0o755, 0).dir("usr/local", 0o755, 0).dir("usr/local/bin", 0o755, 0).dir("mnt", 0o755, 0).file(
        "usr/local/bin/probe",
        &probe_binary(dir.path()),
        0o755,
        0,
    );
    let image = registry.push(&ImageParts::new(vec![busybox_layer().tar(), extra.tar()]), "devcontainers/probe:1");
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_seccomp", &image));

    let expected: &[(&str, &str)] = &[
        ("unshare-user", "EPERM"),
        ("unshare-net", "EPERM"),
        ("unshare-mount", "EPERM"),
        ("clone-newuser", "EPERM"),
        ("clone-newpid", "EPERM"),
        ("clone-newnet", "EPERM"),
        ("clone3", "ENOSYS"),
        ("setns", "EPERM"),
        ("mount", "EPERM"),
        ("umount", "EPERM"),
        ("pivot_root", "EPERM"),
        ("fsopen", "EPERM"),
        ("fsmount", "EPERM"),
        ("fspick", "EPERM"),
        ("open_tree", "EPERM"),
        ("move_mount", "EPERM"),
        ("keyctl", "EPERM"),
        ("add_key", "EPERM"),
        ("bpf", "EPERM"),
        ("perf_event_open", "EPERM"),
        ("userfaultfd", "EPERM"),
        ("io_uring_setup", "EPERM"),
        ("init_module", "EPERM"),
        ("kexec_load", "EPERM"),
        ("sethostname", "EPERM"),
        ("socket-vsock", "EPERM"),
        ("personality-no-aslr", "EPERM"),
    ];
    let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    let got = probe(&t.engine, "env_seccomp", &names);
    let wrong: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|((_, want), (_, answer))| want != answer)
        .map(|((name, want), (_, answer))| format!("{name}: wanted {want}, got {answer}"))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    assert!(wrong.is_empty(), "inside the environment:\n{}", wrong.join("\n"));

    // The stock tools say so too: no user namespace, no network namespace.
    for command in ["busybox unshare -Ur true", "busybox unshare -n true", "busybox unshare -m true"] {
        let (code, _, err) = run(&t.engine, "env_seccomp", command);
        assert!(code != 0 && err.contains("Operation not permitted"), "`{command}` exited {code}: {err}");
    }
}

/// What developer tools need still works under the profile: processes, threads (glibc falls
/// back from clone3), loopback sockets, event loops, JIT memory, debuggers on own children; a
/// busybox pipeline; git; Node.js (the host's, copied in with its libraries).
#[test]
fn developer_tools_still_work_under_the_seccomp_profile() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let mut dirs = std::collections::BTreeSet::from(["bin".to_string(), "etc".to_string(), "tmp".to_string()]);
    let mut tools = LayerBuilder::default();
    for d in ["usr", "usr/local", "usr/local/bin"] {
        dirs.insert(d.to_string());
        tools = tools.dir(d, 0o755, 0);
    }
    tools = tools.file("usr/local/bin/probe", &probe_binary(dir.path()), 0o755, 0);
    let git = String::from_utf8(Command::new("sh").args(["-c", "command -v git"]).output().unwrap().stdout).unwrap();
    let node = String::from_utf8(Command::new("sh").args(["-c", "command -v node"]).output().unwrap().stdout).unwrap();
    assert!(!git.trim().is_empty() && !node.trim().is_empty(), "this test copies the host's git and node into its image: install both");
    tools = with_host_program(tools, git.trim(), &mut dirs);
    tools = with_host_program(tools, node.trim(), &mut dirs);
    let image = registry.push(&ImageParts::uncompressed(vec![busybox_layer().tar(), tools.tar()]), "devcontainers/tools:1");
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    guard.start(&spec("env_tools", &image));
    let env = "env_tools";

    let allowed = ["fork-exec", "posix_spawn", "threads", "loopback-tcp", "event-loop", "jit-memory", "memfd", "getrandom", "mkfifo", "ptrace-own-child"];
    let got = probe(&t.engine, env, &allowed);
    let wrong: Vec<_> = got.iter().filter(|(_, answer)| answer != "ok").collect();
    assert!(got.len() == allowed.len() && wrong.is_empty(), "{got:?}");

    assert_eq!(run_ok(&t.engine, env, "busybox seq 1 1000 | busybox awk '{ s += $1 } END { print s }' | busybox sed 's/^/sum=/'"), "sum=500500");
    assert_eq!(run_ok(&t.engine, env, "busybox tar -cf - -C / etc | busybox gzip | busybox gzip -d | busybox tar -tf - | grep -c passwd"), "1");
    let log = run_ok(
        &t.engine,
        env,
        "cd /workspace && git init -q repo 2>/dev/null && cd repo && echo hello > README && git add README && \
         git -c user.name=dev -c user.email=dev@acme.internal commit -qm first && git log --format=%s && git status --porcelain | wc -l",
    );
    assert_eq!(log, "first\n0");
    let js = r#"const net = require('net'), cp = require('child_process'), crypto = require('crypto'), { Worker } = require('worker_threads');
const spawned = cp.execFileSync('/bin/echo', ['spawned']).toString().trim();
new Worker('require("worker_threads").parentPort.postMessage(6 * 7)', { eval: true }).on('message', (n) => {
  const server = net.createServer((c) => c.end('pong')).listen(0, '127.0.0.1', () => {
    net.connect(server.address().port, '127.0.0.1').on('data', (d) => {
      console.log(spawned, n, d.toString(), crypto.createHash('sha256').update('a').digest('hex').slice(0, 8));
      server.close();
    });
  });
});"#;
    fs::write(t.engine.workspace_dir(env).join("probe.js"), js).unwrap();
    assert_eq!(run_ok(&t.engine, env, "node /workspace/probe.js"), "spawned 42 pong ca978112");
}
