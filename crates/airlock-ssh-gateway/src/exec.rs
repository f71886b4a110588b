//! What the SSH gateway asks of an environment, and what it gets back: a process running
//! inside it, with pipes or a pseudo-terminal. The runc driver implements the spawning; the
//! gateway only moves bytes and reports the exit status.

use std::os::fd::OwnedFd;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout};

/// One command (or a login shell) to run inside an environment.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// `None` runs the environment user's login shell (an interactive `ssh` session).
    pub command: Option<String>,
    /// Extra environment variables the client asked for and the gateway accepted.
    pub env: Vec<(String, String)>,
    /// `Some` when the client asked for a terminal.
    pub pty: Option<PtyRequest>,
}

#[derive(Debug, Clone)]
pub struct PtyRequest {
    /// The client's `TERM`, e.g. `xterm-256color`.
    pub term: String,
    pub cols: u16,
    pub rows: u16,
}

/// A process started inside an environment.
pub struct ExecProcess {
    /// The host-side process whose exit status is the command's (e.g. `runc exec`).
    pub child: Child,
    pub io: ExecIo,
}

pub enum ExecIo {
    Pipes {
        stdin: ChildStdin,
        stdout: ChildStdout,
        stderr: ChildStderr,
    },
    /// The terminal's master side: read output from it, write input to it, resize it with
    /// `TIOCSWINSZ`. Output and errors share it, as on any terminal.
    Pty { master: OwnedFd },
}

/// Puts every signal back to its default action and unblocks them all, for use between
/// fork and exec of a session's process. A runner started with signals ignored (under
/// `nohup`, say) would otherwise pass that on: a session that ignores SIGHUP survives its
/// client's hang-up until the gateway escalates to SIGKILL. sshd does the same for its
/// sessions.
///
/// Only async-signal-safe calls (sigaction, sigprocmask), so it is sound in `pre_exec`.
pub fn restore_default_signals() -> std::io::Result<()> {
    // SAFETY: plain libc calls on structures we own; valid between fork and exec.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..libc::SIGRTMAX() {
            // SIGKILL and SIGSTOP cannot be changed, and numbers glibc reserves for itself
            // are refused: neither matters here.
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
