//! The SSH gateway driven by the stock OpenSSH client, through the config `write_files`
//! renders, against a backend that runs host processes (`sh -c`), with real ptys, and
//! connects forwards inside network namespaces the tests create (`unshare -n`).

#[path = "ssh_gateway/ide_traffic.rs"]
mod ide_traffic;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_ssh_gateway::config::{self, SshEntry};
use airlock_ssh_gateway::{
    bind, connect_in_netns, restore_default_signals, AuthRefusal, ConnectionEvent, ConnectionEventKind, ExecIo,
    ExecProcess, ExecRequest, Gateway, GatewayConfig, SessionBackend, SessionExit,
};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

// ---------------------------------------------------------------------------------------------
// A backend that runs commands on the host, like the runc driver would inside an environment.

#[derive(Default)]
struct HostBackend {
    keys: Mutex<HashMap<String, Vec<String>>>,
    /// Each environment's network namespace (`/proc/PID/ns/net`), where it has one.
    netns: Mutex<HashMap<String, PathBuf>>,
    events: Mutex<Vec<ConnectionEvent>>,
}

impl HostBackend {
    fn events(&self) -> Vec<ConnectionEvent> {
        self.events.lock().unwrap().clone()
    }
}

fn open_pty(cols: u16, rows: u16) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::termios::tcsetwinsize(
        &slave,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok((master, slave))
}

/// Runs `cmd` with `slave` as its controlling terminal and stdio.
fn spawn_on_pty(cmd: &mut Command, slave: OwnedFd) -> std::io::Result<Child> {
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            restore_default_signals()?;
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
            Ok(())
        });
    }
    cmd.spawn()
}

impl SessionBackend for HostBackend {
    fn authorized_keys(&self, env_id: &str) -> Option<Vec<String>> {
        self.keys.lock().unwrap().get(env_id).cloned()
    }

    fn spawn(&self, env_id: &str, req: &ExecRequest) -> std::io::Result<ExecProcess> {
        let mut cmd = Command::new("sh");
        if let Some(command) = &req.command {
            cmd.arg("-c").arg(command);
        }
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/tmp")
            .env("AIRLOCK_ENV", env_id);
        for (name, value) in &req.env {
            cmd.env(name, value);
        }
        match &req.pty {
            None => {
                // Own process group, as `runc exec` gives one: the gateway hangs up the group.
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0);
                // As the runc driver does (a test run under `nohup` ignores SIGHUP).
                // SAFETY: only async-signal-safe calls between fork and exec.
                unsafe { cmd.pre_exec(restore_default_signals) };
                let mut child = cmd.spawn()?;
                let io = ExecIo::Pipes {
                    stdin: child.stdin.take().unwrap(),
                    stdout: child.stdout.take().unwrap(),
                    stderr: child.stderr.take().unwrap(),
                };
                Ok(ExecProcess { child, io })
            }
            Some(pty) => {
                cmd.env("TERM", &pty.term);
                let (master, slave) = open_pty(pty.cols, pty.rows)?;
                let child = spawn_on_pty(&mut cmd, slave)?;
                // `cmd` still holds copies of the slave: drop them so the master sees EOF (EIO)
                // when the session's processes are gone.
                drop(cmd);
                Ok(ExecProcess {
                    child,
                    io: ExecIo::Pty { master },
                })
            }
        }
    }

    fn connect_loopback(&self, env_id: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let netns = self.netns.lock().unwrap().get(env_id).cloned();
        let netns = netns.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{env_id} has no network namespace"))
        })?;
        connect_in_netns(&netns, addr, Duration::from_secs(5))
    }

    fn record(&self, event: ConnectionEvent) {
        self.events.lock().unwrap().push(event);
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture: keys, a gateway, and configs written by `config::write_files`.

struct Key {
    private: PathBuf,
    public: String,
    fingerprint: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let private = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = fs::read_to_string(private.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned();
    let out = Command::new("ssh-keygen")
        .args(["-E", "sha256", "-lf"])
        .arg(private.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    Key {
        private,
        public,
        fingerprint,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    backend: Arc<HostBackend>,
    gateway: Gateway,
    alice: Key,
    bob: Key,
    mallory: Key,
}

fn gateway_config(host_key: &Path) -> GatewayConfig {
    let mut cfg = GatewayConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), host_key);
    cfg.auth_rejection_time = Duration::from_millis(50);
    // Long enough that a process which honours SIGHUP is gone before it on a loaded machine
    // (client_disconnect_kills_the_process tells the two apart), short enough to keep the
    // escalation case quick.
    cfg.kill_grace = Duration::from_secs(3);
    cfg
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let alice = keygen(dir.path(), "alice");
        let bob = keygen(dir.path(), "bob");
        let mallory = keygen(dir.path(), "mallory");
        let backend = Arc::new(HostBackend::default());
        {
            let mut keys = backend.keys.lock().unwrap();
            // A comment that differs from the key file's: only type and blob count.
            let alice_line = alice.public.replace(" alice", " alice@laptop");
            keys.insert("env_a".into(), vec!["# a comment line".into(), alice_line]);
            keys.insert("env_b".into(), vec![bob.public.clone()]);
        }
        let gateway = bind(
            gateway_config(&dir.path().join("host_ed25519")),
            backend.clone(),
        )
        .await
        .unwrap();
        Fixture {
            dir,
            backend,
            gateway,
            alice,
            bob,
            mallory,
        }
    }

    fn entries(&self, gateway: &Gateway) -> Vec<SshEntry> {
        ["env_a", "env_b", "env_nope"]
            .into_iter()
            .map(|env| SshEntry {
                env_id: env.into(),
                env_name: format!("backend-{env}"),
                host: gateway.local_addr().ip().to_string(),
                port: gateway.local_addr().port(),
                host_key: gateway.host_public_key_openssh(),
            })
            .collect()
    }

    /// Writes `DIR/ssh-<key>/{config,known_hosts}` for this identity; returns the config path.
    fn config_for(&self, key: &Key) -> PathBuf {
        let name = key.private.file_name().unwrap().to_str().unwrap();
        let files = config::write_files(
            &self.dir.path().join(format!("ssh-{name}")),
            &self.entries(&self.gateway),
            Some(&key.private),
        )
        .unwrap();
        files.config
    }

    fn ssh(&self, config: &Path) -> Command {
        self.openssh("ssh", config)
    }

    /// `program` (`ssh`, `sftp`, `scp`) with the config and non-interactive options.
    fn openssh(&self, program: &str, config: &Path) -> Command {
        self.openssh_logging(program, config, "ERROR")
    }

    /// As [`Fixture::openssh`], printing the client's messages from `level` up (`INFO`
    /// shows why a channel could not be opened).
    fn openssh_logging(&self, program: &str, config: &Path, level: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-F")
            .arg(config)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                &format!("LogLevel={level}"),
            ])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `remote` in env_a over `ssh -F cfg` and returns the running client with the
    /// first line its command printed.
    async fn start_and_read_line(&self, cfg: &Path, remote: &str) -> (Child, String) {
        let mut child = self
            .ssh(cfg)
            .args(["env_a.airlock.environment", remote])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        (child, line)
    }

    async fn wait_for_events(
        &self,
        what: &str,
        pred: impl Fn(&[ConnectionEvent]) -> bool,
    ) -> Vec<ConnectionEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.backend.events();
            if pred(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; events: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs a blocking command off the async runtime.
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("ssh runs"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_generated_config_and_strict_host_key_checking() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    let text_cfg = fs::read_to_string(&cfg).unwrap();
    assert!(text_cfg.contains("StrictHostKeyChecking yes"), "{text_cfg}");

    let mut cmd = fx.ssh(&cfg);
    cmd.arg("env_a.airlock.environment")
        .arg("echo hello; echo err >&2; exit 3");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(text(&out.stderr), "err\n");

    // env: locale variables pass, anything else is dropped.
    let mut cmd = fx.ssh(&cfg);
    cmd.args([
        "-o",
        "SetEnv=LC_AIRLOCK=yes EVIL=1",
        "env_a.airlock.environment",
    ])
    .arg(r#"echo "$LC_AIRLOCK-${EVIL:-unset}-$AIRLOCK_ENV""#);
    let out = output(cmd).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "yes-unset-env_a\n");

    // The same config with a different pinned key must fail: strict checking is really on.
    let other = tempfile::tempdir().unwrap();
    let imposter = bind(
        gateway_config(&other.path().join("host")),
        fx.backend.clone(),
    )
    .await
    .unwrap();
    let files = config::write_files(
        &other.path().join("ssh"),
        &fx.entries(&imposter)
            .into_iter()
            .map(|mut e| {
                e.host_key = fx.gateway.host_public_key_openssh();
                e
            })
            .collect::<Vec<_>>(),
        Some(&fx.alice.private),
    )
    .unwrap();
    let mut cmd = fx.ssh(&files.config);
    cmd.args(["env_a.airlock.environment", "true"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Host key verification failed"),
        "{}",
        text(&out.stderr)
    );
    imposter.shutdown().await;
}

/// The wildcard block carries the gateway and its pinned key: an environment started after
/// the config was written is reachable with no rerun, naming itself as the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_environment_needs_no_rerun() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    fx.backend.keys.lock().unwrap().insert("env_new".into(), vec![fx.alice.public.clone()]);
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["env_new@env_new.airlock.environment", "echo \"$AIRLOCK_ENV\""]);
    let out = output(cmd).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "env_new\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_stdin_and_stdout_stream_through() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    let input = fx.dir.path().join("input.bin");
    let mut data = vec![0u8; 5_000_000];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    fs::write(&input, &data).unwrap();
    let expected = sha256_of(&input);

    let mut cmd = fx.ssh(&cfg);
    cmd.args(["env_a.airlock.environment", "sha256sum"])
        .stdin(fs::File::open(&input).unwrap());
    let out = output(cmd).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).split_whitespace().next(),
        Some(expected.as_str())
    );

    // Both directions at once: the process only reads as fast as its output drains.
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["env_a.airlock.environment", "cat"])
        .stdin(fs::File::open(&input).unwrap());
    let out = output(cmd).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        out.stdout == data,
        "cat returned {} bytes, not the 5000000 sent",
        out.stdout.len()
    );

    // A process that reads nothing for a while: the gateway stops reading the socket once
    // 4 MiB are queued, then resumes; nothing is lost.
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["env_a.airlock.environment", "sleep 1; wc -c"])
        .stdin(fs::File::open(&input).unwrap());
    let out = output(cmd).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "5000000");

    let mut cmd = fx.ssh(&cfg);
    cmd.args([
        "env_a.airlock.environment",
        "head -c 20971520 /dev/zero; head -c 1048576 /dev/zero >&2",
    ]);
    let out = output(cmd).await;
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 20 << 20);
    assert_eq!(out.stderr.len(), 1 << 20);
    assert!(out.stdout.iter().all(|&b| b == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_their_audit_records() {
    let fx = Fixture::new().await;
    let denied = |out: &Output| {
        out.status.code() == Some(255)
            && text(&out.stderr).contains("Permission denied (publickey)")
    };

    // Positive control: bob may use env_b.
    let mut cmd = fx.ssh(&fx.config_for(&fx.bob));
    cmd.args(["env_b.airlock.environment", "echo ok"]);
    let out = output(cmd).await;
    assert_eq!(text(&out.stdout), "ok\n", "stderr: {}", text(&out.stderr));

    // A key nobody listed.
    let mut cmd = fx.ssh(&fx.config_for(&fx.mallory));
    cmd.args(["env_a.airlock.environment", "echo should-not-run"]);
    let out = output(cmd).await;
    assert!(denied(&out), "{out:?}");
    assert!(out.stdout.is_empty());

    // Alice's valid key, on bob's environment.
    let alice_cfg = fx.config_for(&fx.alice);
    let mut cmd = fx.ssh(&alice_cfg);
    cmd.args(["env_b.airlock.environment", "echo should-not-run"]);
    let out = output(cmd).await;
    assert!(denied(&out), "{out:?}");

    // An environment that does not exist.
    let mut cmd = fx.ssh(&alice_cfg);
    cmd.args(["env_nope.airlock.environment", "true"]);
    let out = output(cmd).await;
    assert!(denied(&out), "{out:?}");

    // Port forwarding anywhere but the environment's loopback: -W (direct-tcpip on the main
    // channel) to the runner host's own address, and -R (tcpip-forward).
    let target = format!("{}:22", ide_traffic::host_address());
    let mut cmd = fx.openssh_logging("ssh", &alice_cfg, "INFO");
    cmd.args(["-W", &target, "env_a.airlock.environment"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        text(&out.stderr).contains("administratively prohibited"),
        "{}",
        text(&out.stderr)
    );
    let mut cmd = fx.ssh(&alice_cfg);
    cmd.args([
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        "127.0.0.1:0:127.0.0.1:9",
        "env_a.airlock.environment",
    ]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        text(&out.stderr).contains("forwarding failed"),
        "{}",
        text(&out.stderr)
    );

    // -L: the client listens locally; a connection through it is refused by the gateway.
    let local_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut tunnel = fx
        .ssh(&alice_cfg)
        .args([
            "-N",
            "-L",
            &format!("127.0.0.1:{local_port}:{target}"),
            "env_a.airlock.environment",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", local_port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("ssh -L never listened: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        // Through a working tunnel the gateway's SSH banner would arrive here.
        let _ = stream.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    assert!(got.is_empty(), "the tunnel carried data: {:?}", text(&got));

    // Subsystems other than sftp are refused with an explanation.
    let mut cmd = fx.ssh(&alice_cfg);
    cmd.args(["-s", "env_a.airlock.environment", "netconf"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("not supported"),
        "{}",
        text(&out.stderr)
    );

    let events = fx
        .wait_for_events("the refused requests", |ev| {
            ev.iter()
                .filter(|e| matches!(&e.kind, ConnectionEventKind::RequestRefused { .. }))
                .count()
                >= 4
        })
        .await;
    let refused = |env: &str, fp: &str, reason: AuthRefusal| {
        events.iter().any(|e| {
            e.env_id.as_deref() == Some(env)
                && e.key_fingerprint.as_deref() == Some(fp)
                && e.kind == ConnectionEventKind::AuthRefused { reason }
                && e.peer.is_some_and(|p| p.ip().is_loopback())
        })
    };
    assert!(
        refused(
            "env_a",
            &fx.mallory.fingerprint,
            AuthRefusal::KeyNotAuthorized
        ),
        "{events:#?}"
    );
    assert!(
        refused(
            "env_b",
            &fx.alice.fingerprint,
            AuthRefusal::KeyNotAuthorized
        ),
        "{events:#?}"
    );
    assert!(
        refused(
            "env_nope",
            &fx.alice.fingerprint,
            AuthRefusal::UnknownEnvironment
        ),
        "{events:#?}"
    );
    let requests: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ConnectionEventKind::RequestRefused { request } => Some(request.as_str()),
            _ => None,
        })
        .collect();
    for wanted in ["direct-tcpip", "tcpip-forward", "subsystem netconf"] {
        assert!(
            requests.iter().any(|r| r.starts_with(wanted)),
            "{wanted} not in {requests:?}"
        );
    }
    // No process ran for the refused attempts.
    assert!(!events.iter().any(|e| matches!(&e.kind, ConnectionEventKind::SessionStarted { command: Some(c), .. } if c.contains("should-not-run"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_sessions() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);

    // Forced pty with stdin not a terminal: OpenSSH sends a 0x0 size, the gateway's default
    // (80x24) applies.
    let mut cmd = fx.ssh(&cfg);
    cmd.args([
        "-tt",
        "env_a.airlock.environment",
        "tty; stty size; echo TERM=$TERM",
    ]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{stdout:?}");
    assert_eq!(lines[1], "24 80", "{stdout:?}");

    // An interactive shell driven through stdin.
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["-tt", "env_a.airlock.environment"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"echo hi$((6*7))\nexit 5\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    // The terminal echoes the typed line (`hi$((6*7))`); `hi42` only appears if the shell ran
    // it (possibly after a prompt, when the input was echoed before the shell started).
    assert!(stdout.contains("hi42\r\n"), "{stdout:?}");
    assert_eq!(out.status.code(), Some(5), "{stdout:?}");

    // A real client terminal: its size goes in pty-req, and resizing it sends window-change.
    let (master, slave) = open_pty(100, 30).unwrap();
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["-tt", "env_a.airlock.environment"]).arg(
        "stty size; i=0; while [ $i -lt 100 ]; do s=$(stty size); \
         if [ \"$s\" != '30 100' ]; then echo \"resized to $s\"; exit 0; fi; i=$((i+1)); sleep 0.1; done; exit 1",
    );
    let mut child = spawn_on_pty(&mut cmd, slave).unwrap();
    drop(cmd);
    tokio::task::spawn_blocking(move || {
        let seen = Arc::new(Mutex::new(String::new()));
        let reader = {
            let seen = seen.clone();
            let mut file = fs::File::from(master.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Ends with EIO once ssh exits and no slave fd is left.
                while let Ok(n @ 1..) = file.read(&mut buf) {
                    seen.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        let wait_for = |needle: &str| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !seen.lock().unwrap().contains(needle) {
                assert!(
                    Instant::now() < deadline,
                    "no {needle:?} in {:?}",
                    seen.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for("30 100");
        // Like a user resizing the window: ssh gets SIGWINCH and sends window-change.
        rustix::termios::tcsetwinsize(
            &master,
            Winsize {
                ws_row: 40,
                ws_col: 120,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        wait_for("resized to 40 120");
        let status = child.wait().unwrap();
        assert!(status.success(), "{:?}", seen.lock().unwrap());
        drop(master);
        reader.join().unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_persists_across_restarts() {
    let fx = Fixture::new().await;
    let key_path = fx.dir.path().join("host_ed25519");
    let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(fs::read_to_string(&key_path)
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let fingerprint = fx.gateway.fingerprint();
    assert!(fingerprint.starts_with("SHA256:"));
    // OpenSSH computes the same fingerprint from the public key line.
    let pubfile = fx.dir.path().join("host.pub");
    fs::write(&pubfile, fx.gateway.host_public_key_openssh()).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-E", "sha256", "-lf"])
        .arg(&pubfile)
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout).split_whitespace().nth(1),
        Some(fingerprint.as_str())
    );

    let old_config = fx.config_for(&fx.alice);
    let old_known_hosts = old_config.with_file_name("known_hosts");
    let Fixture {
        dir,
        backend,
        gateway,
        alice,
        ..
    } = fx;
    gateway.shutdown().await;

    let restarted = bind(gateway_config(&key_path), backend.clone())
        .await
        .unwrap();
    assert_eq!(restarted.fingerprint(), fingerprint);

    // New port, old known_hosts file.
    let entries: Vec<SshEntry> = ["env_a"]
        .into_iter()
        .map(|env| SshEntry {
            env_id: env.into(),
            env_name: env.into(),
            host: "127.0.0.1".into(),
            port: restarted.local_addr().port(),
            host_key: restarted.host_public_key_openssh(),
        })
        .collect();
    let new_config = dir.path().join("restarted_config");
    fs::write(
        &new_config,
        config::render_config(&entries, Some(&alice.private), &old_known_hosts),
    )
    .unwrap();
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&new_config)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "env_a.airlock.environment",
            "echo again",
        ])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "again\n",
        "stderr: {}",
        text(&out.stderr)
    );
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_for_a_session() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    let command = "echo hello; echo err >&2; exit 3";
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["env_a.airlock.environment", command]);
    assert_eq!(output(cmd).await.status.code(), Some(3));
    let mut cmd = fx.ssh(&fx.config_for(&fx.mallory));
    cmd.args(["env_a.airlock.environment", "true"]);
    assert_eq!(output(cmd).await.status.code(), Some(255));
    let mut cmd = fx.ssh(&cfg);
    cmd.args(["env_a.airlock.environment", "kill -TERM $$"]);
    output(cmd).await;

    let events = fx
        .wait_for_events("three closed connections", |ev| {
            ev.iter()
                .filter(|e| e.kind == ConnectionEventKind::ConnectionClosed)
                .count()
                == 3
        })
        .await;
    let started = events
        .iter()
        .find(|e| matches!(&e.kind, ConnectionEventKind::SessionStarted { command: Some(c), pty: false, .. } if c == command))
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(started.env_id.as_deref(), Some("env_a"));
    assert_eq!(
        started.key_fingerprint.as_deref(),
        Some(fx.alice.fingerprint.as_str())
    );
    let of_conn: Vec<&ConnectionEvent> = events
        .iter()
        .filter(|e| e.connection_id == started.connection_id)
        .collect();
    assert!(
        matches!(of_conn[0].kind, ConnectionEventKind::AuthAccepted),
        "{of_conn:#?}"
    );
    assert!(
        of_conn.iter().any(|e| matches!(
            e.kind,
            ConnectionEventKind::SessionEnded {
                exit: SessionExit::Status(3),
                bytes_out: 10,
                bytes_in: 0,
                ..
            }
        )),
        "{of_conn:#?}"
    );
    assert_eq!(
        of_conn.last().unwrap().kind,
        ConnectionEventKind::ConnectionClosed
    );
    assert!(of_conn.windows(2).all(|w| w[0].time <= w[1].time));

    assert!(events.iter().any(|e| e.env_id.as_deref() == Some("env_a")
        && e.key_fingerprint.as_deref() == Some(fx.mallory.fingerprint.as_str())
        && e.kind
            == ConnectionEventKind::AuthRefused {
                reason: AuthRefusal::KeyNotAuthorized
            }));
    assert!(
        events.iter().any(|e| matches!(&e.kind,
        ConnectionEventKind::SessionEnded { exit: SessionExit::Signal(s), .. } if s == "TERM")),
        "{events:#?}"
    );
}

fn process_alive(pid: u32) -> bool {
    // Reaped processes vanish from /proc; a zombie would still count as alive here.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_kills_the_process() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    // The second command ignores SIGHUP: the gateway must escalate to SIGKILL, for the whole
    // process group.
    for remote in [
        "echo $$; exec sleep 1000",
        "trap '' HUP; sleep 1000 & echo $$ $!; wait",
    ] {
        let (mut child, line) = fx.start_and_read_line(&cfg, remote).await;
        let pids: Vec<u32> = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(
            !pids.is_empty() && pids.iter().all(|&p| process_alive(p)),
            "{line:?}"
        );
        // Abrupt client death: the TCP connection just closes.
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|&p| process_alive(p)) {
            assert!(
                Instant::now() < deadline,
                "remote processes {pids:?} still running after the client died"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let events = fx
        .wait_for_events("two ended sessions", |ev| {
            ev.iter()
                .filter(|e| matches!(e.kind, ConnectionEventKind::SessionEnded { .. }))
                .count()
                == 2
        })
        .await;
    let exits: Vec<&SessionExit> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ConnectionEventKind::SessionEnded { exit, .. } => Some(exit),
            _ => None,
        })
        .collect();
    assert_eq!(
        exits,
        [
            &SessionExit::Disconnected {
                status: None,
                signal: Some("HUP".into())
            },
            &SessionExit::Disconnected {
                status: None,
                signal: Some("KILL".into())
            },
        ]
    );
}

/// Runs `count` clients at once (with `options`), client `i` running `echo LABEL-i` after a
/// pause, and checks that each succeeded and printed its own line.
async fn clients_at_once(fx: &Fixture, cfg: &Path, options: &[String], label: &str, count: usize) {
    let clients: Vec<Child> = (0..count)
        .map(|i| {
            fx.ssh(cfg)
                .args(options)
                .args([
                    "env_a.airlock.environment",
                    &format!("sleep 0.3; echo {label}-{i}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        clients
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "{label} client {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{label}-{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_and_channels() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);

    clients_at_once(&fx, &cfg, &[], "client", 20).await;

    // Several channels on one connection: OpenSSH connection multiplexing.
    let control = fx.dir.path().join("cm");
    let mut master = fx
        .ssh(&cfg)
        .args(["-N", "-o", "ControlMaster=yes", "-o"])
        .arg(format!("ControlPath={}", control.display()))
        .arg("env_a.airlock.environment")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !control.exists() {
        assert!(
            Instant::now() < deadline,
            "the control master never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mux_options = [
        "-o".to_owned(),
        "ControlMaster=no".to_owned(),
        "-o".to_owned(),
        format!("ControlPath={}", control.display()),
    ];
    clients_at_once(&fx, &cfg, &mux_options, "mux", 5).await;
    let _ = master.kill();
    let _ = master.wait();

    let events = fx.backend.events();
    let mux_connections: std::collections::HashSet<u64> = events
        .iter()
        .filter(|e| matches!(&e.kind, ConnectionEventKind::SessionStarted { command: Some(c), .. } if c.contains("mux-")))
        .map(|e| e.connection_id)
        .collect();
    assert_eq!(
        mux_connections.len(),
        1,
        "the five sessions should share one connection"
    );
    let plain_connections: std::collections::HashSet<u64> = events
        .iter()
        .filter(|e| matches!(&e.kind, ConnectionEventKind::SessionStarted { command: Some(c), .. } if c.contains("client-")))
        .map(|e| e.connection_id)
        .collect();
    assert_eq!(plain_connections.len(), 20);
    fx.gateway.shutdown().await;
}

/// Finding 2: when a key stops being listed for an environment (its owner disabled or
/// deleted), open connections with it are closed and their processes hung up, and the
/// closing is recorded; new logins with it are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_keys_close_open_sessions() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    let (mut child, line) = fx.start_and_read_line(&cfg, "echo $$; exec sleep 1000").await;
    let pid: u32 = line.trim().parse().unwrap();
    assert!(process_alive(pid));

    // The runner's next poll no longer lists alice's key for env_a.
    fx.backend.keys.lock().unwrap().insert("env_a".into(), vec![]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the ssh session was not closed after its key was withdrawn");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "the remote process {pid} outlived its session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = fx
        .wait_for_events("access-withdrawn then connection-closed", |ev| {
            ev.iter().any(|e| e.kind == ConnectionEventKind::ConnectionClosed)
        })
        .await;
    let withdrawn = events
        .iter()
        .find(|e| e.kind == ConnectionEventKind::AccessWithdrawn)
        .expect("the closing is recorded");
    assert_eq!(withdrawn.env_id.as_deref(), Some("env_a"));
    assert_eq!(withdrawn.key_fingerprint.as_deref(), Some(fx.alice.fingerprint.as_str()));

    let again = output({
        let mut cmd = fx.ssh(&cfg);
        cmd.args(["env_a.airlock.environment", "true"]);
        cmd
    })
    .await;
    assert!(!again.status.success(), "a new login with the withdrawn key is refused");
}
