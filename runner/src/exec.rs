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
