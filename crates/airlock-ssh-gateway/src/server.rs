//! The gateway's listener and its russh connection handler: authentication, channel requests,
//! and what is refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use russh::keys::{HashAlg, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{
    Channel, ChannelId, ChannelOpenFailure, ChannelWriteHalf, Disconnect, MethodKind, MethodSet,
    Pty, Sig, SshId,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::exec::{ExecRequest, PtyRequest};

use crate::backend::{AuthRefusal, ConnectionEvent, ConnectionEventKind, SessionBackend, SessionExit};
use crate::error::SshError;
use crate::forward::{self, ForwardTask};
use crate::host_key;
use crate::session::{self, Control, GatedStream, InputGate, PtyMaster, SessionTask, StdinSender};

/// Settings of the gateway. [`GatewayConfig::new`] gives sensible defaults for the rest.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen; port 0 lets the OS pick (see [`Gateway::local_addr`]).
    pub listen: SocketAddr,
    /// The ed25519 host key, created (mode 0600) on first start and reused afterwards.
    pub host_key_path: PathBuf,
    /// Every refused authentication takes at least this long, so that timing does not tell
    /// which environments exist.
    pub auth_rejection_time: Duration,
    /// A connection must authenticate within this time (like sshd's `LoginGraceTime`).
    pub login_grace_time: Duration,
    /// Keepalive probes after this much silence from the client; after `keepalive_max`
    /// unanswered probes the connection is dropped and its processes are hung up.
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
    /// How long a process gets to exit after SIGHUP (client gone) before SIGKILL.
    pub kill_grace: Duration,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// Session channels per connection (sshd's `MaxSessions`).
    pub max_sessions_per_connection: usize,
    /// Forwarded connections (`direct-tcpip` channels) open at once per connection; an IDE
    /// opens a few per window.
    pub max_forwards_per_connection: usize,
    /// How often an open connection checks that its key is still listed for its environment
    /// (a disabled or deleted user, a removed key); it is closed when not.
    pub access_recheck_interval: Duration,
}

impl GatewayConfig {
    pub fn new(listen: SocketAddr, host_key_path: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            host_key_path: host_key_path.into(),
            auth_rejection_time: Duration::from_millis(500),
            login_grace_time: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(30),
            keepalive_max: 4,
            kill_grace: Duration::from_secs(2),
            max_connections: 512,
            max_sessions_per_connection: 10,
            max_forwards_per_connection: 64,
            access_recheck_interval: Duration::from_secs(2),
        }
    }
}

/// A running gateway. Dropping it stops accepting and disconnects every client (hanging up
/// their processes) in the background; [`Gateway::shutdown`] does the same and waits.
pub struct Gateway {
    local_addr: SocketAddr,
    host_key: PublicKey,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host key as an OpenSSH public key line without comment: `ssh-ed25519 AAAA…`.
    pub fn host_public_key_openssh(&self) -> String {
        public_key_line(&self.host_key)
    }

    /// The host key's fingerprint as OpenSSH prints it: `SHA256:…`.
    pub fn fingerprint(&self) -> String {
        self.host_key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Stops listening, disconnects every client, hangs up their processes and waits until
    /// all of it is done.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn public_key_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// Starts the gateway: loads or creates the host key, binds the listener, and serves
/// connections on the current tokio runtime until shut down.
pub async fn bind(
    config: GatewayConfig,
    backend: Arc<dyn SessionBackend>,
) -> Result<Gateway, SshError> {
    let key_path = config.host_key_path.clone();
    let key = tokio::task::spawn_blocking(move || host_key::load_or_generate(&key_path))
        .await
        .map_err(|e| SshError::HostKeyRead {
            path: config.host_key_path.clone(),
            source: std::io::Error::other(e),
        })??;
    let host_key = key.public_key().clone();

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SshError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SshError::Bind {
        addr: config.listen,
        source,
    })?;

    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    let russh_config = russh::server::Config {
        server_id: SshId::Standard("SSH-2.0-airlock".into()),
        methods,
        auth_rejection_time: config.auth_rejection_time,
        // OpenSSH first probes with "none" to learn the methods: no reason to slow that down.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 6,
        // Idle interactive shells are legitimate; dead peers are found by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(config.keepalive_interval),
        keepalive_max: config.keepalive_max,
        nodelay: true,
        // The receive window per channel. russh re-opens it as soon as data arrives, so it
        // only bounds how much input one round trip can carry; kept moderate so a client can
        // get little ahead of the connection's input gate (see `session::InputGate`).
        window_size: 1 << 20,
        ..Default::default()
    };

    let shared = Arc::new(Shared {
        backend,
        russh: Arc::new(russh_config),
        config,
        next_connection: AtomicU64::new(1),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tracing::info!(addr = %local_addr, fingerprint = %host_key.fingerprint(HashAlg::Sha256), "SSH gateway listening");
    let task = tokio::spawn(accept_loop(listener, shared, shutdown_rx));
    Ok(Gateway {
        local_addr,
        host_key,
        shutdown: shutdown_tx,
        task: Some(task),
    })
}

struct Shared {
    backend: Arc<dyn SessionBackend>,
    russh: Arc<russh::server::Config>,
    config: GatewayConfig,
    next_connection: AtomicU64,
}

impl Shared {
    fn record(
        &self,
        conn: &ConnState,
        env_id: Option<String>,
        fingerprint: Option<String>,
        kind: ConnectionEventKind,
    ) {
        tracing::info!(
            connection = conn.id,
            peer = %conn.peer,
            env = env_id.as_deref().unwrap_or("-"),
            key = fingerprint.as_deref().unwrap_or("-"),
            "ssh {kind}"
        );
        self.backend.record(ConnectionEvent {
            time: SystemTime::now(),
            connection_id: conn.id,
            env_id,
            peer: Some(conn.peer),
            key_fingerprint: fingerprint,
            kind,
        });
    }
}

/// What a connection's handler shares with the task serving the connection.
struct ConnState {
    id: u64,
    peer: SocketAddr,
    authenticated: AtomicBool,
    /// (last environment asked for, key accepted), for the connection-closed record.
    identity: Mutex<(Option<String>, Option<String>)>,
    /// The environment and key the connection logged in with, to check they still match.
    access: Mutex<Option<(String, PublicKey)>>,
    /// The channels' tasks: the connection-closed record waits for them.
    sessions: Mutex<Vec<JoinHandle<()>>>,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    loop {
        tokio::select! {
            // Err: the `Gateway` is gone without a word; stop as well.
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "too many SSH connections; closing this one");
                        continue;
                    };
                    connections.spawn(serve_connection(stream, peer, shared.clone(), shutdown.clone(), permit));
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accepting an SSH connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    tracing::info!("SSH gateway stopped");
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let conn = Arc::new(ConnState {
        id: shared.next_connection.fetch_add(1, Ordering::Relaxed),
        peer,
        authenticated: AtomicBool::new(false),
        identity: Mutex::new((None, None)),
        access: Mutex::new(None),
        sessions: Mutex::new(Vec::new()),
    });
    tracing::debug!(connection = conn.id, %peer, "SSH connection");
    let gate = Arc::new(InputGate::default());
    let handler = ConnHandler {
        shared: shared.clone(),
        conn: conn.clone(),
        gate: gate.clone(),
        auth: None,
        channels: HashMap::new(),
    };
    let stream = GatedStream {
        inner: stream,
        gate,
    };
    let grace = shared.config.login_grace_time;
    let deadline = tokio::time::Instant::now() + grace;

    // The handshake has no timeout of its own (inactivity_timeout is off): bound it here.
    match tokio::time::timeout_at(
        deadline,
        russh::server::run_stream(shared.russh.clone(), stream, handler),
    )
    .await
    {
        Ok(Ok(running)) => {
            let handle = running.handle();
            tokio::pin!(running);
            let login_deadline = tokio::time::sleep_until(deadline);
            tokio::pin!(login_deadline);
            let mut login_checked = false;
            let mut recheck = tokio::time::interval(shared.config.access_recheck_interval);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let reason = loop {
                if *shutdown.borrow() {
                    break Some("the runner is shutting down");
                }
                tokio::select! {
                    result = &mut running => {
                        if let Err(e) = result {
                            tracing::debug!(connection = conn.id, error = %e, "SSH connection ended with an error");
                        }
                        break None;
                    }
                    _ = shutdown.changed() => {}
                    () = &mut login_deadline, if !login_checked => {
                        login_checked = true;
                        if !conn.authenticated.load(Ordering::Relaxed) {
                            break Some("authentication timeout");
                        }
                    }
                    _ = recheck.tick() => {
                        if !still_authorized(&shared, &conn).await {
                            let (env, key) = conn.identity.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            shared.record(&conn, env, key, ConnectionEventKind::AccessWithdrawn);
                            break Some("access withdrawn: this key may no longer log into this environment");
                        }
                    }
                }
            };
            if let Some(reason) = reason {
                let _ = handle
                    .disconnect(Disconnect::ByApplication, reason.into(), "en".into())
                    .await;
                if tokio::time::timeout(Duration::from_secs(5), &mut running)
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        connection = conn.id,
                        "SSH connection did not end after disconnect"
                    );
                }
            }
        }
        Ok(Err(e)) => tracing::debug!(connection = conn.id, error = %e, "SSH handshake failed"),
        Err(_) => tracing::debug!(connection = conn.id, "SSH handshake timed out"),
    }

    // The handler is gone now, which hung up its processes; wait for their session-ended
    // records so that connection-closed comes last.
    let sessions = std::mem::take(&mut *conn.sessions.lock().unwrap_or_else(|e| e.into_inner()));
    for task in sessions {
        let _ = task.await;
    }
    let (env, key) = conn
        .identity
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    shared.record(&conn, env, key, ConnectionEventKind::ConnectionClosed);
}

/// Whether the key the connection logged in with is still listed for its environment (true
/// before login: there is nothing to withdraw yet).
async fn still_authorized(shared: &Shared, conn: &ConnState) -> bool {
    let Some((env_id, key)) = conn.access.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return true;
    };
    let backend = shared.backend.clone();
    let listed = tokio::task::spawn_blocking(move || backend.authorized_keys(&env_id))
        .await
        .ok()
        .flatten();
    listed.is_some_and(|lines| lines.iter().any(|line| line_matches(line, &key)))
}

/// The authenticated identity of a connection.
#[derive(Clone)]
struct Authenticated {
    env_id: String,
    fingerprint: String,
}

/// One per connection; russh drops it when the connection ends, which drops every channel's
/// control sender and so hangs up every process still running.
struct ConnHandler {
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    gate: Arc<InputGate>,
    auth: Option<Authenticated>,
    channels: HashMap<ChannelId, ChannelState>,
}

struct ChannelState {
    /// A forwarded connection rather than a session.
    forward: bool,
    /// Until the process starts; then it belongs to the session task.
    writer: Option<ChannelWriteHalf<Msg>>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    /// The client sent EOF before starting a process.
    eof: bool,
    running: Option<Running>,
}

struct Running {
    /// `None` after the client's EOF.
    stdin: Option<StdinSender>,
    master: Option<Arc<PtyMaster>>,
    control: mpsc::UnboundedSender<Control>,
}

/// Environment ids are plain tokens; anything else is refused before asking the backend (and
/// never reaches a log line verbatim).
fn plausible_env_id(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 128
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Whether an authorized_keys line names `key` (type and blob; the comment is ignored).
/// Lines with options do not parse as a bare key and so never match (see `SessionBackend`).
fn line_matches(line: &str, key: &PublicKey) -> bool {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return false;
    }
    match PublicKey::from_openssh(line) {
        Ok(listed) => listed.key_data() == key.key_data(),
        Err(_) => {
            tracing::debug!(
                "ignoring an authorized key line that is not a plain OpenSSH public key"
            );
            false
        }
    }
}

fn reject() -> Auth {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Auth::Reject {
        proceed_with_methods: Some(methods),
        partial_success: false,
    }
}

impl ConnHandler {
    fn record(
        &self,
        env_id: Option<String>,
        fingerprint: Option<String>,
        kind: ConnectionEventKind,
    ) {
        self.shared.record(&self.conn, env_id, fingerprint, kind);
    }

    fn record_session(&self, kind: ConnectionEventKind) {
        let (env, key) = match &self.auth {
            Some(a) => (Some(a.env_id.clone()), Some(a.fingerprint.clone())),
            None => (None, None),
        };
        self.record(env, key, kind);
    }

    fn refuse_request(&self, request: String) {
        self.record_session(ConnectionEventKind::RequestRefused { request });
    }

    /// Refuses a channel the gateway never serves, and records it.
    async fn refuse_channel(&self, reply: ChannelOpenHandle, request: &str) {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        self.refuse_request(request.into());
    }

    fn note_user(&self, user: &str) {
        if plausible_env_id(user) {
            self.conn
                .identity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0 = Some(user.to_owned());
        }
    }

    async fn check_key(&self, user: &str, key: &PublicKey) -> Result<(), AuthRefusal> {
        if !plausible_env_id(user) {
            return Err(AuthRefusal::UnknownEnvironment);
        }
        let backend = self.shared.backend.clone();
        let env_id = user.to_owned();
        // The backend may consult files or the control plane's cache: keep it off the reactor.
        let listed = tokio::task::spawn_blocking(move || backend.authorized_keys(&env_id))
            .await
            .ok()
            .flatten();
        let Some(lines) = listed else {
            return Err(AuthRefusal::UnknownEnvironment);
        };
        if lines.iter().any(|line| line_matches(line, key)) {
            Ok(())
        } else {
            Err(AuthRefusal::KeyNotAuthorized)
        }
    }

    async fn auth_key(&mut self, user: &str, key: &PublicKey, verified: bool) -> Auth {
        self.note_user(user);
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let env = plausible_env_id(user).then(|| user.to_owned());
        match self.check_key(user, key).await {
            // Only the offer was checked: the client still has to prove it holds the key.
            Ok(()) if !verified => Auth::Accept,
            Ok(()) => {
                *self.conn.access.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((user.to_owned(), key.clone()));
                self.conn.authenticated.store(true, Ordering::Relaxed);
                self.conn
                    .identity
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .1 = Some(fingerprint.clone());
                self.auth = Some(Authenticated {
                    env_id: user.to_owned(),
                    fingerprint: fingerprint.clone(),
                });
                self.record(env, Some(fingerprint), ConnectionEventKind::AuthAccepted);
                Auth::Accept
            }
            Err(reason) => {
                self.record(
                    env,
                    Some(fingerprint),
                    ConnectionEventKind::AuthRefused { reason },
                );
                reject()
            }
        }
    }

    /// Starts the channel's process (`exec`, `shell` or a subsystem) and its session task.
    /// `recorded_as` replaces the command in the audit records (a subsystem's name).
    async fn start(
        &mut self,
        channel: ChannelId,
        command: Option<String>,
        recorded_as: Option<String>,
        session: &mut Session,
    ) -> Result<(), SshError> {
        let Some(auth) = self.auth.clone() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let Some(state) = self.channels.get_mut(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if state.running.is_some() || state.writer.is_none() {
            // One process per channel, as in RFC 4254 §6.5.
            session.channel_failure(channel)?;
            return Ok(());
        }
        let req = ExecRequest {
            command: command.clone(),
            env: state.env.clone(),
            pty: state.pty.clone(),
        };
        let pty = req.pty.is_some();
        let backend = self.shared.backend.clone();
        let env_id = auth.env_id.clone();
        // Spawning (`runc exec`) blocks for a while: off the reactor. The client waits for the
        // reply anyway, so awaiting here costs this connection nothing.
        let spawned = tokio::task::spawn_blocking(move || backend.spawn(&env_id, &req))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let prepared = spawned.and_then(|process| {
            session::prepare(process).map_err(|(mut child, e)| {
                // Nobody will ever read this process's output: do not leave it behind.
                let _ = child.kill();
                std::thread::spawn(move || child.wait());
                e
            })
        });
        let (child, io, master) = match prepared {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(env = %auth.env_id, error = %e, "could not start a process for an SSH session");
                let msg = format!(
                    "airlock: could not start a process in environment {}\r\n",
                    auth.env_id
                );
                session.extended_data(channel, 1, msg.into_bytes())?;
                session.channel_failure(channel)?;
                self.record_session(ConnectionEventKind::SessionEnded {
                    channel: channel_number(channel),
                    exit: SessionExit::SpawnFailed(e.to_string()),
                    bytes_in: 0,
                    bytes_out: 0,
                    duration: Duration::ZERO,
                });
                return Ok(());
            }
        };

        let (stdin_tx, stdin_rx) = session::stdin_queue(self.gate.clone());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let writer = state.writer.take().expect("checked above");
        state.running = Some(Running {
            stdin: (!state.eof).then_some(stdin_tx),
            master,
            control: control_tx,
        });
        session.channel_success(channel)?;
        self.record_session(ConnectionEventKind::SessionStarted {
            channel: channel_number(channel),
            command: recorded_as.or(command),
            pty,
        });
        let started = Instant::now();

        let task = SessionTask {
            channel,
            writer,
            handle: session.handle(),
            stdin: stdin_rx,
            control: control_rx,
            kill_grace: self.shared.config.kill_grace,
            child,
            io,
        };
        let shared = self.shared.clone();
        let conn = self.conn.clone();
        let join = tokio::spawn(async move {
            let outcome = session::run(task).await;
            shared.record(
                &conn,
                Some(auth.env_id),
                Some(auth.fingerprint),
                ConnectionEventKind::SessionEnded {
                    channel: channel_number(channel),
                    exit: outcome.exit,
                    bytes_in: outcome.bytes_in,
                    bytes_out: outcome.bytes_out,
                    duration: started.elapsed(),
                },
            );
        });
        self.track(join);
        Ok(())
    }

    /// Keeps a channel task so the connection-closed record waits for its end record.
    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.conn.sessions.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }

    /// Open channels of one kind: forwards or sessions.
    fn open_channels(&self, forward: bool) -> usize {
        self.channels.values().filter(|c| c.forward == forward).count()
    }

    /// A `direct-tcpip` request: refused unless it names the environment's loopback; then
    /// connected from inside the environment by the backend and served by a forward task.
    async fn open_forward(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        reply: ChannelOpenHandle,
    ) {
        let host: String = host.chars().filter(|c| !c.is_control()).take(255).collect();
        let Some(auth) = self.auth.clone() else {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return;
        };
        let Some(addr) = forward::loopback_destination(&host, port) else {
            // The runner host, the site network, another environment: never.
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            self.refuse_request(format!(
                "direct-tcpip {host}:{port} (only the environment's own loopback may be forwarded to)"
            ));
            return;
        };
        let port = addr.port();
        if self.open_channels(true) >= self.shared.config.max_forwards_per_connection {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            self.record_session(ConnectionEventKind::ForwardFailed {
                host,
                port,
                reason: "too many forwarded connections open on this SSH connection".into(),
            });
            return;
        }
        let backend = self.shared.backend.clone();
        let env_id = auth.env_id.clone();
        // Connecting on the environment's loopback is quick (accepted or refused at once);
        // the client waits for the reply anyway.
        let connected = tokio::task::spawn_blocking(move || {
            backend
                .connect_loopback(&env_id, addr)
                .and_then(|socket| socket.set_nodelay(true).map(|()| socket))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let socket = match connected {
            Ok(socket) => socket,
            Err(e) => {
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                self.record_session(ConnectionEventKind::ForwardFailed {
                    host,
                    port,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let id = channel.id();
        // As for sessions: client data arrives through `data`, into the input queue.
        let (_read, writer) = channel.split();
        let (input_tx, input_rx) = session::stdin_queue(self.gate.clone());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        self.channels.insert(
            id,
            ChannelState {
                forward: true,
                writer: None,
                pty: None,
                env: Vec::new(),
                eof: false,
                running: Some(Running {
                    stdin: Some(input_tx),
                    master: None,
                    control: control_tx,
                }),
            },
        );
        reply.accept().await;
        let task = ForwardTask {
            writer,
            input: input_rx,
            control: control_rx,
            socket,
        };
        let shared = self.shared.clone();
        let conn = self.conn.clone();
        let started = Instant::now();
        let join = tokio::spawn(async move {
            let outcome = forward::run(task).await;
            shared.record(
                &conn,
                Some(auth.env_id),
                Some(auth.fingerprint),
                ConnectionEventKind::ForwardEnded {
                    channel: channel_number(id),
                    host,
                    port,
                    bytes_in: outcome.bytes_in,
                    bytes_out: outcome.bytes_out,
                    duration: started.elapsed(),
                },
            );
        });
        self.track(join);
    }
}

/// Runs the image's OpenSSH SFTP server (where Debian/Ubuntu, Alpine, Fedora/RHEL and Arch
/// put it), or explains what the image lacks.
const SFTP_SERVER_COMMAND: &str = "for p in /usr/lib/openssh/sftp-server /usr/libexec/sftp-server \
/usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server; do [ -x \"$p\" ] && exec \"$p\"; done; \
echo 'airlock: this environment has no sftp-server, so sftp and scp cannot work; add OpenSSH'\\''s \
SFTP server to the image (Debian/Ubuntu/Alpine: the openssh-sftp-server package; Fedora/RHEL: \
openssh-server), or copy with `scp -O` or `ssh HOST '\\''cat > FILE'\\'' < FILE`' >&2; exit 1";

fn channel_number(id: ChannelId) -> u32 {
    // ChannelId's Display is the number itself.
    id.to_string().parse().unwrap_or(u32::MAX)
}

/// Variables a client may set with `env` requests: locale and terminal type only. Anything
/// else (`LD_PRELOAD`, `PATH`, `BASH_ENV`…) could change what runs in the environment.
fn env_allowed(name: &str, value: &str) -> bool {
    (name == "LANG" || name == "TERM" || name.starts_with("LC_"))
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && value.len() <= 256
        && !value.bytes().any(|b| b.is_ascii_control())
}

fn term_valid(term: &str) -> bool {
    term.len() <= 64
        && term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
}

const MAX_ENV_VARS: usize = 32;

impl russh::server::Handler for ConnHandler {
    type Error = SshError;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.note_user(user);
        Ok(reject())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        // Not offered (only publickey is advertised), refused if tried anyway.
        self.note_user(user);
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.auth_key(user, offer.public_key, false).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.auth_key(user, key.public_key, true).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.auth.is_none()
            || self.open_channels(false) >= self.shared.config.max_sessions_per_connection
        {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let id = channel.id();
        // Requests and data reach us through the handler callbacks; the read half would only
        // duplicate them (and stall the connection once its queue is full), so drop it.
        let (_read, writer) = channel.split();
        self.channels.insert(
            id,
            ChannelState {
                forward: false,
                writer: Some(writer),
                pty: None,
                env: Vec::new(),
                eof: false,
                running: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.open_forward(channel, host_to_connect, port_to_connect, reply)
            .await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_channel(reply, "direct-streamlocal").await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_channel(reply, "x11 channel").await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_channel(reply, "forwarded-tcpip").await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // `ssh -R`: refused for the same reason as `-L`.
        self.refuse_request(format!("tcpip-forward {address}:{port}"));
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse_request("streamlocal-forward".into());
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // An agent forwarded into a shared environment could be used by anyone with root there.
        self.refuse_request("auth-agent-req".into());
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_request("x11-req".into());
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Terminal modes are left to the environment's defaults: the pty is created by the
        // backend, and the modes OpenSSH sends are mostly the client terminal's own.
        match self.channels.get_mut(&channel) {
            Some(state) if state.running.is_none() && state.pty.is_none() && term_valid(term) => {
                let term = if term.is_empty() { "dumb" } else { term };
                state.pty = Some(PtyRequest {
                    term: term.to_owned(),
                    cols: session::clamp_dimension(col_width, 80),
                    rows: session::clamp_dimension(row_height, 24),
                });
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let (cols, rows) = (
            session::clamp_dimension(col_width, 80),
            session::clamp_dimension(row_height, 24),
        );
        let ok = match (&state.running, &mut state.pty) {
            (
                Some(Running {
                    master: Some(master),
                    ..
                }),
                _,
            ) => match master.resize(cols, rows) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "resizing the terminal failed");
                    false
                }
            },
            (None, Some(pty)) => {
                pty.cols = cols;
                pty.rows = rows;
                true
            }
            _ => false,
        };
        // window-change never wants a reply; these only answer a client that asks anyway.
        if ok {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state)
                if state.running.is_none()
                    && state.env.len() < MAX_ENV_VARS
                    && env_allowed(variable_name, variable_value) =>
            {
                state.env.retain(|(name, _)| name != variable_name);
                state
                    .env
                    .push((variable_name.to_owned(), variable_value.to_owned()));
                session.channel_success(channel)?;
            }
            _ => {
                tracing::debug!(name = variable_name, "refused an env request");
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match String::from_utf8(data.to_vec()) {
            Ok(command) if !command.contains('\0') => {
                self.start(channel, Some(command), None, session).await
            }
            _ => {
                session.channel_failure(channel)?;
                Ok(())
            }
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, None, None, session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            // The image's own sftp-server, started like any command: it runs as the
            // environment's user and sees only the environment's files.
            if let Some(state) = self.channels.get_mut(&channel) {
                state.pty = None;
                state.env.clear();
            }
            let command = Some(SFTP_SERVER_COMMAND.to_owned());
            return self
                .start(channel, command, Some("subsystem sftp".into()), session)
                .await;
        }
        // A plain failure reply makes OpenSSH exit with only "subsystem request failed",
        // before it prints anything we send; so accept the request, explain on stderr, and
        // end the channel with status 1.
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        let msg = format!(
            "airlock: the {name:?} subsystem is not supported (only \"sftp\" is)\r\n"
        );
        self.refuse_request(format!("subsystem {name}"));
        // Taking the writer also means no process can be started on this channel any more.
        let idle = self
            .channels
            .get_mut(&channel)
            .filter(|s| s.running.is_none())
            .and_then(|s| s.writer.take());
        match idle {
            Some(_writer) => {
                session.channel_success(channel)?;
                session.extended_data(channel, 1, msg.into_bytes())?;
                session.exit_status_request(channel, 1)?;
                session.eof(channel)?;
                session.close(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let (Some(Running { control, .. }), Some(sig)) = (
            self.channels.get(&channel).and_then(|s| s.running.as_ref()),
            session::signal_from_ssh(&signal),
        ) {
            let _ = control.send(Control::Signal(sig));
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let running = self.channels.get(&channel).and_then(|s| s.running.as_ref());
        match running.and_then(|r| r.stdin.as_ref()) {
            Some(stdin) => stdin.send(data),
            None => tracing::debug!("dropping channel data received before a process or after EOF"),
        }
        if self.gate.over_ceiling() {
            // See `session::InputGate`: the client keeps sending input that no process reads
            // while not taking the output it is sent.
            tracing::warn!(
                connection = self.conn.id,
                "client input backlog over the limit; disconnecting"
            );
            session.disconnect(
                Disconnect::ByApplication,
                "too much input queued for processes that do not read it",
                "en",
            )?;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.eof = true;
            if let Some(running) = &mut state.running {
                // Dropping the sender ends the input queue: the process's stdin gets closed.
                running.stdin = None;
            }
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(ChannelState {
            running: Some(running),
            ..
        }) = self.channels.remove(&channel)
        {
            // A no-op when the process already ended (we sent our close first).
            let _ = running.control.send(Control::Hangup);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
        russh::keys::PrivateKey::from(pair).public_key().clone()
    }

    #[test]
    fn authorized_lines_compare_type_and_blob_only() {
        let alice = key(1);
        let line = public_key_line(&alice);
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert!(line_matches(&format!("{line} alice@laptop"), &alice));
        assert!(line_matches(&format!("  {line}  "), &alice));
        assert!(!line_matches(&format!("from=\"10.0.0.1\" {line}"), &alice));
        assert!(!line_matches(&format!("# {line}"), &alice));
        assert!(!line_matches(&public_key_line(&key(2)), &alice));
        assert!(!line_matches("garbage", &alice));
    }

    #[test]
    fn only_locale_and_term_variables_are_accepted() {
        assert!(env_allowed("LANG", "C.UTF-8"));
        assert!(env_allowed("LC_ALL", "en_US.UTF-8"));
        assert!(env_allowed("TERM", "xterm-256color"));
        assert!(!env_allowed("LD_PRELOAD", "/tmp/x.so"));
        assert!(!env_allowed("PATH", "/tmp"));
        assert!(!env_allowed("LC_X", "a\nb"));
        assert!(!env_allowed("LC_X Y", "a"));
    }

    #[test]
    fn env_ids_are_plain_tokens() {
        assert!(plausible_env_id("env_01HZX3"));
        assert!(!plausible_env_id(""));
        assert!(!plausible_env_id("env a"));
        assert!(!plausible_env_id("env\n"));
        assert!(!plausible_env_id(&"e".repeat(200)));
    }
}
