//! The Linux calls the engine needs that std does not offer: a user namespace handle for an
//! ID mapping, ID-mapped mounts (new mount API), overlay/tmpfs mounts, unmounting, the mount
//! table, and waiting on a process that is not our child (pidfd).

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_IDMAP: u64 = 0x10_0000;

/// A user namespace mapping ids `0..size` to `host_id..host_id+size` (uids and gids),
/// as a descriptor of `/proc/PID/ns/user`.
///
/// A forked child unshares the namespace and waits; the parent writes its maps, opens the
/// namespace and tells it to exit. The child only makes async-signal-safe calls (the parent
/// has other threads), and first closes every descriptor it inherited but its two pipe ends:
/// a fork without exec would otherwise hold other threads' pipes (and other helpers'
/// handshake pipes) open. For the same reason the handshake is a byte each way, never EOF.
pub(crate) fn userns_fd(host_id: u32, size: u32) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    // SAFETY: the child only calls dup2/close_range/prctl/unshare/write/read/_exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            // done_r becomes 0, ready_w becomes 1 (via copies above 2, so neither clobbers
            // the other), everything else is closed.
            let done = libc::fcntl(done_r.as_raw_fd(), libc::F_DUPFD, 3);
            let ready = libc::fcntl(ready_w.as_raw_fd(), libc::F_DUPFD, 3);
            libc::dup2(done, 0);
            libc::dup2(ready, 1);
            libc::syscall(libc::SYS_close_range, 2u32, u32::MAX, 0u32);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let ok: u8 = u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0);
            libc::write(1, (&ok as *const u8).cast(), 1);
            let mut byte = 0u8;
            libc::read(0, (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        if !readable_within(&ready_r, Duration::from_secs(10))? {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the user namespace helper process did not answer"));
        }
        let mut ok = [0u8];
        let n = unsafe { libc::read(ready_r.as_raw_fd(), ok.as_mut_ptr().cast(), 1) };
        if n != 1 || ok[0] != 1 {
            return Err(io::Error::other("the helper process could not create a user namespace (unshare CLONE_NEWUSER)"));
        }
        let map = format!("0 {host_id} {size}\n");
        fs::write(format!("/proc/{pid}/uid_map"), &map)?;
        fs::write(format!("/proc/{pid}/gid_map"), &map)?;
        fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from)
    })();
    let released = unsafe { libc::write(done_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    if released != 1 {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {}
    result
}

fn readable_within(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Mounts a read-only, nosuid, nodev clone of `src` at `dst` in which files owned by id N
/// appear owned by the namespace's mapping of N.
pub(crate) fn idmapped_mount(src: &Path, dst: &Path, userns: &OwnedFd) -> io::Result<()> {
    let tree = rustix::mount::open_tree(rustix::fs::CWD, src, OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: valid descriptor, empty C string, and a mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    rustix::mount::move_mount(&tree, "", rustix::fs::CWD, dst, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    Ok(())
}

/// `lowers` top first (overlayfs' `lowerdir=top:…:bottom`).
pub(crate) fn mount_overlay(lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let lowers: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let data = format!("lowerdir={},upperdir={},workdir={}", lowers.join(":"), upper.display(), work.display());
    let data = CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    rustix::mount::mount("overlay", target, "overlay", MountFlags::NODEV, data.as_c_str())?;
    Ok(())
}

/// A tmpfs only root can enter, kept out of swap where the kernel can (`noswap`, 6.4+).
pub(crate) fn mount_tmpfs(target: &Path, size: u64) -> io::Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let with = CString::new(format!("mode=0700,size={size},noswap")).expect("no NUL");
    match rustix::mount::mount("tmpfs", target, "tmpfs", flags, with.as_c_str()) {
        Err(rustix::io::Errno::INVAL) => {
            let without = CString::new(format!("mode=0700,size={size}")).expect("no NUL");
            rustix::mount::mount("tmpfs", target, "tmpfs", flags, without.as_c_str())?;
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Unmounts `path`; not a mount point (or gone) is fine. Busy (a host process has a file
/// open there) falls back to a lazy detach so the path is free at once.
pub(crate) fn unmount(path: &Path) -> io::Result<()> {
    match rustix::mount::unmount(path, UnmountFlags::NOFOLLOW) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            tracing::warn!(path = %path.display(), "mount busy, detaching it lazily");
            Ok(rustix::mount::unmount(path, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub(crate) struct MountEntry {
    pub(crate) mount_point: PathBuf,
    pub(crate) fs_type: String,
    pub(crate) options: String,
}

pub(crate) fn mountinfo() -> io::Result<Vec<MountEntry>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let mount_point = PathBuf::from(OsStr::from_bytes(&unescape(fields.get(4)?)));
    let options = fields.get(5)?.to_string();
    let fs_type = right.split(' ').next()?.to_string();
    Some(MountEntry { mount_point, fs_type, options })
}

/// Mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).ok().and_then(|o| u8::from_str_radix(o, 8).ok());
            if let Some(v) = oct {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Mount points at or below `dir`, deepest (latest) first, ready to be unmounted in order.
pub(crate) fn mounts_under(dir: &Path) -> io::Result<Vec<MountEntry>> {
    let mut found: Vec<MountEntry> = mountinfo()?.into_iter().filter(|m| m.mount_point.starts_with(dir)).collect();
    found.reverse();
    Ok(found)
}

/// Waits up to `timeout` for process `pid` (not necessarily our child) to exit.
/// Returns whether it is gone.
/// A descriptor naming process `pid` for as long as it is open (pidfd_open(2)).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a new descriptor is returned or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// SIGKILL to the process a pidfd names (nothing if it is gone).
pub(crate) fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: plain syscall on a descriptor we own; no siginfo.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<libc::siginfo_t>(), 0) };
}

pub(crate) fn wait_exit(pid: i32, timeout: Duration) -> io::Result<bool> {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(true),
        Err(e) => return Err(e),
    };
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let m = parse_mountinfo_line("45 27 0:39 / /tmp/a\\040b rw,relatime shared:1 - overlay overlay rw,lowerdir=/x").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/tmp/a b"));
        assert_eq!(m.fs_type, "overlay");
        assert_eq!(m.options, "rw,relatime");
    }
}
