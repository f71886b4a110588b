//! Resolves the user a session runs as (the image's `User`: `name`, `uid`, `name:group`,
//! `uid:gid`, empty for root) through the environment's own `/etc/passwd` and `/etc/group`,
//! read through the container's root with every path resolved inside it.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
    pub(crate) name: String,
    pub(crate) home: String,
    pub(crate) shell: String,
}

/// Files the environment controls: read at most this much.
const MAX_FILE: u64 = 1 << 20;

/// Resolves `user` against the files under `root` (e.g. `/proc/<init pid>/root`).
pub(crate) fn resolve_in(root: &Path, user: &str) -> Result<ExecUser, String> {
    let passwd = read_inside(root, "etc/passwd")?;
    let group = read_inside(root, "etc/group")?;
    resolve(&passwd, &group, user)
}

pub(crate) fn resolve(passwd: &str, group: &str, user: &str) -> Result<ExecUser, String> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entries: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 7).collect();
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => entries.iter().find(|f| f[2].parse() == Ok(uid)),
        Err(_) => Some(entries.iter().find(|f| f[0] == user_part).ok_or_else(|| format!("no user `{user_part}` in /etc/passwd"))?),
    };
    let uid = match entry {
        Some(f) => f[2].parse().map_err(|_| format!("bad uid in /etc/passwd for `{}`", f[0]))?,
        None => user_part.parse().expect("numeric here"),
    };
    let groups: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4).collect();
    let gid = match group_part {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("no group `{g}` in /etc/group"))?,
        },
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let name = entry.map(|f| f[0].to_string()).unwrap_or_default();
    let additional_gids = if name.is_empty() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|f| f[3].split(',').any(|member| member == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|&g| g != gid)
            .collect()
    };
    let field = |i: usize, default: &str| entry.map(|f| f[i]).filter(|v| !v.is_empty()).unwrap_or(default).to_string();
    Ok(ExecUser { uid, gid, additional_gids, home: field(5, "/"), shell: field(6, "/bin/sh"), name })
}

/// Reads `path` below `root`, symlinks resolved as if `root` were `/`. Missing → empty.
///
/// The environment controls this file and may make it anything: it is opened `O_PATH` first
/// (which never blocks and opens nothing), and only a regular file of at most [`MAX_FILE`]
/// bytes is then read. A FIFO, socket or device is refused instead of stalling the thread.
fn read_inside(root: &Path, path: &str) -> Result<String, String> {
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open the environment's root {}: {e}", root.display()))?;
    let found = match rustix::fs::openat2(&dir, path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(format!("cannot open /{path} in the environment: {e}")),
    };
    let stat = rustix::fs::fstat(&found).map_err(|e| format!("cannot stat /{path} in the environment: {e}"))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(format!(
            "/{path} in the environment is {}, not a regular file; the runner reads it only as a plain file \
             (restore /{path} as a regular file inside the environment, or recreate the environment)",
            describe(kind)
        ));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > MAX_FILE {
        return Err(format!("/{path} in the environment is {size} bytes, more than the {MAX_FILE} bytes the runner reads; shorten it"));
    }
    // Reopen the very inode checked above (the O_PATH descriptor pins it: no swap in between).
    // Non-blocking, no controlling terminal: belt and braces for a regular file.
    let fd = rustix::fs::open(format!("/proc/self/fd/{}", found.as_raw_fd()), OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open /{path} in the environment: {e}"))?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd).take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read /{path}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("/{path} in the environment grew past the {MAX_FILE} bytes the runner reads while being read"));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device node",
        FileType::Directory => "a directory",
        _ => "an unusual kind of file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nvscode:x:1000:1000::/home/vscode:/bin/zsh\nbroken\n";
    const GROUP: &str = "root:x:0:\ndocker:x:999:vscode\nvscode:x:1000:\nwheel:x:10:other,vscode\n";

    #[test]
    fn users_resolve_by_name_uid_and_group() {
        let root = resolve(PASSWD, GROUP, "").unwrap();
        assert_eq!((root.uid, root.gid, root.shell.as_str(), root.home.as_str()), (0, 0, "/bin/bash", "/root"));
        let v = resolve(PASSWD, GROUP, "vscode").unwrap();
        assert_eq!((v.uid, v.gid, v.shell.as_str()), (1000, 1000, "/bin/zsh"));
        assert_eq!(v.additional_gids, vec![999, 10]);
        let numeric = resolve(PASSWD, GROUP, "1000:docker").unwrap();
        assert_eq!((numeric.uid, numeric.gid, numeric.name.as_str()), (1000, 999, "vscode"));
        let unknown = resolve(PASSWD, GROUP, "4242").unwrap();
        assert_eq!((unknown.uid, unknown.gid, unknown.shell.as_str(), unknown.home.as_str()), (4242, 0, "/bin/sh", "/"));
        assert!(resolve(PASSWD, GROUP, "nobody").is_err());
        assert!(resolve(PASSWD, GROUP, "vscode:nogroup").is_err());
    }

    /// Run on a thread so that a regression (a blocking open) fails the test instead of hanging it.
    fn read_soon(root: &Path, path: &'static str) -> Result<String, String> {
        let root = root.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(read_inside(&root, path)));
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("reading a file of the environment blocked")
    }

    #[test]
    fn only_bounded_regular_files_are_read() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, etc.join("passwd"), FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        let err = read_soon(root.path(), "etc/passwd").unwrap_err();
        assert!(err.contains("/etc/passwd in the environment is a FIFO (named pipe), not a regular file"), "{err}");
        // Through a symlink (resolved inside the root) it is the same FIFO.
        std::os::unix::fs::symlink("/etc/passwd", etc.join("group")).unwrap();
        assert!(read_soon(root.path(), "etc/group").unwrap_err().contains("FIFO"));
        std::fs::create_dir(etc.join("shells")).unwrap();
        assert!(read_soon(root.path(), "etc/shells").unwrap_err().contains("a directory"));
        std::fs::write(etc.join("big"), vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        assert!(read_soon(root.path(), "etc/big").unwrap_err().contains("more than the 1048576 bytes"));
        std::fs::write(etc.join("ok"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        assert_eq!(read_soon(root.path(), "etc/ok").unwrap(), "root:x:0:0::/root:/bin/sh\n");
        assert_eq!(read_soon(root.path(), "etc/missing").unwrap(), "");
    }
}
