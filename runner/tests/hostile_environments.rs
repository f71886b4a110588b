//! What an environment's own root can do to the runner, with real runc: its files are read by
//! the host only as bounded regular files (issue 14, finding 3).

mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_runner::exec::{ExecProcess, ExecRequest};
use airlock_runner::ssh::config::{self, SshEntry};
use airlock_runner::ssh::{bind, ConnectionEvent, ConnectionEventKind, GatewayConfig, SessionBackend, SessionExit};
use airlock_testkit::wait_for;
use support::*;

/// The gateway on the real engine, every environment open to one key (as the agent's backend
/// does, without a control plane).
struct EngineBackend {
    t: Arc<TestEngine>,
    key: String,
    events: Mutex<Vec<ConnectionEvent>>,
}

impl SessionBackend for EngineBackend {
    fn authorized_keys(&self, _env_id: &str) -> Option<Vec<String>> {
        Some(vec![self.key.clone()])
    }
    fn spawn(&self, env_id: &str, req: &ExecRequest) -> std::io::Result<ExecProcess> {
        self.t.engine.exec(env_id, req).map_err(std::io::Error::other)
    }
    fn record(&self, event: ConnectionEvent) {
        self.events.lock().unwrap().push(event);
    }
}

/// If a reader is stuck opening the FIFO (the behaviour this test guards against), a writer
/// opening it lets that reader go, so that a failing test still ends and cleans up.
struct UnblockFifo(PathBuf);

impl Drop for UnblockFifo {
    fn drop(&mut self) {
        let _ = fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&self.0);
    }
}

/// Kills the ssh clients a failing test leaves behind.
struct Clients(Vec<Child>);

impl Drop for Clients {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
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

/// Waits for a client with a deadline and returns its output.
fn finished(child: &mut Child, what: &str) -> Output {
    wait_for(what, Duration::from_secs(20), || child.try_wait().unwrap().ok_or("still running"));
    let mut out = Output { status: child.wait().unwrap(), stdout: Vec::new(), stderr: Vec::new() };
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut out.stdout).unwrap();
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut out.stderr).unwrap();
    out
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

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_string();
    let mut cfg = GatewayConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), dir.path().join("host_key"));
    cfg.auth_rejection_time = Duration::from_millis(50);
    // Two slots: two stuck logins would be enough to lock everyone out.
    cfg.max_connections = 2;
    let backend = Arc::new(EngineBackend { t: t.clone(), key: public, events: Mutex::default() });
    let gateway = runtime.block_on(bind(cfg, backend.clone())).unwrap();
    let entries: Vec<SshEntry> = ["env_fifo", "env_fine"]
        .iter()
        .map(|env| SshEntry {
            env_id: env.to_string(),
            env_name: env.to_string(),
            host: "127.0.0.1".into(),
            port: gateway.local_addr().port(),
            host_key: gateway.host_public_key_openssh(),
        })
        .collect();
    let files = config::write_files(&dir.path().join("ssh"), &entries, Some(&key)).unwrap();
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
    runtime.block_on(gateway.shutdown());
}
