//! Drives `runc` with the runner's own state root (`runc --root DATA/runc`), so the
//! environments are separate from any other runc user on the host.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::EngineError;

pub(crate) struct Runc {
    bin: PathBuf,
    root: PathBuf,
    /// How long one command may run before it is killed (see `EngineOptions::runc_timeout`).
    timeout: Duration,
}

/// `runc state` output (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RuncState {
    /// `created`, `running`, `paused` or `stopped`.
    pub(crate) status: String,
    pub(crate) pid: i32,
}

impl Runc {
    pub(crate) fn new(bin: PathBuf, root: PathBuf, timeout: Duration) -> Runc {
        Runc { bin, root, timeout }
    }

    /// `runc --version`, to fail at open rather than at the first start.
    pub(crate) fn version(&self) -> Result<String, EngineError> {
        let out = Command::new(&self.bin)
            .arg("--version")
            .output()
            .map_err(|source| EngineError::RuncMissing { runc: self.bin.clone(), source })?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string())
    }

    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    fn output(&self, env: &str, args: &[&str]) -> Result<Output, EngineError> {
        let child = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| EngineError::RuncMissing { runc: self.bin.clone(), source })?;
        let out = self.finish(child, Child::wait_with_output).ok_or_else(|| self.timed_out(env, args))?;
        let out = out.map_err(|source| EngineError::RuncMissing { runc: self.bin.clone(), source })?;
        if out.status.success() {
            return Ok(out);
        }
        Err(self.failure(env, args, &out.status.to_string(), String::from_utf8_lossy(&out.stderr).trim()))
    }

    /// Waits for `child` with `wait` (on a thread of its own, so pipes keep draining) for at
    /// most the timeout; past it the child is killed and `None` returned.
    fn finish<T: Send + 'static>(&self, child: Child, wait: fn(Child) -> std::io::Result<T>) -> Option<std::io::Result<T>> {
        // A pidfd names this very process even if it is reaped and its pid reused meanwhile.
        let pidfd = crate::sys::pidfd_open(child.id() as libc::pid_t);
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(wait(child));
        });
        match result.recv_timeout(self.timeout) {
            Ok(result) => Some(result),
            Err(_) => {
                if let Ok(pidfd) = &pidfd {
                    crate::sys::pidfd_kill(pidfd);
                }
                let _ = result.recv();
                None
            }
        }
    }

    fn timed_out(&self, env: &str, args: &[&str]) -> EngineError {
        let status = format!("did not finish within {} s and was killed", self.timeout.as_secs_f64());
        self.failure(env, args, &status, "runc hung (a frozen cgroup or an unresponsive process in the environment?)")
    }

    fn failure(&self, env: &str, args: &[&str], status: &str, stderr: &str) -> EngineError {
        EngineError::Runc {
            env: env.to_string(),
            command: format!("runc --root {} {}", self.root.display(), args.join(" ")),
            status: status.to_string(),
            stderr: stderr.to_string(),
        }
    }

    /// `runc run -d`: the init process keeps running after runc returns; its host pid is
    /// returned. runc's own messages and the init's output go to `log` (a pipe would be
    /// inherited by the init and never close).
    pub(crate) fn run_detached(&self, id: &str, bundle: &Path, log: &Path) -> Result<i32, EngineError> {
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(log).map_err(EngineError::io("open", log))?;
        let pid_file = bundle.join("init.pid");
        let args = ["run", "--detach", "--pid-file", &pid_file.to_string_lossy(), "--bundle", &bundle.to_string_lossy(), id].map(|s| s.to_string());
        let child = self
            .command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(EngineError::io("open", log))?)
            .stderr(file.try_clone().map_err(EngineError::io("open", log))?)
            .spawn()
            .map_err(|source| EngineError::RuncMissing { runc: self.bin.clone(), source })?;
        let wait: fn(Child) -> std::io::Result<ExitStatus> = |mut child| child.wait();
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = self.finish(child, wait).ok_or_else(|| self.timed_out(id, &arg_refs))?;
        let status = status.map_err(|source| EngineError::RuncMissing { runc: self.bin.clone(), source })?;
        if status.success() {
            let text = std::fs::read_to_string(&pid_file).map_err(EngineError::io("read", &pid_file))?;
            return text.trim().parse().map_err(|_| EngineError::State { path: pid_file, reason: format!("`{}` is not a pid", text.trim()) });
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Err(self.failure(id, &args, &status.to_string(), &tail(log)))
    }

    /// The container's state, `None` when runc does not know it.
    pub(crate) fn state(&self, id: &str) -> Result<Option<RuncState>, EngineError> {
        match self.output(id, &["state", id]) {
            Ok(out) => serde_json::from_slice(&out.stdout).map(Some).map_err(|e| EngineError::Runc {
                env: id.to_string(),
                command: "runc state".into(),
                status: "unreadable output".into(),
                stderr: e.to_string(),
            }),
            Err(EngineError::Runc { stderr, .. }) if stderr.contains("does not exist") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn kill(&self, id: &str, signal: &str) -> Result<(), EngineError> {
        self.output(id, &["kill", id, signal]).map(drop)
    }

    /// `runc delete --force`: kills what is left and removes runc's state and cgroups.
    pub(crate) fn delete(&self, id: &str) -> Result<(), EngineError> {
        match self.output(id, &["delete", "--force", id]) {
            Err(EngineError::Runc { stderr, .. }) if stderr.contains("does not exist") => Ok(()),
            other => other.map(drop),
        }
    }

    /// `runc exec` reading the process spec from descriptor 3 (so secret env never appears in
    /// a command line or on disk).
    pub(crate) fn exec_command(&self, id: &str) -> Command {
        let mut cmd = self.command();
        cmd.args(["exec", "--process", "/proc/self/fd/3", id]);
        cmd
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// The last few KiB of the log, where runc wrote why it failed.
fn tail(path: &Path) -> String {
    let mut bytes = Vec::new();
    let _ = File::open(path).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
        f.read_to_end(&mut bytes)
    });
    String::from_utf8_lossy(&bytes).trim().to_string()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use super::*;

    /// A stand-in runc: `state` of `hung` never returns, everything else answers at once.
    fn fake_runc(dir: &Path) -> PathBuf {
        let script = dir.join("runc");
        std::fs::write(
            &script,
            "#!/bin/sh\n# args: --root DIR COMMAND ID\nif [ \"$3\" = state ] && [ \"$4\" = hung ]; then exec sleep 30; fi\necho '{\"status\":\"running\",\"pid\":1}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn a_hung_runc_is_killed_at_the_timeout_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let runc = Runc::new(fake_runc(dir.path()), dir.path().join("root"), Duration::from_millis(500));
        assert_eq!(runc.state("fine").unwrap().unwrap().status, "running");
        let started = Instant::now();
        let err = runc.state("hung").unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());
        assert!(err.contains("did not finish within 0.5 s and was killed") && err.contains("state hung"), "{err}");
    }
}
