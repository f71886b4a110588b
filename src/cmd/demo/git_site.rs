//! The demo's site network: an internal git server (OpenSSH's sshd with git-shell) in a network
//! namespace of its own, and the subnet the runner gives environments. Environments reach the
//! git server over the runner's network under its policy; the runner host itself is never an
//! allowed destination, which is why the server cannot simply listen on this host's loopback.
//!
//! ```text
//!   environment ── runner bridge (10.217.N.0/24) ── host routing ── veth ── git netns (10.218.N.2:2222)
//! ```
//!
//! N is the first number no interface of this network namespace uses yet, chosen under a lock,
//! so demos running side by side do not share addresses.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// sshd's port in the git namespace.
const PORT: u16 = 2222;
/// Serialises the choice of N between demos on one host.
const LOCK: &str = "/run/airlock-demo-network.lock";

/// What --stop needs to end a kept demo's site network (kept in the demo's state file).
#[derive(Clone, Debug)]
pub struct SiteNames {
    /// The git server's network namespace (`ip netns`).
    pub netns: String,
    /// The host end of its veth.
    pub veth: String,
    /// The runner's bridge (also the name of its nftables tables).
    pub bridge: String,
}

impl SiteNames {
    fn for_process() -> SiteNames {
        let pid = std::process::id();
        SiteNames { netns: format!("airlock-demo-git-{pid}"), veth: format!("adg{pid}"), bridge: format!("adb{pid}") }
    }

    pub fn to_json(&self) -> Value {
        json!({"netns": self.netns, "veth": self.veth, "bridge": self.bridge})
    }

    pub fn from_json(value: &Value) -> Option<SiteNames> {
        let field = |name: &str| value[name].as_str().map(str::to_string);
        Some(SiteNames { netns: field("netns")?, veth: field("veth")?, bridge: field("bridge")? })
    }

    /// Removes the namespace (its sshd dies with its last process: killed first), the veth,
    /// and the runner's bridge and tables (after the runner stopped). Each may be gone already.
    pub fn remove(&self, sshd_pid: Option<i32>) {
        if let Some(pid) = sshd_pid.filter(|p| *p > 0) {
            // SAFETY: signals one process group (sshd leads its own); no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let quiet = |args: &[&str]| {
            let _ = Command::new(args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        quiet(&["ip", "link", "del", &self.veth]);
        quiet(&["ip", "netns", "del", &self.netns]);
        quiet(&["ip", "link", "del", &self.bridge]);
        quiet(&["nft", "delete", "table", "inet", &self.bridge]);
        quiet(&["nft", "delete", "table", "bridge", &self.bridge]);
    }
}

/// The git server and the addresses chosen for this demo.
pub struct GitSite {
    pub names: SiteNames,
    /// The git server's address.
    pub address: String,
    /// The environments' subnet for `[runner.network]`.
    pub env_subnet: String,
    /// The git server's network, for `[egress] allow` (the runner clones from the host first).
    pub site_net: String,
    sshd: Option<Child>,
    repos: PathBuf,
    log: PathBuf,
    /// Left running for `--keep`: not removed when dropped.
    kept: bool,
}

impl GitSite {
    /// Creates the namespace and its link, a bare repository `project.git` holding `files`
    /// (path, text) in one commit, and starts sshd there accepting `user_public_key` for
    /// git-shell only.
    pub fn start(dir: &Path, user_public_key: &str, files: &[(&str, &str)]) -> anyhow::Result<GitSite> {
        let names = SiteNames::for_process();
        let n = {
            let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOCK).with_context(|| format!("cannot open {LOCK}"))?;
            // SAFETY: flock on a descriptor this function owns; released when `lock` closes.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
                bail!("cannot lock {LOCK}: {}", std::io::Error::last_os_error());
            }
            let used = output(Command::new("ip").args(["-o", "-4", "addr"]))?;
            let n = (0..=255u32)
                .find(|n| !used.contains(&format!(" 10.218.{n}.")) && !used.contains(&format!(" 10.217.{n}.")))
                .context("every 10.217.N.0/24 and 10.218.N.0/29 network is in use on this host; end other demos first")?;
            let (host, site) = (format!("10.218.{n}.1"), format!("10.218.{n}.2"));
            let (netns, veth) = (&names.netns, &names.veth);
            let setup = format!(
                "ip netns add {netns} && ip link add {veth} type veth peer name eth0 netns {netns} && ip addr add {host}/29 dev {veth} \
                 && ip link set {veth} up && ip -n {netns} link set lo up && ip -n {netns} addr add {site}/29 dev eth0 \
                 && ip -n {netns} link set eth0 up && ip -n {netns} route add default via {host}"
            );
            if let Err(e) = output(Command::new("sh").args(["-c", &setup])) {
                names.remove(None);
                return Err(e.context("cannot create the git server's network namespace"));
            }
            n
        };
        let mut site = GitSite {
            names,
            address: format!("10.218.{n}.2"),
            env_subnet: format!("10.217.{n}.0/24"),
            site_net: format!("10.218.{n}.0/29"),
            sshd: None,
            repos: dir.join("git/repos"),
            log: dir.join("git/sshd.log"),
            kept: false,
        };
        site.make_repository(dir, files)?;
        site.start_sshd(dir, user_public_key)?;
        Ok(site)
    }

    fn make_repository(&self, dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<()> {
        let seed = dir.join("git/seed");
        for (path, text) in files {
            let file = seed.join(path);
            fs::create_dir_all(file.parent().expect("a file in the seed folder"))?;
            fs::write(&file, text)?;
        }
        let git = |args: &[&str], at: &Path| output(Command::new("git").args(args).current_dir(at));
        git(&["init", "-q", "-b", "main"], &seed)?;
        git(&["add", "."], &seed)?;
        git(&["-c", "user.name=Site admin", "-c", "user.email=admin@site.internal", "commit", "-qm", "The project, with its devcontainer.json"], &seed)?;
        fs::create_dir_all(&self.repos)?;
        output(Command::new("git").args(["clone", "-q", "--bare"]).arg(&seed).arg(self.repos.join("project.git")))?;
        Ok(())
    }

    fn start_sshd(&mut self, dir: &Path, user_public_key: &str) -> anyhow::Result<()> {
        let d = dir.join("git");
        output(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join("host_key")))?;
        let git_shell = ["/usr/bin/git-shell", "/usr/local/bin/git-shell"].into_iter().find(|p| Path::new(p).exists()).context("git-shell is missing (Debian package git)")?;
        fs::write(
            d.join("authorized_keys"),
            format!("command=\"{git_shell} -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",no-port-forwarding,no-pty,no-agent-forwarding {user_public_key}\n"),
        )?;
        fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress {}:{PORT}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
                self.address,
                d = d.display()
            ),
        )?;
        // OpenSSH's privilege separation folder (Debian's package makes it at boot).
        fs::create_dir_all("/run/sshd")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names.netns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&self.log)?)
            .stderr(fs::File::create(&self.log)?)
            // Its own group, so that ending the demo ends sshd and what it forked.
            .process_group(0);
        self.sshd = Some(cmd.spawn().context("cannot start sshd (Debian package openssh-server)")?);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((self.address.as_str(), PORT)).is_err() {
            if Instant::now() > deadline {
                bail!("sshd did not listen on {} within 10 s:\n{}", self.host(), fs::read_to_string(&self.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `address:port`, as repository URLs and git credentials name it.
    pub fn host(&self) -> String {
        format!("{}:{PORT}", self.address)
    }

    pub fn url(&self) -> String {
        format!("ssh://root@{}{}/project.git", self.host(), self.repos.display())
    }

    /// The server's host key as a known_hosts line.
    pub fn known_hosts(&self) -> anyhow::Result<String> {
        let key = fs::read_to_string(self.repos.parent().expect("git/repos").join("host_key.pub"))?;
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        Ok(format!("[{}]:{PORT} {}\n", self.address, key.join(" ")))
    }

    /// The newest commit of `main` on the server: `hash author <email> subject`.
    pub fn head(&self) -> anyhow::Result<String> {
        let out = output(Command::new("git").arg("--git-dir").arg(self.repos.join("project.git")).args(["log", "-1", "--format=%h %an <%ae> %s", "main"]))?;
        Ok(out.trim().to_string())
    }

    pub fn sshd_pid(&self) -> Option<i32> {
        self.sshd.as_ref().map(|c| c.id() as i32)
    }

    /// Leaves sshd and the namespace running (`--keep`); --stop ends them by name.
    pub fn detach(mut self) {
        self.kept = true;
    }
}

impl Drop for GitSite {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        self.names.remove(self.sshd_pid());
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.wait();
        }
    }
}

/// Runs a command; its standard output, or an error with its standard error.
fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
