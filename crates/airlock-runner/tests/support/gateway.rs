//! The SSH gateway on the real engine, for tests that connect with stock OpenSSH clients.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_ssh_gateway::config::{self, SshEntry};
use airlock_ssh_gateway::{
    bind, ConnectionEvent, ExecProcess, ExecRequest, GatewayConfig, SessionBackend,
};
use airlock_testkit::wait_for;

use super::TestEngine;

/// The gateway on the real engine, every environment open to one key (as the agent's backend
/// does, without a control plane).
pub struct EngineBackend {
    pub t: Arc<TestEngine>,
    pub key: String,
    pub events: Mutex<Vec<ConnectionEvent>>,
}

impl SessionBackend for EngineBackend {
    fn authorized_keys(&self, _env_id: &str) -> Option<Vec<String>> {
        Some(vec![self.key.clone()])
    }
    fn spawn(&self, env_id: &str, req: &ExecRequest) -> std::io::Result<ExecProcess> {
        self.t
            .engine
            .exec(env_id, req)
            .map_err(std::io::Error::other)
    }
    fn connect_loopback(
        &self,
        env_id: &str,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<std::net::TcpStream> {
        self.t
            .engine
            .connect_loopback(env_id, addr)
            .map_err(std::io::Error::other)
    }
    fn record(&self, event: ConnectionEvent) {
        self.events.lock().unwrap().push(event);
    }
}

/// A gateway into real environments with one key allowed everywhere, and the client config
/// `config::write_files` renders for `envs`.
pub struct EngineGateway {
    _dir: tempfile::TempDir,
    pub gateway: airlock_ssh_gateway::Gateway,
    pub backend: Arc<EngineBackend>,
    pub files: config::SshFiles,
}

impl EngineGateway {
    pub fn start(
        t: &Arc<TestEngine>,
        runtime: &tokio::runtime::Runtime,
        envs: &[&str],
        max_connections: usize,
    ) -> EngineGateway {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let mut cfg = GatewayConfig::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            dir.path().join("host_key"),
        );
        cfg.auth_rejection_time = Duration::from_millis(50);
        cfg.max_connections = max_connections;
        let backend = Arc::new(EngineBackend {
            t: t.clone(),
            key: public,
            events: Mutex::default(),
        });
        let gateway = runtime.block_on(bind(cfg, backend.clone())).unwrap();
        let entries: Vec<SshEntry> = envs
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
        EngineGateway {
            _dir: dir,
            gateway,
            backend,
            files,
        }
    }
}

/// Waits for a client with a deadline and returns its output.
pub fn finished(child: &mut Child, what: &str) -> Output {
    wait_for(what, Duration::from_secs(20), || {
        child.try_wait().unwrap().ok_or("still running")
    });
    let mut out = Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut out.stdout).unwrap();
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut out.stderr).unwrap();
    out
}

/// Kills the ssh clients a failing test leaves behind.
pub struct Clients(pub Vec<Child>);

impl Drop for Clients {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
