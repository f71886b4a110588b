//! Moving bytes between a process started by the [`SessionBackend`](crate::SessionBackend)
//! and its SSH channel, and ending the process when the client goes away.
//!
//! * Output (stdout, stderr, or the pty master) is read from non-blocking fds registered with
//!   tokio ([`AsyncFd`]) in 32 KiB chunks and written with russh's channel writer, which waits
//!   for the client's window: at most one chunk per stream is in memory, whatever the size of
//!   the output.
//! * Input from the client is queued per channel and written by the channel's task; the
//!   handler never waits for a process, so the connection's event loop (which also carries
//!   every channel's output and the client's window adjustments) never stalls behind one slow
//!   reader. Flow control for input works at the connection level instead, because russh
//!   re-opens a channel's receive window as soon as data arrives (it has no consumer-driven,
//!   per-channel window): see [`InputGate`].
//! * The process's exit is watched with a pidfd (no thread per process), without reaping it
//!   (`waitid(WNOWAIT)`), so its pid — and process group — stay valid for signals until this
//!   task reaps it at the very end.
//! * When the client disconnects or closes the channel first, the process is hung up like a
//!   terminal would: SIGHUP to its process group, SIGKILL after a grace period.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelWriteHalf, Sig};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::sync::mpsc;

use crate::exec::{ExecIo, ExecProcess};

use crate::backend::SessionExit;

/// Client input queued (all channels of a connection) above which the gateway stops reading
/// the connection's socket, so TCP pushes back on the client.
const INPUT_HIGH_WATER: usize = 4 << 20;
/// Client input queued above which the connection is dropped (see [`InputGate`]).
const INPUT_CEILING: usize = 64 << 20;
/// An output write that has not gone through after this long is waiting for the client
/// (its window, or a key re-exchange): reading must go on for that to resolve.
const OUTPUT_STUCK_AFTER: Duration = Duration::from_millis(20);
/// Output read size: russh splits it into packets of the client's maximum packet size.
const READ_CHUNK: usize = 32 * 1024;
/// After a pty session's process exits, output still buffered in the terminal is forwarded
/// until the terminal reports EOF, stays quiet this long, or [`PTY_DRAIN_MAX`] passes (a
/// background job may keep the terminal open forever).
const PTY_DRAIN_QUIET: Duration = Duration::from_millis(100);
const PTY_DRAIN_MAX: Duration = Duration::from_secs(1);
/// Used when no pidfd can be had (kernels before 5.3).
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What the connection handler can ask of a running session.
#[derive(Debug)]
pub(crate) enum Control {
    /// The client sent a `signal` request.
    Signal(Signal),
    /// The client closed the channel: hang the process up.
    Hangup,
}

/// Connection-level flow control for client input.
///
/// The socket is not read while more than [`INPUT_HIGH_WATER`] bytes of input wait for
/// processes, unless some channel's output is stuck: the client's window adjustments (and
/// key re-exchange messages) arrive on the same socket, behind the input, and a process that
/// cannot write its output does not read its input either — pausing then would deadlock
/// (think `cat` with a large stdin). In that state the gateway keeps reading, and a client
/// that keeps sending input while not consuming output can push the queue up to
/// [`INPUT_CEILING`], where the connection is dropped rather than let memory grow. Proper
/// per-channel windows would need russh to let the application delay window adjustments.
///
/// The pause is per connection: while one process leaves over 4 MiB of input unread (and
/// writes nothing), the connection's other channels wait too, and after the keepalive limit
/// (`GatewayConfig::keepalive_interval` × `keepalive_max`) russh drops the connection, since
/// it cannot read the client's keepalive replies.
#[derive(Default)]
pub(crate) struct InputGate {
    backlog: AtomicUsize,
    stuck_outputs: AtomicUsize,
    reader: Mutex<Option<Waker>>,
}

impl InputGate {
    fn paused(&self) -> bool {
        self.backlog.load(Ordering::SeqCst) > INPUT_HIGH_WATER
            && self.stuck_outputs.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn over_ceiling(&self) -> bool {
        self.backlog.load(Ordering::SeqCst) > INPUT_CEILING
    }

    fn queued(&self, n: usize) {
        self.backlog.fetch_add(n, Ordering::SeqCst);
    }

    fn consumed(&self, n: usize) {
        let before = self.backlog.fetch_sub(n, Ordering::SeqCst);
        if before > INPUT_HIGH_WATER && before - n <= INPUT_HIGH_WATER {
            self.wake_reader();
        }
    }

    fn output_stuck(&self) -> StuckGuard<'_> {
        if self.stuck_outputs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.wake_reader();
        }
        StuckGuard(self)
    }

    fn wake_reader(&self) {
        if let Some(waker) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }
}

struct StuckGuard<'a>(&'a InputGate);

impl Drop for StuckGuard<'_> {
    fn drop(&mut self) {
        self.0.stuck_outputs.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection's socket as russh sees it: reads wait while the [`InputGate`] is closed.
pub(crate) struct GatedStream<S> {
    pub(crate) inner: S,
    pub(crate) gate: Arc<InputGate>,
}

impl<S: AsyncRead + Unpin> AsyncRead for GatedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.gate.paused() {
            *this.gate.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // Re-check after registering: a wake-up in between would otherwise be lost.
            if this.gate.paused() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GatedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The handler's side of a channel's input queue.
#[derive(Clone)]
pub(crate) struct StdinSender {
    tx: mpsc::UnboundedSender<Bytes>,
    gate: Arc<InputGate>,
}

impl StdinSender {
    /// Queues client data for the process (never waits; see [`InputGate`]). Dropped if the
    /// process is gone.
    pub(crate) fn send(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.gate.queued(data.len());
        if self.tx.send(Bytes::copy_from_slice(data)).is_err() {
            self.gate.consumed(data.len());
        }
    }
}

/// The session task's side of the input queue.
pub(crate) struct StdinReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    pub(crate) gate: Arc<InputGate>,
}

pub(crate) fn stdin_queue(gate: Arc<InputGate>) -> (StdinSender, StdinReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        StdinSender {
            tx,
            gate: gate.clone(),
        },
        StdinReceiver { rx, gate },
    )
}

impl Drop for StdinReceiver {
    fn drop(&mut self) {
        // Input nobody will write any more must not keep counting against the connection.
        self.rx.close();
        while let Ok(chunk) = self.rx.try_recv() {
            self.gate.consumed(chunk.len());
        }
    }
}

/// A non-blocking fd driven by tokio's reactor.
pub(crate) struct NbFd(AsyncFd<OwnedFd>);

impl NbFd {
    pub(crate) fn new(fd: OwnedFd, interest: Interest) -> io::Result<Self> {
        // O_NONBLOCK is per open file description: the process's end of a pipe or the pty
        // slave are separate descriptions and stay blocking.
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(Self(register(fd, interest)?))
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard
                .try_io(|fd| rustix::io::read(fd.get_ref(), &mut *buf).map_err(io::Error::from))
            {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

/// Registers an owned fd with tokio's reactor.
fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is open and always returns the same fd until it is dropped, which
    // only happens together with the `AsyncFd` that owns it.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)
}

/// The pty master, shared between the session task (I/O) and the handler (`window-change`).
pub(crate) struct PtyMaster(NbFd);

impl PtyMaster {
    pub(crate) fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // TIOCSWINSZ on the master: the kernel sends SIGWINCH to the foreground process group.
        rustix::termios::tcsetwinsize(self.0 .0.get_ref(), size)?;
        Ok(())
    }
}

/// Everything a channel's task needs, built by the handler once the process is spawned.
pub(crate) struct SessionTask {
    pub channel: ChannelId,
    pub writer: ChannelWriteHalf<Msg>,
    pub handle: Handle,
    pub stdin: StdinReceiver,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub kill_grace: Duration,
    pub child: Child,
    pub io: SessionIo,
}

pub(crate) enum SessionIo {
    Pipes {
        stdin: NbFd,
        stdout: NbFd,
        stderr: NbFd,
    },
    Pty(Arc<PtyMaster>),
}

/// Makes the process's fds non-blocking and registers them. Also returns the pty master so
/// the handler can resize the terminal. On error the child is handed back, to be killed.
#[allow(clippy::type_complexity)]
pub(crate) fn prepare(
    process: ExecProcess,
) -> Result<(Child, SessionIo, Option<Arc<PtyMaster>>), (Child, io::Error)> {
    let ExecProcess { child, io } = process;
    let prepared = match io {
        ExecIo::Pipes {
            stdin,
            stdout,
            stderr,
        } => (|| {
            Ok(SessionIo::Pipes {
                stdin: NbFd::new(OwnedFd::from(stdin), Interest::WRITABLE)?,
                stdout: NbFd::new(OwnedFd::from(stdout), Interest::READABLE)?,
                stderr: NbFd::new(OwnedFd::from(stderr), Interest::READABLE)?,
            })
        })()
        .map(|io| (io, None)),
        ExecIo::Pty { master } => {
            NbFd::new(master, Interest::READABLE | Interest::WRITABLE).map(|fd| {
                let master = Arc::new(PtyMaster(fd));
                (SessionIo::Pty(master.clone()), Some(master))
            })
        }
    };
    match prepared {
        Ok((io, master)) => Ok((child, io, master)),
        Err(e) => Err((child, e)),
    }
}

/// What [`run`] reports when the process is gone.
pub(crate) struct SessionOutcome {
    pub exit: SessionExit,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

enum Ending {
    /// The process exited and its output was forwarded.
    Finished,
    /// The client is gone (disconnect, channel close, or the channel cannot be written).
    ClientGone,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Drives one session to its end: pumps bytes both ways, then sends `exit-status` (or
/// `exit-signal`), EOF and close; or hangs the process up if the client leaves first.
pub(crate) async fn run(task: SessionTask) -> SessionOutcome {
    let SessionTask {
        channel,
        writer,
        handle,
        stdin,
        mut control,
        kill_grace,
        mut child,
        io,
    } = task;
    let gate = stdin.gate.clone();
    let bytes_in = AtomicU64::new(0);
    let bytes_out = AtomicU64::new(0);
    let watch = ExitWatch::new(&child);

    let ending = {
        let (w, x, out, inp) = (&writer, &watch, &bytes_out, &bytes_in);
        let g: &InputGate = &gate;
        let (mut main, mut input): (BoxFuture<'_, Ending>, BoxFuture<'_, ()>) = match io {
            SessionIo::Pipes {
                stdin: stdin_fd,
                stdout,
                stderr,
            } => (
                Box::pin(async move {
                    let outputs = tokio::try_join!(
                        pump(&stdout, w, g, None, out),
                        pump(&stderr, w, g, Some(1), out)
                    );
                    if outputs.is_err() {
                        return Ending::ClientGone;
                    }
                    x.wait().await;
                    Ending::Finished
                }),
                // The client's EOF reaches the process as the end of its stdin: the fd is
                // dropped when `write_input` returns.
                Box::pin(write_input(InputFd::Owned(stdin_fd), stdin, inp)),
            ),
            SessionIo::Pty(master) => (
                Box::pin({
                    let master = master.clone();
                    async move {
                        match pump_pty(&master, w, g, x, out).await {
                            Ok(()) => Ending::Finished,
                            Err(ChannelGone) => Ending::ClientGone,
                        }
                    }
                }),
                // A terminal cannot be half-closed: like sshd, a pty session ignores the
                // client's EOF (the master stays open).
                Box::pin(write_input(InputFd::Shared(master), stdin, inp)),
            ),
        };
        let mut input_done = false;
        // The futures, and with them the fds, are dropped at the end of this block, before the
        // process is hung up: closing the pty master alone already sends it SIGHUP.
        loop {
            tokio::select! {
                ending = &mut main => break ending,
                () = &mut input, if !input_done => input_done = true,
                msg = control.recv() => match msg {
                    Some(Control::Signal(sig)) => signal_process(&child, sig),
                    // `None`: the connection handler is gone, i.e. the client disconnected.
                    Some(Control::Hangup) | None => break Ending::ClientGone,
                },
            }
        }
    };

    let exit = match ending {
        Ending::Finished => {
            let status = reap(&mut child);
            let exit = exit_of(status);
            // exit-status (or exit-signal) before EOF and close, as OpenSSH expects
            // (RFC 4254 §6.10).
            let sent = match &exit {
                SessionExit::Status(code) => writer.exit_status(*code).await.is_ok(),
                SessionExit::Signal(name) => handle
                    .exit_signal_request(
                        channel,
                        sig_of(name),
                        status.core_dumped(),
                        String::new(),
                        String::new(),
                    )
                    .await
                    .is_ok(),
                _ => true,
            };
            if sent {
                let _ = writer.eof().await;
                let _ = writer.close().await;
            }
            exit
        }
        Ending::ClientGone => {
            let status = hang_up(&mut child, &watch, kill_grace).await;
            // When only the channel was closed, russh already answered the client's close:
            // there is nothing more to send.
            SessionExit::Disconnected {
                status: status.code(),
                signal: status.signal().map(signal_name),
            }
        }
    };
    SessionOutcome {
        exit,
        bytes_in: bytes_in.load(Ordering::Relaxed),
        bytes_out: bytes_out.load(Ordering::Relaxed),
    }
}

/// The channel cannot be written any more: the client or the connection is gone.
pub(crate) struct ChannelGone;

async fn send_chunk(
    writer: &ChannelWriteHalf<Msg>,
    gate: &InputGate,
    ext: Option<u32>,
    data: &[u8],
    counter: &AtomicU64,
) -> Result<(), ChannelGone> {
    let data = Bytes::copy_from_slice(data);
    let len = data.len() as u64;
    // Waits for the client's window: this is what keeps a 20 MiB output from being buffered.
    let send = async {
        match ext {
            None => writer.data_bytes(data).await,
            Some(code) => writer.extended_data_bytes(code, data).await,
        }
    };
    tokio::pin!(send);
    let sent = match tokio::time::timeout(OUTPUT_STUCK_AFTER, &mut send).await {
        Ok(sent) => sent,
        Err(_slow) => {
            let _stuck = gate.output_stuck();
            send.await
        }
    };
    sent.map_err(|_| ChannelGone)?;
    counter.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

/// Forwards one output pipe (or a forwarded socket) until EOF.
pub(crate) async fn pump(
    fd: &NbFd,
    writer: &ChannelWriteHalf<Msg>,
    gate: &InputGate,
    ext: Option<u32>,
    counter: &AtomicU64,
) -> Result<(), ChannelGone> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match fd.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => send_chunk(writer, gate, ext, &buf[..n], counter).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the process output failed; treating it as EOF");
                return Ok(());
            }
        }
    }
}

/// Forwards the terminal's output until the process exited and the terminal is drained.
async fn pump_pty(
    master: &PtyMaster,
    writer: &ChannelWriteHalf<Msg>,
    gate: &InputGate,
    exit: &ExitWatch,
    counter: &AtomicU64,
) -> Result<(), ChannelGone> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut exited_at: Option<tokio::time::Instant> = None;
    loop {
        let read = match exited_at {
            None => {
                tokio::select! {
                    r = master.0.read(&mut buf) => r,
                    () = exit.wait() => {
                        exited_at = Some(tokio::time::Instant::now());
                        continue;
                    }
                }
            }
            Some(at) => {
                if at.elapsed() >= PTY_DRAIN_MAX {
                    return Ok(());
                }
                match tokio::time::timeout(PTY_DRAIN_QUIET, master.0.read(&mut buf)).await {
                    Ok(r) => r,
                    Err(_quiet) => return Ok(()),
                }
            }
        };
        match read {
            Ok(n) if n > 0 => send_chunk(writer, gate, None, &buf[..n], counter).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EIO: every slave fd is closed (the usual way a terminal session ends on Linux).
            _ => break,
        }
    }
    exit.wait().await;
    Ok(())
}

pub(crate) enum InputFd {
    Owned(NbFd),
    Shared(Arc<PtyMaster>),
    /// A forwarded connection: the client's EOF half-closes it (`shutdown(SHUT_WR)`), so the
    /// server inside the environment still sends its answer.
    Socket(Arc<NbFd>),
}

impl InputFd {
    fn fd(&self) -> &NbFd {
        match self {
            InputFd::Owned(fd) => fd,
            InputFd::Shared(master) => &master.0,
            InputFd::Socket(socket) => socket,
        }
    }
}

/// Writes the client's input to the process (or socket) until the client's EOF.
pub(crate) async fn write_input(fd: InputFd, mut queue: StdinReceiver, counter: &AtomicU64) {
    let mut fd = Some(fd);
    while let Some(chunk) = queue.rx.recv().await {
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if let Some(f) = &fd {
            if let Err(e) = f.fd().write_all(&chunk).await {
                // The process closed its stdin (EPIPE) or the terminal is gone: discard the
                // rest of the input rather than stall the client.
                tracing::debug!(error = %e, "process input closed");
                fd = None;
            }
        }
        queue.gate.consumed(chunk.len());
    }
    // EOF from the client (the handler dropped its sender). Dropping an owned stdin closes it.
    if let Some(InputFd::Socket(socket)) = &fd {
        let _ = rustix::net::shutdown(socket.0.get_ref(), rustix::net::Shutdown::Write);
    }
    drop(fd);
}

/// Watches a child for exit without reaping it.
struct ExitWatch {
    pid: Pid,
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl ExitWatch {
    fn new(child: &Child) -> Self {
        let pid = Pid::from_child(child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK)
            .ok()
            .and_then(|fd| register(fd, Interest::READABLE).ok());
        Self { pid, pidfd }
    }

    fn exited(&self) -> bool {
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match rustix::process::waitid(WaitId::Pid(self.pid), opts) {
            Ok(status) => status.is_some(),
            // ECHILD: already reaped (cannot happen while we own the `Child`): treat as gone.
            Err(_) => true,
        }
    }

    async fn wait(&self) {
        loop {
            if self.exited() {
                return;
            }
            match &self.pidfd {
                Some(fd) => match fd.readable().await {
                    // A pidfd becomes readable when the process exits.
                    Ok(mut guard) => {
                        if !self.exited() {
                            guard.clear_ready();
                        }
                    }
                    Err(_) => tokio::time::sleep(EXIT_POLL_INTERVAL).await,
                },
                None => tokio::time::sleep(EXIT_POLL_INTERVAL).await,
            }
        }
    }
}

/// Sends `sig` to the process's group when it leads one (so a shell's children get it too),
/// else to the process. Only called while the child is not reaped, so the pid is still ours.
fn signal_process(child: &Child, sig: Signal) {
    let pid = Pid::from_child(child);
    let to_group = rustix::process::getpgid(Some(pid)).is_ok_and(|pgid| pgid == pid);
    let result = if to_group {
        rustix::process::kill_process_group(pid, sig)
            .or_else(|_| rustix::process::kill_process(pid, sig))
    } else {
        rustix::process::kill_process(pid, sig)
    };
    if let Err(e) = result {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), signal = ?sig, error = %e, "signal not delivered");
    }
}

/// SIGHUP, then SIGKILL if the process has not exited after `grace`; then reaps it.
async fn hang_up(child: &mut Child, exit: &ExitWatch, grace: Duration) -> ExitStatus {
    if !exit.exited() {
        signal_process(child, Signal::HUP);
        if tokio::time::timeout(grace, exit.wait()).await.is_err() {
            tracing::info!(pid = child.id(), "process ignored SIGHUP; killing it");
            signal_process(child, Signal::KILL);
            exit.wait().await;
        }
    }
    reap(child)
}

/// Reaps an exited child. It has exited (`ExitWatch` said so), so `wait` returns at once.
fn reap(child: &mut Child) -> ExitStatus {
    match child.wait() {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(error = %e, "could not reap the session process");
            ExitStatus::from_raw(255 << 8)
        }
    }
}

fn exit_of(status: ExitStatus) -> SessionExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => SessionExit::Status(code as u32),
        (None, Some(sig)) => SessionExit::Signal(signal_name(sig)),
        (None, None) => SessionExit::Status(255),
    }
}

/// Signal names as RFC 4254 §6.10 spells them (without "SIG").
fn signal_name(sig: i32) -> String {
    let known = [
        (Signal::ABORT, "ABRT"),
        (Signal::ALARM, "ALRM"),
        (Signal::FPE, "FPE"),
        (Signal::HUP, "HUP"),
        (Signal::ILL, "ILL"),
        (Signal::INT, "INT"),
        (Signal::KILL, "KILL"),
        (Signal::PIPE, "PIPE"),
        (Signal::QUIT, "QUIT"),
        (Signal::SEGV, "SEGV"),
        (Signal::TERM, "TERM"),
        (Signal::USR1, "USR1"),
        (Signal::USR2, "USR2"),
    ];
    known
        .iter()
        .find(|(s, _)| s.as_raw() == sig)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| format!("SIG{sig}"))
}

fn sig_of(name: &str) -> Sig {
    match name {
        "ABRT" => Sig::ABRT,
        "ALRM" => Sig::ALRM,
        "FPE" => Sig::FPE,
        "HUP" => Sig::HUP,
        "ILL" => Sig::ILL,
        "INT" => Sig::INT,
        "KILL" => Sig::KILL,
        "PIPE" => Sig::PIPE,
        "QUIT" => Sig::QUIT,
        "SEGV" => Sig::SEGV,
        "TERM" => Sig::TERM,
        "USR1" => Sig::USR1,
        other => Sig::Custom(other.to_owned()),
    }
}

/// Maps a client's `signal` request to the signal to deliver; `None` for names we do not
/// forward (e.g. STOP would freeze the session with no way back for the client).
pub(crate) fn signal_from_ssh(sig: &Sig) -> Option<Signal> {
    Some(match sig {
        Sig::ABRT => Signal::ABORT,
        Sig::ALRM => Signal::ALARM,
        Sig::FPE => Signal::FPE,
        Sig::HUP => Signal::HUP,
        Sig::ILL => Signal::ILL,
        Sig::INT => Signal::INT,
        Sig::KILL => Signal::KILL,
        Sig::PIPE => Signal::PIPE,
        Sig::QUIT => Signal::QUIT,
        Sig::SEGV => Signal::SEGV,
        Sig::TERM => Signal::TERM,
        Sig::USR1 => Signal::USR1,
        Sig::Custom(name) if name == "USR2" => Signal::USR2,
        Sig::Custom(_) => return None,
    })
}

/// A pty dimension from a `pty-req`/`window-change` (u32 on the wire); 0 means "unknown".
pub(crate) fn clamp_dimension(v: u32, default: u16) -> u16 {
    match v {
        0 => default,
        v => v.min(u32::from(u16::MAX)) as u16,
    }
}
