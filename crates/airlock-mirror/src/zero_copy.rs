//! Plain-HTTP connections whose writes of mapped blob bytes become sendfile(2).
//!
//! hyper writes a response body that is one `Bytes` over a blob's memory map (see
//! [`crate::mapped`]) with vectored writes straight from that memory. This stream recognises
//! such slices and gives the kernel the file and offset instead, so the bytes go from the page
//! cache to the socket without passing through user space; headers and every other byte are
//! written as usual. HTTP itself stays entirely hyper's business. TLS connections cannot use
//! this (their bytes are encrypted in user space) and keep the ordinary stream.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::mapped::file_behind;

/// Slices shorter than this are written, not looked up: headers and small bodies.
const SENDFILE_MIN: usize = 64 * 1024;

/// Linux sends at most this much per sendfile(2) call.
const SENDFILE_MAX: usize = 0x7fff_f000;

/// Bytes sent by sendfile(2) since the process started (exported in `/metrics`).
static SENT: AtomicU64 = AtomicU64::new(0);

pub fn bytes_sent_by_sendfile() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// A TCP listener handing out [`ZeroCopyStream`]s to `axum::serve`.
pub struct ZeroCopyListener {
    listener: TcpListener,
    sent: Arc<AtomicU64>,
}

impl ZeroCopyListener {
    pub fn new(listener: TcpListener) -> ZeroCopyListener {
        ZeroCopyListener { listener, sent: Arc::default() }
    }

    /// Bytes this listener's connections have sent by sendfile(2) (the process-wide figure,
    /// [`bytes_sent_by_sendfile`], adds up every listener).
    pub fn sendfile_bytes(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }
}

impl axum::serve::Listener for ZeroCopyListener {
    type Io = ZeroCopyStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    // Responses are written whole; waiting to coalesce only adds latency.
                    let _ = stream.set_nodelay(true);
                    return (ZeroCopyStream { stream, sent: self.sent.clone() }, addr);
                }
                // A client that gave up before being accepted: nothing to do.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {}
                // Out of descriptors, say: wait for connections to close rather than spin.
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

pub struct ZeroCopyStream {
    stream: TcpStream,
    /// Its listener's sendfile byte count.
    sent: Arc<AtomicU64>,
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let ZeroCopyStream { stream, sent } = self.get_mut();
        let socket = stream.as_raw_fd();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            // `try_io` clears the readiness on WouldBlock, so the next poll waits for it.
            match stream.try_io(Interest::WRITABLE, || write_some(socket, bufs, sent)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then queues body chunks instead of copying them into its own buffer, which is
        // what lets the mapped slices reach `poll_write_vectored` intact.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Writes as much of `bufs` as the socket takes without blocking: runs of ordinary slices
/// with writev(2), mapped slices with sendfile(2), counting those in `sent`. Returns the
/// bytes written, or WouldBlock when nothing could be.
///
/// Under back-pressure a mapped slice goes out in parts; once what is left of it is shorter
/// than [`SENDFILE_MIN`] it is written like any small slice, so up to that much of each body
/// legitimately leaves by writev(2).
fn write_some(socket: RawFd, bufs: &[IoSlice<'_>], sent: &AtomicU64) -> io::Result<usize> {
    let mut total = 0;
    let mut rest = bufs;
    while let Some(first) = rest.first() {
        let (wanted, written, slices) = match mapped_source(first) {
            Some((file, offset)) => {
                let wanted = first.len().min(SENDFILE_MAX);
                let written = sendfile(socket, file, offset, wanted);
                if let Ok(n) = written {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                (wanted, written, 1)
            }
            None => {
                let run = rest.iter().position(|b| mapped_source(b).is_some()).unwrap_or(rest.len());
                let wanted = rest[..run].iter().map(|b| b.len()).sum();
                (wanted, writev(socket, &rest[..run]), run)
            }
        };
        match written {
            // Progress so far counts; the error, if it persists, comes back on the next call.
            Err(_) if total > 0 => return Ok(total),
            Err(e) => return Err(e),
            Ok(0) if wanted > 0 => {
                return if total > 0 { Ok(total) } else { Err(io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes")) };
            }
            Ok(n) => {
                total += n;
                if n < wanted {
                    return Ok(total);
                }
            }
        }
        rest = &rest[slices..];
    }
    Ok(total)
}

fn mapped_source(buf: &IoSlice<'_>) -> Option<(RawFd, u64)> {
    if buf.len() < SENDFILE_MIN {
        return None;
    }
    file_behind(buf)
}

fn sendfile(socket: RawFd, file: RawFd, offset: u64, len: usize) -> io::Result<usize> {
    let mut offset = offset as libc::off_t;
    // SAFETY: plain descriptors and a local offset; the kernel reads the file, not our memory.
    let sent = unsafe { libc::sendfile(socket, file, &mut offset, len) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    SENT.fetch_add(sent as u64, Ordering::Relaxed);
    Ok(sent as usize)
}

fn writev(socket: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // IoSlice is ABI-compatible with iovec on Unix. Linux takes at most 1024 (UIO_MAXIOV);
    // hyper passes at most 64.
    let count = bufs.len().min(1024) as libc::c_int;
    // SAFETY: the iovecs point at live slices borrowed for the duration of the call.
    let written = unsafe { libc::writev(socket, bufs.as_ptr().cast(), count) };
    if written < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(written as usize)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use airlock_oci::Digest;
    use axum::body::Body;

    use super::*;
    use crate::mapped::{MappedBlobs, MAP_THRESHOLD};

    /// Serves one mapped blob (whole, or a range) on a ZeroCopyListener of its own; also
    /// returns that listener's sendfile byte count.
    fn serve(content: &[u8]) -> (std::net::SocketAddr, Arc<AtomicU64>, tokio::runtime::Runtime, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, content).unwrap();
        let blobs = Arc::new(MappedBlobs::default());
        let digest = Digest::of(content);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = ZeroCopyListener::new(runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap());
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let sent = listener.sendfile_bytes();
        let app = axum::Router::new()
            .route("/whole", axum::routing::get({
                let (blobs, path) = (blobs.clone(), path.clone());
                move || async move { Body::from(blobs.get(&digest, &path).unwrap()) }
            }))
            .route("/part", axum::routing::get(move || async move { Body::from(blobs.get(&digest, &path).unwrap().slice(100_000..2_000_000)) }));
        runtime.spawn(async move { axum::serve(listener, app).await });
        (addr, sent, runtime, dir)
    }

    /// A raw HTTP/1.1 GET on a kept-alive connection: (head, body).
    fn get(stream: &mut std::net::TcpStream, path: &str, slow: bool) -> (String, Vec<u8>) {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
            .unwrap();
        let mut body = vec![0u8; length];
        let mut read = 0;
        while read < length {
            let end = (read + 64 * 1024).min(length);
            stream.read_exact(&mut body[read..end]).unwrap();
            read = end;
            if slow {
                // Read slower than the server writes, so it meets WouldBlock mid-body (the
                // back-pressure path); how often depends on the machine, and nothing asserted
                // below does.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        (head, body)
    }

    #[test]
    fn mapped_bodies_go_out_by_sendfile_intact_and_the_connection_stays_usable() {
        let content: Vec<u8> = (0..MAP_THRESHOLD as usize * 8).map(|i| (i * 7 % 251) as u8).collect();
        let (addr, sent, _runtime, _dir) = serve(&content);
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let (head, body) = get(&mut stream, "/whole", true);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == content, "the whole body arrived intact");
        let (_, part) = get(&mut stream, "/part", false);
        assert!(part == content[100_000..2_000_000], "a slice starts at its offset in the file");
        // This listener's own count: all of both bodies but, at most, the short tail of each
        // that was left after a partial send (see `write_some`).
        let by_sendfile = sent.load(Ordering::Relaxed);
        let bodies = (content.len() + part.len()) as u64;
        assert!(by_sendfile <= bodies, "{by_sendfile} counted for {bodies} body bytes");
        assert!(by_sendfile > bodies - 2 * SENDFILE_MIN as u64, "only {by_sendfile} of {bodies} body bytes went by sendfile");
    }

    /// The choice itself, where nothing pushes back: an unread socket with room for the
    /// whole slice. A mapped slice of `SENDFILE_MIN` bytes goes by sendfile(2), whole; one
    /// byte shorter, and it is written.
    #[test]
    fn mapped_slices_from_the_threshold_up_take_the_sendfile_path() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..MAP_THRESHOLD as usize).map(|i| (i % 249) as u8).collect();
        std::fs::write(dir.path().join("blob"), &content).unwrap();
        let mapped = MappedBlobs::default().get(&Digest::of(&content), &dir.path().join("blob")).unwrap();
        for (len, by_sendfile) in [(SENDFILE_MIN, SENDFILE_MIN as u64), (SENDFILE_MIN - 1, 0)] {
            let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            let sent = AtomicU64::new(0);
            let written = write_some(ours.as_raw_fd(), &[IoSlice::new(&mapped[1000..1000 + len])], &sent).unwrap();
            assert_eq!((written, sent.load(Ordering::Relaxed)), (len, by_sendfile), "a slice of {len} bytes");
            drop(ours);
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            assert!(got == content[1000..1000 + len], "the {len} bytes arrived intact");
        }
    }

    #[test]
    fn ordinary_slices_are_written_in_order_around_mapped_ones() {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..MAP_THRESHOLD as usize).map(|i| (i % 13) as u8).collect();
        std::fs::write(dir.path().join("blob"), &content).unwrap();
        let mapped = MappedBlobs::default().get(&Digest::of(&content), &dir.path().join("blob")).unwrap();
        let small = vec![b'x'; 100_000];
        let bufs = [IoSlice::new(b"head "), IoSlice::new(&mapped[..200_000]), IoSlice::new(&small), IoSlice::new(b" tail")];
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.take(5 + 200_000 + 100_000 + 5).read_to_end(&mut got).unwrap();
            got
        });
        let mut written = 0;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        while written < total {
            // Re-slice what is left, as hyper does after a partial write.
            let mut left = Vec::new();
            let mut skip = written;
            for b in &bufs {
                if skip >= b.len() {
                    skip -= b.len();
                } else {
                    left.push(IoSlice::new(&b[skip..]));
                    skip = 0;
                }
            }
            written += write_some(ours.as_raw_fd(), &left, &AtomicU64::new(0)).unwrap();
        }
        ours.flush().unwrap();
        let got = reader.join().unwrap();
        let mut expected = b"head ".to_vec();
        expected.extend_from_slice(&mapped[..200_000]);
        expected.extend_from_slice(&small);
        expected.extend_from_slice(b" tail");
        assert!(got == expected, "bytes arrived in order");
    }
}
