//! Starting a process inside a running environment (`runc exec`), with pipes or a terminal.
//!
//! The process spec (which carries secret env vars) reaches runc through a memfd passed as
//! descriptor 3, never a command line (visible in `ps`) or a file.
//!
//! Terminals: runc 1.1 accepts `--console-socket` only with `--detach`, and a detached exec
//! leaves no host process whose exit status is the command's (the `ExecProcess` contract;
//! only a subreaper could collect it). So runc runs in the foreground with `terminal: true`:
//! it creates the environment's pty itself (the process sees its own `/dev/pts/N`) and relays
//! it to a host pty whose master is handed out here. Resizing that master (`TIOCSWINSZ`)
//! sends SIGWINCH to runc, the session leader of the host pty, which resizes the inner one.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use rustix::fs::{MemfdFlags, Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Winsize};
use airlock_ssh_gateway::{ExecIo, ExecProcess, PtyRequest};
use serde_json::Value;

use crate::error::EngineError;
use crate::runc::Runc;

pub(crate) fn spawn(runc: &Runc, id: &str, process: &Value, pty: Option<&PtyRequest>) -> Result<ExecProcess, EngineError> {
    let spec = memfd_with(id, &serde_json::to_vec(process).expect("specs serialize"))?;
    let spec_fd = spec.as_raw_fd();
    let mut cmd = runc.exec_command(id);
    let terminal = match pty {
        Some(request) => {
            let (master, slave) = open_pty(request).map_err(EngineError::io("open a pseudo-terminal for", format!("environment {id}")))?;
            let stdio = |f: &OwnedFd| f.try_clone().map(File::from).map(Stdio::from);
            let io_err = EngineError::io("duplicate the pseudo-terminal of", format!("environment {id}"));
            let (i, o, e) = match (stdio(&slave), stdio(&slave), stdio(&slave)) {
                (Ok(i), Ok(o), Ok(e)) => (i, o, e),
                (Err(err), ..) | (_, Err(err), _) | (.., Err(err)) => return Err(io_err(err)),
            };
            cmd.stdin(i).stdout(o).stderr(e);
            Some(master)
        }
        None => {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        }
    };
    let with_terminal = terminal.is_some();
    // SAFETY: between fork and exec only async-signal-safe calls (sigaction, sigprocmask,
    // setsid, ioctl, dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            airlock_ssh_gateway::restore_default_signals()?;
            if with_terminal {
                // runc must lead a session whose controlling terminal is the host pty, so that
                // a resize reaches it as SIGWINCH.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if spec_fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(spec_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => EngineError::RuncMissing { runc: cmd.get_program().into(), source },
        _ => EngineError::io("start `runc exec` in", format!("environment {id}"))(source),
    })?;
    // Our copies of the slave side go with `cmd`: the master then sees EOF/EIO when runc exits.
    drop(cmd);
    drop(spec);
    let io = match terminal {
        Some(master) => ExecIo::Pty { master },
        None => ExecIo::Pipes {
            stdin: child.stdin.take().expect("piped"),
            stdout: child.stdout.take().expect("piped"),
            stderr: child.stderr.take().expect("piped"),
        },
    };
    Ok(ExecProcess { child, io })
}

fn memfd_with(id: &str, bytes: &[u8]) -> Result<OwnedFd, EngineError> {
    let fd = rustix::fs::memfd_create("airlock-exec-spec", MemfdFlags::CLOEXEC)
        .map_err(|e| EngineError::io("create a memfd for the exec spec of", format!("environment {id}"))(e.into()))?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(EngineError::io("write the exec spec of", format!("environment {id}")))?;
    Ok(OwnedFd::from(file))
}

/// A host pty pair sized as asked; the slave in raw mode so the host side never echoes or
/// translates (the environment's own pty does that).
fn open_pty(request: &PtyRequest) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
    let mut termios = rustix::termios::tcgetattr(&slave)?;
    termios.make_raw();
    rustix::termios::tcsetattr(&slave, OptionalActions::Now, &termios)?;
    rustix::termios::tcsetwinsize(&master, Winsize { ws_row: request.rows, ws_col: request.cols, ws_xpixel: 0, ws_ypixel: 0 })?;
    Ok((master, slave))
}

/// Waits for a piped process and keeps the last `max` bytes of its output (stdout, then
/// stderr): enough to tell a user why a task or install failed.
pub fn wait_with_tail(mut process: ExecProcess, max: usize) -> std::io::Result<(i32, String)> {
    let ExecIo::Pipes { stdin, stdout, stderr } = process.io else {
        return Err(std::io::Error::other("the engine gave a terminal where pipes were asked for"));
    };
    drop(stdin);
    let errors = std::thread::spawn(move || tail(stderr, max));
    let mut out = tail(stdout, max);
    out.push_str(&errors.join().unwrap_or_default());
    let status = process.child.wait()?;
    Ok((status.code().unwrap_or(-1), last_bytes(&out, max)))
}

fn tail(mut source: impl std::io::Read, max: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = source.read(&mut buf) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 4 * max {
            kept.drain(..kept.len() - max);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The last `max` bytes of `s` (on a character boundary), marked with `…` when cut.
pub fn last_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}
