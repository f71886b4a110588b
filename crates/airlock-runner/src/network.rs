//! An environment's network: its own network namespace with a veth into a per-runner bridge,
//! and a default-deny policy enforced in the host by nftables.
//!
//! ```text
//!   environment netns (made by runc)                              host
//!   eth0  <addr of slot n>/32        ── veth ──  <bridge>v<n> ─ <bridge> (gateway .1) ─ routing ─ site
//! ```
//!
//! runc makes the namespace (as for any environment); once init runs, the runner names it
//! (`ip netns attach <bridge>-<env id> <pid>`) and adds the interface from outside: the veth's
//! other end moved in as `eth0`, its address and default route. The namespace belongs to
//! the environment's user namespace, but root there holds neither CAP_NET_ADMIN nor
//! CAP_NET_RAW (spec.rs drops them, `noNewPrivileges` and seccomp keep them dropped), so it
//! cannot change interfaces, addresses, routes or firewall rules; and the policy lives in
//! the host's namespace anyway, where nothing in the environment can reach it.
//!
//! Why not a namespace the runner makes (owned by the host's user namespace) passed to runc
//! by path: runc 1.1 joins the user namespace first and every other one after it, so a
//! `runc exec` into such an environment fails with EPERM on the network namespace (and runc
//! cannot mount `/sys` for it either).
//!
//! nftables holds the policy in two tables named after the bridge (two runners on one host
//! use different bridges and never touch each other's rules):
//! - `inet <bridge>`: every packet arriving from the bridge goes, before routing (so a
//!   destination the host has no route to is counted too), through the chain of its source
//!   environment (`envs` verdict map, address → `env_<slot>`): established flows pass, the
//!   environment's allow set passes, everything else (the runner host, other destinations,
//!   169.254.169.254) is remembered in the `refused` set, counted, and dropped. Nothing
//!   starts a connection into an environment. Outbound flows are masqueraded.
//! - `bridge <bridge>`: frames between two ports of the bridge (environment to environment)
//!   go through the chain of the port they came in by (`ports` verdict map, veth →
//!   `env_<slot>`), which remembers, counts and drops them.
//!
//! Where `br_netfilter` is loaded (Docker loads it), the IP hooks see a packet from an
//! environment as coming in by its veth rather than the bridge (and not again on the
//! bridge), so the inet rules match both names. The allow set never opens the runner host
//! (`fib daddr type local`), the environments' subnet or the metadata address, whatever CIDR
//! it holds.
//!
//! The tools (`ip`, `nft`) are driven as commands: they are the kernel's maintained,
//! documented interface for these objects, the rules read as nftables' own language (what an
//! operator types to inspect them: `nft list table inet airlock0`), and `nft -f` applies a
//! change as one atomic transaction.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlock_api::network::AllowEntryError;
pub use airlock_api::network::{AllowEntry, Destination, Ipv4Net, Proto};

/// Where `ip netns` keeps the named namespaces it creates.
pub const NETNS_DIR: &str = "/run/netns";
/// The metadata address of cloud hosts: never reachable, whatever the allow-list says.
const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// How long a refused destination is remembered, and how many at most (per runner).
const REFUSED_TIMEOUT: &str = "10m";
const REFUSED_SIZE: u32 = 4096;
/// Refused destinations logged per environment per [`Network::log_refusals`] call.
const LOG_PER_ENV: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network setting {setting}: `{value}` {reason}")]
    Config { setting: &'static str, value: String, reason: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("cannot run `{tool}` ({source}); install it (scripts/install-deps.sh) or disable runner.network")]
    ToolMissing { tool: &'static str, source: std::io::Error },
    #[error("allow-list entry `{entry}`: cannot resolve {host} through the host's resolver: {reason}")]
    Resolve { entry: String, host: String, reason: String },
    #[error("hosts entry `{name}`: cannot resolve {target} through the host's resolver: {reason}")]
    ResolveHost { name: String, target: String, reason: String },
    #[error("the project's network entry `{entry}` is not allowed by the site's runner.network.allow ({site}); ask the site admin to add it, or remove it from the project")]
    NotInSite { entry: String, site: String },
    #[error("slot {slot} has no address in subnet {subnet}: {hosts} environments fit; widen runner.network.subnet or lower the capacity")]
    SubnetFull { slot: u32, subnet: String, hosts: u32 },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A site or project allow-list entry that does not parse, as a configuration error.
fn bad_entry(setting: &'static str) -> impl Fn(AllowEntryError) -> NetworkError {
    move |e| NetworkError::Config { setting, value: e.value, reason: e.reason.to_string() }
}

/// The network of a runner's environments (`[runner.network]`, resolved by the caller).
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The bridge, and the name of the nftables tables. 1-15 of `[a-z0-9_-]`.
    pub bridge: String,
    /// The bridge takes the first address, environment slot n the (n + 2)th.
    pub subnet: Ipv4Net,
    /// Destinations every environment may reach (the site's allow-list, plus the mirror and
    /// control plane when the site allows them).
    pub allow: Vec<AllowEntry>,
    /// The site's DNS servers: written to resolv.conf and allowed on 53/udp and 53/tcp.
    pub dns: Vec<Ipv4Addr>,
    /// `/etc/hosts` entries: name → address (or a name the runner resolves at start).
    pub hosts: Vec<(String, String)>,
}

impl NetworkConfig {
    pub const DEFAULT_BRIDGE: &'static str = "airlock0";
    pub const DEFAULT_SUBNET: &'static str = "10.213.0.0/16";

    pub fn new(bridge: &str, subnet: Ipv4Net) -> NetworkConfig {
        NetworkConfig { bridge: bridge.to_string(), subnet, allow: Vec::new(), dns: Vec::new(), hosts: Vec::new() }
    }

    /// Builds the configuration from the site's settings (`[runner.network]`); `services` are
    /// the URLs of the mirror and control plane to allow as well (empty when the site says no).
    pub fn from_settings(
        bridge: &str,
        subnet: &str,
        allow: &[String],
        dns: &[String],
        hosts: &[(String, String)],
        services: &[String],
    ) -> Result<NetworkConfig, NetworkError> {
        let subnet = Ipv4Net::parse(subnet)
            .ok_or_else(|| NetworkError::Config { setting: "subnet", value: subnet.to_string(), reason: "is not an IPv4 network like 10.213.0.0/16".into() })?;
        let mut cfg = NetworkConfig::new(bridge, subnet);
        for entry in allow {
            cfg.allow.push(AllowEntry::parse(entry).map_err(bad_entry("allow"))?);
        }
        for url in services {
            cfg.allow.push(AllowEntry::from_url(url).map_err(bad_entry("allow_mirror"))?);
        }
        for server in dns {
            let addr = server.parse().map_err(|_| NetworkError::Config { setting: "dns", value: server.clone(), reason: "is not an IPv4 address".into() })?;
            cfg.dns.push(addr);
        }
        cfg.hosts = hosts.to_vec();
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), NetworkError> {
        let b = &self.bridge;
        if b.is_empty() || b.len() > 15 || !b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_') {
            return Err(NetworkError::Config { setting: "bridge", value: b.clone(), reason: "must be 1 to 15 lowercase letters, digits, `-` or `_` (a Linux interface name)".into() });
        }
        if self.subnet.prefix > 29 || self.subnet.prefix < 8 {
            return Err(NetworkError::Config { setting: "subnet", value: self.subnet.to_string(), reason: "must be a /8 to /29 network".into() });
        }
        for (name, _) in &self.hosts {
            if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') {
                return Err(NetworkError::Config { setting: "hosts", value: name.clone(), reason: "is not a host name".into() });
            }
        }
        Ok(())
    }
}

/// A destination an environment was refused (remembered for 10 minutes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refusal {
    pub destination: SocketAddr,
    pub proto: Proto,
}

/// What the policy refused an environment: packets (each a connection attempt for TCP) and
/// the destinations remembered.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    pub count: u64,
    pub destinations: Vec<Refusal>,
}

/// An environment's network worked out before it starts: names resolved, files written.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    elements: Vec<(Ipv4Net, Proto, u16)>,
    pub(crate) hosts_file: String,
    pub(crate) resolv_conf: String,
}

pub(crate) struct Network {
    cfg: NetworkConfig,
    gateway: Ipv4Addr,
    /// Destinations already logged per environment, so each is logged once.
    logged: Mutex<HashMap<String, BTreeSet<Refusal>>>,
}

impl Network {
    /// Makes (or reuses) the bridge and (re)writes the base of the nftables tables, keeping the
    /// chains of environments that run (see [`Network::keep_only`]).
    pub(crate) fn open(cfg: NetworkConfig) -> Result<Network, NetworkError> {
        cfg.validate()?;
        let gateway = cfg.subnet.nth(1);
        let net = Network { gateway, cfg, logged: Mutex::default() };
        let b = &net.cfg.bridge;
        let made = !run_status("ip", &["link", "show", "dev", b])?;
        if made {
            run("ip", &["link", "add", "name", b, "type", "bridge"])?;
        }
        if let Err(e) = net.configure() {
            if made {
                let _ = net.remove_all();
            }
            return Err(e);
        }
        Ok(net)
    }

    /// The bridge's address, routing, and the base of the tables.
    fn configure(&self) -> Result<(), NetworkError> {
        let (net, b) = (self, &self.cfg.bridge);
        let cidr = format!("{}/{}", net.gateway, net.cfg.subnet.prefix);
        run("ip", &["addr", "replace", &cidr, "dev", b])?;
        run("ip", &["link", "set", "dev", b, "up"])?;
        // Routing between the bridge and the site; the nftables forward chain decides what.
        fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|source| NetworkError::Io { path: "/proc/sys/net/ipv4/ip_forward".into(), source })?;
        nft_apply(&net.base_rules())
    }

    fn base_rules(&self) -> String {
        let b = &self.cfg.bridge;
        let subnet = self.cfg.subnet;
        let set = format!(
            "{{ type ipv4_addr . ipv4_addr . inet_proto . inet_service; size {REFUSED_SIZE}; timeout {REFUSED_TIMEOUT}; flags dynamic, timeout; }}"
        );
        format!(
            r#"add table inet {b}
add set inet {b} refused {set}
add map inet {b} envs {{ type ipv4_addr : verdict; }}
add chain inet {b} forward {{ type filter hook forward priority filter; policy accept; }}
add chain inet {b} prerouting {{ type filter hook prerouting priority filter; policy accept; }}
add chain inet {b} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
flush chain inet {b} forward
flush chain inet {b} prerouting
flush chain inet {b} postrouting
add rule inet {b} forward oifname "{b}" ct state established,related accept
add rule inet {b} forward oifname "{b}" counter drop
add rule inet {b} prerouting iifname "{b}" meta nfproto ipv6 drop
add rule inet {b} prerouting iifname "{b}" ip saddr vmap @envs
add rule inet {b} prerouting iifname "{b}" counter drop
add rule inet {b} prerouting iifname "{ports}*" meta nfproto ipv6 drop
add rule inet {b} prerouting iifname "{ports}*" ip saddr vmap @envs
add rule inet {b} prerouting iifname "{ports}*" counter drop
add rule inet {b} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade
add table bridge {b}
add set bridge {b} refused {set}
add map bridge {b} ports {{ type ifname : verdict; }}
add chain bridge {b} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain bridge {b} forward
add rule bridge {b} forward iifname vmap @ports
add rule bridge {b} forward iifname "{ports}*" drop
"#,
            ports = self.veth_prefix(),
        )
    }

    pub(crate) fn address(&self, slot: u32) -> Result<Ipv4Addr, NetworkError> {
        let hosts = self.slots();
        if slot >= hosts {
            return Err(NetworkError::SubnetFull { slot, subnet: self.cfg.subnet.to_string(), hosts });
        }
        Ok(self.cfg.subnet.nth(slot + 2))
    }

    pub(crate) fn netns_name(&self, env_id: &str) -> String {
        format!("{}-{env_id}", self.cfg.bridge)
    }

    pub(crate) fn netns_path(&self, env_id: &str) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(self.netns_name(env_id))
    }

    /// The host end of slot n's veth: this prefix and n.
    pub(crate) fn veth(&self, slot: u32) -> String {
        format!("{}{slot}", self.veth_prefix())
    }

    /// `<bridge>v` when that and the largest slot number fit in an interface name (15
    /// characters), else `al<hash of the bridge name>v`. One prefix for all of a runner's
    /// veths, so the bridge rules can name them all (`<prefix>*`).
    fn veth_prefix(&self) -> String {
        let digits = self.slots().saturating_sub(1).max(1).ilog10() as usize + 1;
        let prefix = format!("{}v", self.cfg.bridge);
        if prefix.len() + digits <= 15 {
            return prefix;
        }
        let hash = self.cfg.bridge.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193));
        format!("al{:04x}v", hash & 0xffff)
    }

    /// How many environments the subnet holds (network, gateway and broadcast excluded).
    fn slots(&self) -> u32 {
        (1u32 << (32 - self.cfg.subnet.prefix)) - 3
    }

    /// The destinations of an environment: the site's allow-list, narrowed to `project` when
    /// the project carries one (every entry must be within the site's), plus DNS servers.
    fn allowed_for(&self, project: Option<&[String]>) -> Result<Vec<AllowEntry>, NetworkError> {
        let mut allowed = match project {
            None => self.cfg.allow.clone(),
            Some(entries) => {
                let mut narrowed = Vec::new();
                for text in entries {
                    let entry = AllowEntry::parse(text).map_err(bad_entry("project network.allow"))?;
                    if !self.cfg.allow.iter().any(|site| entry.within(site)) {
                        let site = self.cfg.allow.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                        return Err(NetworkError::NotInSite { entry: text.clone(), site: if site.is_empty() { "empty".into() } else { site } });
                    }
                    narrowed.push(entry);
                }
                narrowed
            }
        };
        for dns in &self.cfg.dns {
            for proto in [Proto::Udp, Proto::Tcp] {
                allowed.push(AllowEntry { destination: Destination::Net(Ipv4Net { addr: *dns, prefix: 32 }), port: 53, proto });
            }
        }
        Ok(allowed)
    }

    /// Everything that can be refused before the environment starts: the project's list
    /// within the site's, names resolved (allow-list and hosts entries), the files.
    pub(crate) fn plan(&self, project: Option<&[String]>) -> Result<Plan, NetworkError> {
        let allowed = self.allowed_for(project)?;
        let elements = self.resolve(&allowed)?;
        let hosts_file = self.hosts_file()?;
        let resolv_conf = self.cfg.dns.iter().map(|d| format!("nameserver {d}\n")).collect::<String>();
        Ok(Plan { elements, hosts_file, resolv_conf })
    }

    /// Gives the started environment (init `pid`) its interface, address, route and rules
    /// (anything left from an earlier run of the same slot or environment is removed first);
    /// on failure nothing of it is left.
    pub(crate) fn attach(&self, env_id: &str, slot: u32, pid: i32, plan: &Plan) -> Result<Ipv4Addr, NetworkError> {
        let address = self.address(slot)?;
        self.teardown(env_id, slot)?;
        if let Err(e) = self.create(env_id, slot, pid, address, &plan.elements) {
            let _ = self.teardown(env_id, slot);
            return Err(e);
        }
        Ok(address)
    }

    fn create(&self, env_id: &str, slot: u32, pid: i32, address: Ipv4Addr, elements: &[(Ipv4Net, Proto, u16)]) -> Result<(), NetworkError> {
        let ns = self.netns_name(env_id);
        let veth = self.veth(slot);
        let b = &self.cfg.bridge;
        // A name for the namespace runc made (a bind mount under /run/netns), so `ip -n`
        // reaches it and a restarted runner finds it.
        run("ip", &["netns", "attach", &ns, &pid.to_string()])?;
        // IPv4 only: no IPv6 address, so no path around the IPv4 policy. Before eth0 exists,
        // so it never sends a solicitation or a multicast report.
        run("ip", &["netns", "exec", &ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])?;
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        run("ip", &["link", "set", "dev", &veth, "master", b, "up"])?;
        // A /32 and a default route "onlink" via the bridge: an environment has no link-layer
        // neighbours, so even a packet to another environment goes through the host, where
        // it is refused and remembered like any other.
        let cidr = format!("{address}/32");
        run("ip", &["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
        run("ip", &["-n", &ns, "route", "add", "default", "via", &self.gateway.to_string(), "dev", "eth0", "onlink"])?;
        let chain = format!("env_{slot}");
        let subnet = self.cfg.subnet;
        let mut script = format!(
            "add set inet {b} allow_{slot} {{ type ipv4_addr . inet_proto . inet_service; flags interval; }}\n\
             add chain inet {b} {chain}\n\
             add rule inet {b} {chain} ct state established,related accept\n\
             add rule inet {b} {chain} ip daddr != {{ {METADATA}, {subnet} }} fib daddr type != local ip daddr . meta l4proto . th dport @allow_{slot} accept\n\
             add rule inet {b} {chain} meta l4proto {{ tcp, udp }} add @refused {{ ip saddr . ip daddr . meta l4proto . th dport }}\n\
             add rule inet {b} {chain} counter drop\n\
             add element inet {b} envs {{ {address} : jump {chain} }}\n\
             add chain bridge {b} {chain}\n\
             add rule bridge {b} {chain} meta l4proto {{ tcp, udp }} add @refused {{ ip saddr . ip daddr . meta l4proto . th dport }}\n\
             add rule bridge {b} {chain} ether type ip counter drop\n\
             add rule bridge {b} {chain} drop\n\
             add element bridge {b} ports {{ \"{veth}\" : jump {chain} }}\n"
        );
        if !elements.is_empty() {
            let list: Vec<String> = elements.iter().map(|(net, proto, port)| format!("{net} . {} . {port}", proto.name())).collect();
            script.push_str(&format!("add element inet {b} allow_{slot} {{ {} }}\n", list.join(", ")));
        }
        nft_apply(&script)
    }

    /// Removes the environment's namespace, veth and rules; what is already gone is fine.
    pub(crate) fn teardown(&self, env_id: &str, slot: u32) -> Result<(), NetworkError> {
        let veth = self.veth(slot);
        if run_status("ip", &["link", "show", "dev", &veth])? {
            run("ip", &["link", "del", "dev", &veth])?;
        }
        if self.netns_path(env_id).exists() {
            run("ip", &["netns", "del", &self.netns_name(env_id)])?;
        }
        self.remove_rules(slot)?;
        self.logged.lock().unwrap_or_else(|e| e.into_inner()).remove(env_id);
        Ok(())
    }

    fn remove_rules(&self, slot: u32) -> Result<(), NetworkError> {
        let b = &self.cfg.bridge;
        let address = self.address(slot)?;
        // Deleting what does not exist fails the whole transaction: declare each object first
        // (`add` of an identical one is a no-op), and empty a chain before deleting it.
        let veth = self.veth(slot);
        let mut script = String::new();
        for (family, map, key) in [("inet", "envs", address.to_string()), ("bridge", "ports", format!("\"{veth}\""))] {
            script.push_str(&format!(
                "add chain {family} {b} env_{slot}\n\
                 add element {family} {b} {map} {{ {key} : jump env_{slot} }}\n\
                 delete element {family} {b} {map} {{ {key} }}\n\
                 flush chain {family} {b} env_{slot}\n\
                 delete chain {family} {b} env_{slot}\n"
            ));
        }
        script.push_str(&format!(
            "add set inet {b} allow_{slot} {{ type ipv4_addr . inet_proto . inet_service; flags interval; }}\n\
             delete set inet {b} allow_{slot}\n"
        ));
        nft_apply(&script)
    }

    /// After a restart: removes namespaces, veths and chains of environments that are not in
    /// `running` (env id, slot); the running ones keep theirs.
    pub(crate) fn keep_only(&self, running: &[(String, u32)]) -> Result<(), NetworkError> {
        let prefix = format!("{}-", self.cfg.bridge);
        if let Ok(entries) = fs::read_dir(NETNS_DIR) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(env_id) = name.strip_prefix(&prefix) else { continue };
                if crate::ids::validate_env_id(env_id).is_ok() && !running.iter().any(|(id, _)| id == env_id) {
                    tracing::info!(env = env_id, netns = name, "removing the network namespace of an environment that is not running");
                    run("ip", &["netns", "del", &name])?;
                }
            }
        }
        let kept: Vec<u32> = running.iter().map(|(_, slot)| *slot).collect();
        for slot in self.env_chains()? {
            if !kept.contains(&slot) {
                let veth = self.veth(slot);
                if run_status("ip", &["link", "show", "dev", &veth])? {
                    run("ip", &["link", "del", "dev", &veth])?;
                }
                self.remove_rules(slot)?;
            }
        }
        Ok(())
    }

    /// Slots that have a chain in the inet table.
    fn env_chains(&self) -> Result<Vec<u32>, NetworkError> {
        let doc = nft_json(&["list", "table", "inet", &self.cfg.bridge])?;
        Ok(objects(&doc, "chain").filter_map(|c| c["name"].as_str()?.strip_prefix("env_")?.parse().ok()).collect())
    }

    /// Removes the bridge and both tables (nothing of the runner's network is left).
    pub(crate) fn remove_all(&self) -> Result<(), NetworkError> {
        self.keep_only(&[])?;
        let b = &self.cfg.bridge;
        nft_apply(&format!("add table inet {b}\ndelete table inet {b}\nadd table bridge {b}\ndelete table bridge {b}\n"))?;
        if run_status("ip", &["link", "show", "dev", b])? {
            run("ip", &["link", "del", "dev", b])?;
        }
        Ok(())
    }

    /// Refused packets per slot, from one listing of each table (read every agent poll for
    /// the metrics, so one `nft` call per table rather than per environment).
    pub(crate) fn refusal_counts(&self) -> Result<HashMap<u32, u64>, NetworkError> {
        let b = &self.cfg.bridge;
        let mut counts = HashMap::new();
        for family in ["inet", "bridge"] {
            let doc = nft_json(&["list", "table", family, b])?;
            for rule in objects(&doc, "rule") {
                let Some(slot) = rule["chain"].as_str().and_then(|c| c.strip_prefix("env_")).and_then(|n| n.parse::<u32>().ok()) else { continue };
                let packets: u64 = rule["expr"].as_array().into_iter().flatten().filter_map(|e| e["counter"]["packets"].as_u64()).sum();
                *counts.entry(slot).or_default() += packets;
            }
        }
        Ok(counts)
    }

    /// What the policy refused the environment in `slot`.
    pub(crate) fn refusals(&self, slot: u32) -> Result<Refusals, NetworkError> {
        let address = self.address(slot)?;
        let b = &self.cfg.bridge;
        let mut out = Refusals::default();
        for family in ["inet", "bridge"] {
            let chain = nft_json(&["list", "chain", family, b, &format!("env_{slot}")]);
            if let Ok(doc) = chain {
                for rule in objects(&doc, "rule") {
                    for expr in rule["expr"].as_array().into_iter().flatten() {
                        out.count += expr["counter"]["packets"].as_u64().unwrap_or(0);
                    }
                }
            }
            let set = nft_json(&["list", "set", family, b, "refused"])?;
            for set in objects(&set, "set") {
                for elem in set["elem"].as_array().into_iter().flatten() {
                    let concat = elem["elem"]["val"]["concat"].as_array().or_else(|| elem["concat"].as_array());
                    let Some(concat) = concat else { continue };
                    let (Some(src), Some(dst)) = (concat.first().and_then(|v| v.as_str()), concat.get(1).and_then(|v| v.as_str())) else { continue };
                    if src.parse::<Ipv4Addr>().ok() != Some(address) {
                        continue;
                    }
                    let Ok(dst) = dst.parse::<Ipv4Addr>() else { continue };
                    let proto = match concat.get(2) {
                        Some(v) if v == "udp" || v == 17 => Proto::Udp,
                        _ => Proto::Tcp,
                    };
                    let port = concat.get(3).and_then(|v| v.as_u64()).unwrap_or(0) as u16;
                    out.destinations.push(Refusal { destination: SocketAddr::from((dst, port)), proto });
                }
            }
        }
        out.destinations.sort();
        out.destinations.dedup();
        Ok(out)
    }

    /// Logs the destinations refused to the environment since the last call, at most a few
    /// per call, each with the setting that would allow it.
    pub(crate) fn log_refusals(&self, env_id: &str, slot: u32) {
        let Ok(refusals) = self.refusals(slot) else { return };
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let seen = logged.entry(env_id.to_string()).or_default();
        let new: Vec<&Refusal> = refusals.destinations.iter().filter(|r| !seen.contains(*r)).collect();
        for r in new.iter().take(LOG_PER_ENV) {
            let setting = if self.cfg.subnet.contains(*match r.destination.ip() {
                std::net::IpAddr::V4(ref v4) => v4,
                _ => &Ipv4Addr::UNSPECIFIED,
            }) {
                "nothing: environments never reach each other or the runner".to_string()
            } else if r.destination.ip() == METADATA {
                "nothing: the metadata address is never reachable".to_string()
            } else {
                let suffix = if r.proto == Proto::Udp { "/udp" } else { "" };
                format!("add `{}{suffix}` to runner.network.allow", r.destination)
            };
            tracing::warn!(env = env_id, destination = %r.destination, proto = r.proto.name(), total_refused = refusals.count, "environment network: connection refused; to allow it: {setting}");
        }
        if new.len() > LOG_PER_ENV {
            tracing::warn!(env = env_id, more = new.len() - LOG_PER_ENV, "environment network: more refused destinations not logged");
        }
        seen.extend(new.into_iter().cloned());
    }

    /// `/etc/hosts` of an environment: localhost and the site's entries.
    fn hosts_file(&self) -> Result<String, NetworkError> {
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (name, target) in &self.cfg.hosts {
            let address = match target.parse::<Ipv4Addr>() {
                Ok(a) => a,
                Err(_) => first_ipv4(target, 0).map_err(|reason| NetworkError::ResolveHost { name: name.clone(), target: target.clone(), reason })?,
            };
            text.push_str(&format!("{address}\t{name}\n"));
        }
        Ok(text)
    }

    /// The nftables elements of an allow-list. A name is looked up in the site's `hosts`
    /// first (what the environment itself will resolve it to), then through the host's
    /// resolver (every IPv4 address it has).
    fn resolve(&self, allowed: &[AllowEntry]) -> Result<Vec<(Ipv4Net, Proto, u16)>, NetworkError> {
        let mut out = Vec::new();
        for entry in allowed {
            match &entry.destination {
                Destination::Net(net) => out.push((Ipv4Net { addr: net.network(), prefix: net.prefix }, entry.proto, entry.port)),
                Destination::Host(host) => {
                    let mapped = self.cfg.hosts.iter().find(|(name, _)| name.eq_ignore_ascii_case(host));
                    let v4: Vec<Ipv4Addr> = match mapped {
                        Some((_, target)) => match target.parse() {
                            Ok(a) => vec![a],
                            Err(_) => vec![first_ipv4(target, 0).map_err(|reason| NetworkError::Resolve { entry: entry.to_string(), host: target.clone(), reason })?],
                        },
                        None => all_ipv4(host, entry.port).map_err(|reason| NetworkError::Resolve { entry: entry.to_string(), host: host.clone(), reason })?,
                    };
                    out.extend(v4.into_iter().map(|a| (Ipv4Net { addr: a, prefix: 32 }, entry.proto, entry.port)));
                }
            }
        }
        out.sort_by_key(|(n, p, port)| (u32::from(n.addr), n.prefix, *p, *port));
        out.dedup();
        // nftables refuses overlapping intervals in one set: drop entries another covers.
        let all = out.clone();
        out.retain(|(n, p, port)| !all.iter().any(|(o, op, oport)| op == p && oport == port && o != n && o.covers(n)));
        Ok(out)
    }
}

fn first_ipv4(host: &str, port: u16) -> Result<Ipv4Addr, String> {
    Ok(all_ipv4(host, port)?[0])
}

/// Every IPv4 address of `host` through the host's resolver (at least one).
fn all_ipv4(host: &str, port: u16) -> Result<Vec<Ipv4Addr>, String> {
    let addrs = (host, port).to_socket_addrs().map_err(|e| e.to_string())?;
    let v4: Vec<Ipv4Addr> = addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .collect();
    if v4.is_empty() {
        return Err("no IPv4 address".to_string());
    }
    Ok(v4)
}

/// Runs a command; a non-zero exit is an error carrying its stderr.
fn run(program: &'static str, args: &[&str]) -> Result<String, NetworkError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetworkError::ToolMissing { tool: program, source })?;
    if !out.status.success() {
        return Err(NetworkError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a command succeeds (for "does it exist" questions).
fn run_status(program: &'static str, args: &[&str]) -> Result<bool, NetworkError> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| NetworkError::ToolMissing { tool: program, source })?;
    Ok(status.success())
}

/// Applies an nftables script as one transaction (`nft -f -`).
fn nft_apply(script: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::ToolMissing { tool: "nft", source })?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(|source| NetworkError::ToolMissing { tool: "nft", source })?;
    if !out.status.success() || written.is_err() {
        return Err(NetworkError::Command {
            command: format!("nft -f - <<EOF\n{script}EOF"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn nft_json(args: &[&str]) -> Result<serde_json::Value, NetworkError> {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let text = run("nft", &all)?;
    serde_json::from_str(&text).map_err(|e| NetworkError::Command { command: format!("nft {}", all.join(" ")), status: "unreadable output".into(), stderr: e.to_string() })
}

/// The objects of one kind (`chain`, `rule`, `set`) in `nft -j` output.
fn objects<'a>(doc: &'a serde_json::Value, kind: &'a str) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    doc["nftables"].as_array().into_iter().flatten().filter_map(move |o| o.get(kind))
}

/// Calls `f` every `period` until `stop` is set; used for the refusal log.
pub(crate) fn every(period: Duration, stop: &std::sync::atomic::AtomicBool, mut f: impl FnMut()) {
    let mut next = Instant::now() + period;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if Instant::now() >= next {
            f();
            next = Instant::now() + period;
        }
        std::thread::park_timeout(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_the_setting() {
        let err = NetworkConfig::from_settings("airlock0", "10.0.0.0/16", &["mirror.internal".into()], &[], &[], &[]).unwrap_err().to_string();
        assert!(err.contains("allow") && err.contains("mirror.internal"), "{err}");
        let err = NetworkConfig::from_settings("airlock0", "10.0.0.0/33", &[], &[], &[], &[]).unwrap_err().to_string();
        assert!(err.contains("subnet") && err.contains("10.0.0.0/33"), "{err}");
        let err = NetworkConfig::from_settings("airlock0", "10.0.0.0/16", &[], &["dns.internal".into()], &[], &[]).unwrap_err().to_string();
        assert!(err.contains("dns") && err.contains("IPv4"), "{err}");
    }

    #[test]
    fn covered_entries_are_merged_for_nftables() {
        let entries: Vec<AllowEntry> = ["10.20.0.0/16:22", "10.20.1.5:22", "10.20.1.5:443", "10.20.0.0/16:22"].iter().map(|t| AllowEntry::parse(t).unwrap()).collect();
        let net = Network { cfg: NetworkConfig::new("airlock0", Ipv4Net::parse("10.213.0.0/16").unwrap()), gateway: Ipv4Addr::new(10, 213, 0, 1), logged: Mutex::default() };
        let resolved = net.resolve(&entries).unwrap();
        assert_eq!(resolved.len(), 2, "{resolved:?}");
    }

    #[test]
    fn veth_names_fit_in_an_interface_name() {
        let net = Network { cfg: NetworkConfig::new("airlock0", Ipv4Net::parse("10.213.0.0/16").unwrap()), gateway: Ipv4Addr::new(10, 213, 0, 1), logged: Mutex::default() };
        assert_eq!(net.veth(3), "airlock0v3");
        assert_eq!(net.address(0).unwrap(), Ipv4Addr::new(10, 213, 0, 2));
        let long = Network { cfg: NetworkConfig::new("airlock-test-xy", Ipv4Net::parse("10.9.0.0/29").unwrap()), gateway: Ipv4Addr::new(10, 9, 0, 1), logged: Mutex::default() };
        assert!(long.veth(4_000_000).len() <= 15, "{}", long.veth(4_000_000));
        assert!(long.address(4).is_ok() && long.address(5).is_err(), "a /29 holds 5 environments");
    }
}
