//! What IDEs need from the gateway: forwards to the environment's own loopback (and nowhere
//! else), SFTP and scp, all recorded; a withdrawn key loses its forwards too.
//!
//! Each "environment" here has a network namespace of its own, made with `unshare -n` (runc
//! gives real environments one the same way: only `lo`), with busybox `httpd` listening on
//! its loopback.

use std::io::Write;

use airlock_testkit::{wait_for, wait_until};

use super::*;

/// A network namespace standing in for an environment's: held by a `sleep`, `lo` up.
struct Netns {
    holder: Child,
    servers: Vec<Child>,
}

impl Netns {
    fn new() -> Netns {
        let holder = Command::new("unshare")
            .args(["--net", "sh", "-c", "ip link set lo up && exec sleep 600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare runs");
        let pid = holder.id();
        wait_until("the test namespace's lo to be up", Duration::from_secs(10), || {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        Netns {
            holder,
            servers: Vec::new(),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// Serves `dir` with busybox httpd on the namespace's 127.0.0.1:`port`.
    fn serve(&mut self, dir: &Path, port: u16) {
        let server = Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(["busybox", "httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(dir)
            .stdin(Stdio::null())
            .spawn()
            .expect("nsenter runs");
        self.servers.push(server);
        let ns = self.path();
        wait_for("httpd to listen in the test namespace", Duration::from_secs(10), || {
            connect_in_netns(&ns, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(1))
        });
    }

    /// Established TCP connections to `port` inside the namespace.
    fn established_to(&self, port: u16) -> usize {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(["ss", "-Htn", "state", "established", &format!("( sport = :{port} )")])
            .output()
            .expect("ss runs");
        text(&out.stdout).lines().count()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in self.servers.iter_mut().chain([&mut self.holder]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The runner host's own (non-loopback) address, as a site network would reach it.
pub(super) fn host_address() -> String {
    let out = Command::new("hostname").arg("-I").output().ok();
    out.and_then(|o| text(&o.stdout).split_whitespace().next().map(str::to_owned))
        // TEST-NET-1: stands for the site network when the host has no global address.
        .unwrap_or_else(|| "192.0.2.10".into())
}

fn free_local_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn random_file(path: &Path, len: usize) {
    let mut data = vec![0u8; len];
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut data).unwrap();
    fs::write(path, data).unwrap();
}

impl Fixture {
    /// Gives `env` a network namespace of its own, serving `dir` on its 127.0.0.1:`port`.
    fn environment_network(&self, env: &str, dir: &Path, port: u16) -> Netns {
        let mut ns = Netns::new();
        ns.serve(dir, port);
        self.backend.netns.lock().unwrap().insert(env.into(), ns.path());
        ns
    }

    /// `ssh -W host:port` with `request` on stdin.
    async fn stdio_forward(&self, cfg: &Path, env: &str, dest: &str, request: &str) -> Output {
        let mut cmd = self.openssh_logging("ssh", cfg, "INFO");
        cmd.args(["-W", dest, &format!("{env}.airlock.environment")]);
        let request = request.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            // The server answers once the request is complete; a failed forward closes stdin.
            let _ = child.stdin.take().unwrap().write_all(request.as_bytes());
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    /// `ssh -N -L 127.0.0.1:PORT:dest env`, returning the client and its local port.
    fn local_forward(&self, cfg: &Path, env: &str, dest: &str) -> (Child, u16) {
        let port = free_local_port();
        let child = self
            .ssh(cfg)
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L", &format!("127.0.0.1:{port}:{dest}")])
            .arg(format!("{env}.airlock.environment"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (child, port)
    }
}

const GET_HELLO: &str = "GET /hello.txt HTTP/1.0\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_reach_only_the_environments_loopback() {
    let fx = Fixture::new().await;
    let alice = fx.config_for(&fx.alice);
    let bob = fx.config_for(&fx.bob);
    let www_a = fx.dir.path().join("www-a");
    let www_b = fx.dir.path().join("www-b");
    fs::create_dir_all(&www_a).unwrap();
    fs::create_dir_all(&www_b).unwrap();
    fs::write(www_a.join("hello.txt"), "hello from env_a\n").unwrap();
    random_file(&www_a.join("big.bin"), 2_000_000);
    fs::write(www_b.join("hello.txt"), "env_b's own server\n").unwrap();
    let _net_a = fx.environment_network("env_a", &www_a, 8080);
    let _net_b = fx.environment_network("env_b", &www_b, 9090);
    // A server in the runner host's own namespace, on every address, loopback included.
    let host_server = TcpListener::bind("0.0.0.0:0").unwrap();
    host_server.set_nonblocking(true).unwrap();
    let host_port = host_server.local_addr().unwrap().port();

    // ssh -L to the environment's loopback, and curl through it.
    let (mut tunnel, local) = fx.local_forward(&alice, "env_a", "localhost:8080");
    let downloaded = fx.dir.path().join("big.downloaded");
    let url = format!("http://127.0.0.1:{local}/big.bin");
    let out_path = downloaded.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("curl through ssh -L", Duration::from_secs(15), || {
            let out = Command::new("curl").args(["-sSf", "--max-time", "10", "-o"]).arg(&out_path).arg(&url).output().unwrap();
            if out.status.success() { Ok(()) } else { Err(text(&out.stderr)) }
        })
    })
    .await
    .unwrap();
    assert_eq!(sha256_of(&downloaded), sha256_of(&www_a.join("big.bin")));
    let _ = tunnel.kill();
    let _ = tunnel.wait();

    // ssh -W to the environment's loopback.
    let out = fx.stdio_forward(&alice, "env_a", "127.0.0.1:8080", GET_HELLO).await;
    assert!(text(&out.stdout).contains("hello from env_a"), "{out:?}");

    // The runner host's address: refused before any connection is tried.
    let host_dest = format!("{}:{host_port}", host_address());
    let out = fx.stdio_forward(&alice, "env_a", &host_dest, GET_HELLO).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // 127.0.0.1 means the environment's loopback, never the runner's: the host's server on
    // that port is not reached.
    let out = fx.stdio_forward(&alice, "env_a", &format!("127.0.0.1:{host_port}"), GET_HELLO).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(text(&out.stderr).contains("open failed"), "{}", text(&out.stderr));
    assert!(
        matches!(host_server.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a forward reached the runner host's own server"
    );

    // Another environment's port is not reachable from env_a, though its owner reaches it.
    let out = fx.stdio_forward(&alice, "env_a", "127.0.0.1:9090", GET_HELLO).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(!text(&out.stdout).contains("env_b"), "{out:?}");
    let out = fx.stdio_forward(&bob, "env_b", "127.0.0.1:9090", GET_HELLO).await;
    assert!(text(&out.stdout).contains("env_b's own server"), "{out:?}");

    let events = fx
        .wait_for_events("the forwards' end records", |ev| {
            ev.iter().filter(|e| matches!(e.kind, ConnectionEventKind::ForwardEnded { .. })).count() >= 3
        })
        .await;
    let ended = |env: &str, want_host: &str, min_out: u64| {
        events.iter().any(|e| {
            e.env_id.as_deref() == Some(env)
                && matches!(&e.kind, ConnectionEventKind::ForwardEnded { host, bytes_in, bytes_out, .. }
                    if host == want_host && *bytes_in > 0 && *bytes_out >= min_out)
        })
    };
    assert!(ended("env_a", "localhost", 2_000_000), "{events:#?}");
    assert!(ended("env_a", "127.0.0.1", 17), "{events:#?}");
    assert!(ended("env_b", "127.0.0.1", 19), "{events:#?}");
    assert!(
        events.iter().any(|e| matches!(&e.kind, ConnectionEventKind::RequestRefused { request }
            if request.starts_with(&format!("direct-tcpip {host_dest}")))),
        "{events:#?}"
    );
    let failed = |env: &str, want_port: u16| {
        events.iter().any(|e| {
            e.env_id.as_deref() == Some(env)
                && e.key_fingerprint.as_deref() == Some(fx.alice.fingerprint.as_str())
                && matches!(&e.kind, ConnectionEventKind::ForwardFailed { port, .. } if *port == want_port)
        })
    };
    assert!(failed("env_a", host_port), "{events:#?}");
    assert!(failed("env_a", 9090), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_scp_round_trip() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    let dir = fx.dir.path();
    let local = dir.join("upload.bin");
    random_file(&local, 3_000_000);
    let remote = dir.join("remote");
    fs::create_dir_all(&remote).unwrap();
    let host = "env_a.airlock.environment";

    let batch = dir.join("batch");
    fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            local.display(),
            remote.join("via-sftp.bin").display(),
            remote.join("via-sftp.bin").display(),
            dir.join("back-via-sftp.bin").display()
        ),
    )
    .unwrap();
    let mut cmd = fx.openssh("sftp", &cfg);
    cmd.arg("-b").arg(&batch).arg(host);
    let out = output(cmd).await;
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(sha256_of(&remote.join("via-sftp.bin")), sha256_of(&local));
    assert_eq!(sha256_of(&dir.join("back-via-sftp.bin")), sha256_of(&local));

    // scp's default protocol is SFTP (no -O).
    let mut cmd = fx.openssh("scp", &cfg);
    cmd.arg(&local).arg(format!("{host}:{}", remote.join("via-scp.bin").display()));
    let out = output(cmd).await;
    assert!(out.status.success(), "scp up: {}", text(&out.stderr));
    let mut cmd = fx.openssh("scp", &cfg);
    cmd.arg(format!("{host}:{}", remote.join("via-scp.bin").display())).arg(dir.join("back-via-scp.bin"));
    let out = output(cmd).await;
    assert!(out.status.success(), "scp down: {}", text(&out.stderr));
    assert_eq!(sha256_of(&dir.join("back-via-scp.bin")), sha256_of(&local));

    // One record per file session, named as the subsystem, with its bytes.
    let events = fx
        .wait_for_events("three sftp sessions' end records", |ev| {
            ev.iter().filter(|e| matches!(e.kind, ConnectionEventKind::SessionEnded { .. })).count() >= 3
        })
        .await;
    let sftp_sessions = events
        .iter()
        .filter(|e| matches!(&e.kind, ConnectionEventKind::SessionStarted { command: Some(c), pty: false, .. } if c == "subsystem sftp"))
        .count();
    assert_eq!(sftp_sessions, 3, "{events:#?}");
    let moved_in: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ConnectionEventKind::SessionEnded { exit: SessionExit::Status(0), bytes_in, .. } => Some(*bytes_in),
            _ => None,
        })
        .collect();
    assert!(moved_in.iter().filter(|b| **b >= 3_000_000).count() >= 2, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_keys_close_open_forwards() {
    let fx = Fixture::new().await;
    let cfg = fx.config_for(&fx.alice);
    let www = fx.dir.path().join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("hello.txt"), "hello from env_a\n").unwrap();
    let net = fx.environment_network("env_a", &www, 8080);

    let (mut tunnel, local) = fx.local_forward(&cfg, "env_a", "127.0.0.1:8080");
    // An open connection through the tunnel: httpd waits for the rest of the request.
    let mut open = tokio::task::spawn_blocking(move || {
        wait_for("ssh -L to listen", Duration::from_secs(15), || TcpStream::connect(("127.0.0.1", local)))
    })
    .await
    .unwrap();
    open.write_all(b"GET /hello.txt HTTP/1.0\r\n").unwrap();
    let net = Arc::new(net);
    let watched = net.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the forwarded connection to be open in the environment", Duration::from_secs(10), || {
            watched.established_to(8080) > 0
        })
    })
    .await
    .unwrap();

    // The runner's next poll no longer lists alice's key for env_a.
    fx.backend.keys.lock().unwrap().insert("env_a".into(), vec![]);
    let closed = tokio::task::spawn_blocking(move || {
        open.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = Vec::new();
        // EOF (or a reset) once the gateway drops the connection; a timeout would be an error.
        match open.read_to_end(&mut buf) {
            Ok(_) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(buf),
            Err(e) => Err(e),
        }
    })
    .await
    .unwrap();
    let got = closed.expect("the forwarded connection is closed when access is withdrawn");
    assert!(got.is_empty(), "the request was never completed, yet: {:?}", text(&got));
    let events = fx
        .wait_for_events("access-withdrawn, the forward's end, connection-closed", |ev| {
            ev.iter().any(|e| e.kind == ConnectionEventKind::ConnectionClosed)
        })
        .await;
    assert!(events.iter().any(|e| e.kind == ConnectionEventKind::AccessWithdrawn), "{events:#?}");
    assert!(
        events.iter().any(|e| matches!(&e.kind, ConnectionEventKind::ForwardEnded { port: 8080, .. })),
        "{events:#?}"
    );
    let status = tokio::task::spawn_blocking(move || tunnel.wait().unwrap()).await.unwrap();
    assert!(!status.success());
}
