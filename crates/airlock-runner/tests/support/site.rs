//! A "site" network namespace linked to the host by a veth, for tests whose environments
//! reach servers over the runner's network; and the guard that removes the runner's network.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use airlock_runner::network::Ipv4Net;

pub fn sh(command: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", command]).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

pub fn sh_ok(command: &str) -> String {
    let (ok, out) = sh(command);
    assert!(ok, "`{command}` failed: {out}");
    out
}

/// A namespace standing for the site's network: `<name>` linked to the host by a veth
/// (`<name>h` in the host, .1 of a /29; the site has .2 and .3). Removed when dropped.
pub struct Site {
    name: String,
    net: Ipv4Net,
}

impl Site {
    pub fn new(name: &str, net: &str) -> Site {
        let site = Site { name: name.to_string(), net: Ipv4Net::parse(net).unwrap() };
        site.remove();
        let (host, a, b) = (site.addr(1), site.addr(2), site.addr(3));
        let n = name;
        sh_ok(&format!(
            "ip netns add {n} && ip link add {n}h type veth peer name eth0 netns {n} && ip addr add {host}/29 dev {n}h && ip link set {n}h up \
             && ip -n {n} link set lo up && ip -n {n} addr add {a}/29 dev eth0 && ip -n {n} addr add {b}/29 dev eth0 \
             && ip -n {n} link set eth0 up && ip -n {n} route add default via {host}"
        ));
        site
    }

    pub fn addr(&self, n: u32) -> Ipv4Addr {
        self.net.nth(n)
    }

    /// `program` run inside the site's namespace (`ip netns exec` execs it: same process).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    pub fn netns(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    pub fn remove(&self) {
        let _ = sh(&format!("ip link del {}h 2>/dev/null; ip netns del {} 2>/dev/null", self.name, self.name));
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes the runner's bridge and tables when dropped (after the environments' guard).
pub struct NetworkGuard<'a>(pub &'a airlock_runner::engine::Engine);

impl Drop for NetworkGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove_network() {
            eprintln!("cleanup: removing the runner network failed: {e}");
        }
    }
}

