//! `direct-tcpip` channels (`ssh -L`, `ssh -W`, every IDE's tunnel), allowed only to the
//! environment's own loopback.
//!
//! The gateway never connects anywhere itself: the [`SessionBackend`](crate::SessionBackend)
//! opens the connection from inside the environment's network namespace (see
//! [`connect_in_netns`]), so `127.0.0.1` there is the environment's loopback, not the
//! runner's, and the runner host, the site network and other environments stay out of reach
//! whatever port is asked for. The bytes then move like a session's: the same input queue
//! and connection-level flow control, the same output pump.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::server::Msg;
use russh::ChannelWriteHalf;
use tokio::io::Interest;
use tokio::sync::mpsc;

use crate::session::{self, Control, InputFd, InputGate, NbFd, StdinReceiver};

/// The address to connect to inside the environment for a `direct-tcpip` request, or `None`
/// when the destination is not the environment's own loopback (`127.0.0.1`, `::1`,
/// `localhost`) or the port is not a TCP port.
pub(crate) fn loopback_destination(host: &str, port: u32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    let ip = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().ok()?,
    };
    (ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST))
        .then_some(SocketAddr::new(ip, port))
}

/// Connects to `addr` from inside the network namespace at `netns` (e.g. `/proc/PID/ns/net`
/// of an environment's init), for [`SessionBackend::connect_loopback`](crate::SessionBackend::connect_loopback).
///
/// A network namespace is a per-thread attribute: a dedicated thread enters it, connects and
/// ends, so no thread of the caller ever changes namespace. The socket stays in the namespace
/// it was created in. Refused when `netns` is the caller's own namespace (an environment
/// without a network namespace of its own would otherwise reach the host's loopback).
pub fn connect_in_netns(netns: &Path, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let target = File::open(netns)?;
    let own = std::fs::metadata("/proc/thread-self/ns/net")?;
    let theirs = target.metadata()?;
    if (own.dev(), own.ino()) == (theirs.dev(), theirs.ino()) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is the runner's own network namespace; refusing to connect from it", netns.display()),
        ));
    }
    std::thread::Builder::new()
        .name("airlock-netns-connect".into())
        .spawn(move || {
            // SAFETY: setns on an open namespace fd; it affects only this thread, which ends
            // right after the connect.
            if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&addr, timeout)
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace connect thread panicked"))?
}

/// Everything a forwarded connection's task needs.
pub(crate) struct ForwardTask {
    pub writer: ChannelWriteHalf<Msg>,
    pub input: StdinReceiver,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub socket: TcpStream,
}

pub(crate) struct ForwardOutcome {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Moves bytes between the channel and the socket until both sides are done (each side's EOF
/// is passed on), the client closes the channel, or the connection ends.
pub(crate) async fn run(task: ForwardTask) -> ForwardOutcome {
    let ForwardTask {
        writer,
        input,
        mut control,
        socket,
    } = task;
    let bytes_in = AtomicU64::new(0);
    let bytes_out = AtomicU64::new(0);
    let gate: Arc<InputGate> = input.gate.clone();
    let socket = match register(socket) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot register a forwarded socket");
            let _ = writer.close().await;
            return ForwardOutcome { bytes_in: 0, bytes_out: 0 };
        }
    };
    {
        let mut output = Box::pin(session::pump(&socket, &writer, &gate, None, &bytes_out));
        let mut input = Box::pin(session::write_input(InputFd::Socket(socket.clone()), input, &bytes_in));
        let (mut output_done, mut input_done) = (false, false);
        loop {
            tokio::select! {
                sent = &mut output, if !output_done => {
                    output_done = true;
                    if sent.is_err() {
                        break;
                    }
                    let _ = writer.eof().await;
                }
                () = &mut input, if !input_done => input_done = true,
                msg = control.recv() => match msg {
                    Some(Control::Signal(_)) => {}
                    // The client closed the channel, or the connection is gone.
                    Some(Control::Hangup) | None => break,
                },
            }
            if output_done && input_done {
                let _ = writer.close().await;
                break;
            }
        }
    }
    ForwardOutcome {
        bytes_in: bytes_in.load(Ordering::Relaxed),
        bytes_out: bytes_out.load(Ordering::Relaxed),
    }
}

fn register(socket: TcpStream) -> io::Result<NbFd> {
    NbFd::new(OwnedFd::from(socket), Interest::READABLE | Interest::WRITABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_environments_loopback_is_a_destination() {
        assert_eq!(loopback_destination("127.0.0.1", 8080), Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(loopback_destination("::1", 22), Some("[::1]:22".parse().unwrap()));
        assert_eq!(loopback_destination("localhost", 3000), Some("127.0.0.1:3000".parse().unwrap()));
        for host in ["10.0.0.1", "192.168.1.5", "0.0.0.0", "::", "127.0.0.2", "example.com", "LOCALHOST.", ""] {
            assert_eq!(loopback_destination(host, 80), None, "{host}");
        }
        assert_eq!(loopback_destination("127.0.0.1", 0), None);
        assert_eq!(loopback_destination("127.0.0.1", 70_000), None);
    }
}
