//! [`EgressGuard`]: decides whether a destination may be reached, before any socket opens.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::audit::{EgressAudit, EgressRecord};
use crate::rule::{normalize_name, parse_rules, Rule};
use crate::{EgressError, SETTING};

/// Looks host names up. The guard calls it only for names that an address entry of
/// `egress.allow` could vouch for, and for names an entry allows (to connect).
pub trait HostResolver: Send + Sync {
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The host's resolver (`getaddrinfo`: /etc/hosts, then the site's DNS servers).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok((host, 0u16).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// Why a destination is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permit {
    /// A local path or `file://` URL (git): no network at all.
    Local,
    /// A loopback address or `localhost`: always allowed.
    Loopback,
    /// An address inside this `egress.allow` entry.
    Address { rule: String },
    /// A name matched by this `egress.allow` entry.
    Name { rule: String },
    /// A name matched by no name entry that resolved to these addresses, every one of them
    /// loopback or inside an address entry. Connect only to these.
    Resolved { addresses: Vec<IpAddr> },
}

impl fmt::Display for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permit::Local => f.write_str("local (no network)"),
            Permit::Loopback => f.write_str("loopback (always allowed)"),
            Permit::Address { rule } => write!(f, "allowed by {rule}"),
            Permit::Name { rule } => write!(f, "allowed by {rule}"),
            Permit::Resolved { addresses } => {
                let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                write!(f, "resolves to {}, inside egress.allow", list.join(", "))
            }
        }
    }
}

/// A destination the guard would refuse, without the audit record a real attempt writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub reason: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The allow-list, its audit sink and the name of the component using it.
///
/// Cloning is cheap (shared rules, audit sink and resolver); [`EgressGuard::with_component`]
/// gives each component its own name in audit records.
#[derive(Clone)]
pub struct EgressGuard {
    rules: Arc<[Rule]>,
    audit: Arc<dyn EgressAudit>,
    resolver: Arc<dyn HostResolver>,
    component: Arc<str>,
}

impl fmt::Debug for EgressGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressGuard")
            .field("component", &self.component)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn parse(host: &str) -> Result<Host, String> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Host::Ip(ip.to_canonical()));
        }
        let name = normalize_name(bare);
        if name.is_empty() {
            return Err("the destination has no host".into());
        }
        Ok(Host::Name(name))
    }
}

enum Assessment {
    Permit(Permit),
    /// A name only an address entry could allow: resolve it, then check every address.
    Lookup(String),
    Deny(String),
}

const LOCALHOST: &str = "localhost";
const LOCALHOST_ADDRS: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
/// Entries listed in a refusal before "and N more".
const LISTED_IN_REFUSALS: usize = 8;

impl EgressGuard {
    /// Component name in audit records until [`EgressGuard::with_component`] sets one.
    pub const DEFAULT_COMPONENT: &'static str = "airlock";

    pub fn new(rules: Vec<Rule>, audit: Arc<dyn EgressAudit>) -> EgressGuard {
        EgressGuard {
            rules: rules.into(),
            audit,
            resolver: Arc::new(SystemResolver),
            component: Arc::from(Self::DEFAULT_COMPONENT),
        }
    }

    /// Parses the entries of `egress.allow`; an invalid entry is an error naming it.
    pub fn from_allow_list<S: AsRef<str>>(entries: &[S], audit: Arc<dyn EgressAudit>) -> Result<EgressGuard, EgressError> {
        Ok(EgressGuard::new(parse_rules(entries)?, audit))
    }

    /// The guard for a site: `egress.allow` from airlock.toml (and `AIRLOCK_EGRESS_ALLOW`).
    pub fn from_config(config: &airlock_config::Config, audit: Arc<dyn EgressAudit>) -> Result<EgressGuard, EgressError> {
        EgressGuard::from_allow_list(&config.egress.allow, audit)
    }

    /// Replaces the name resolver (tests, or a site resolver other than the system's).
    pub fn with_resolver(mut self, resolver: Arc<dyn HostResolver>) -> EgressGuard {
        self.resolver = resolver;
        self
    }

    /// The same guard, recording `component` (e.g. `runner`, `mirror`) in audit records.
    pub fn with_component(&self, component: &str) -> EgressGuard {
        EgressGuard { component: Arc::from(component), ..self.clone() }
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks `host` (a name or an address, IPv6 with or without brackets) on `port` (0: not
    /// known). A name that only an address entry could allow is resolved here; the addresses
    /// in [`Permit::Resolved`] are the ones to connect to. A refusal is audited.
    pub fn check(&self, host: &str, port: u16) -> Result<Permit, EgressError> {
        match self.decide(host) {
            Ok(permit) => Ok(permit),
            Err(Denial::Refused(reason)) => Err(self.refuse(destination(host, port), reason)),
            Err(Denial::Resolve(message)) => {
                Err(EgressError::Resolve { host: host.to_string(), message })
            }
        }
    }

    /// Checks a URL's host and port (`file:` URLs are local and allowed).
    pub fn check_url(&self, url: &Url) -> Result<Permit, EgressError> {
        if url.scheme() == "file" {
            return Ok(Permit::Local);
        }
        let host = url_host(url)?;
        self.check(host, url.port_or_known_default().unwrap_or(0))
    }

    /// Checks an address a non-HTTP client is about to connect to.
    pub fn check_socket_addr(&self, addr: SocketAddr) -> Result<Permit, EgressError> {
        self.check(&addr.ip().to_string(), addr.port())
    }

    /// Checks the remote of a git URL before running git: `https://`, `http://`, `ssh://`,
    /// `git://` and scp-like `user@host:path`. Local paths and `file://` are allowed; other
    /// transports (`ext::`, remote helpers, unknown schemes) are refused.
    ///
    /// This checks the host git will contact; git resolves the name itself afterwards, so for
    /// a name allowed only through an address entry run git with `-c url.<…>.insteadOf` or
    /// connect through [`EgressGuard::resolve`] if the resolved address must be pinned.
    pub fn check_git_url(&self, url: &str) -> Result<Permit, EgressError> {
        match git_remote(url) {
            GitRemote::Local => Ok(Permit::Local),
            GitRemote::Host { host, port } => self.check(&host, port),
            GitRemote::Unsupported(reason) => Err(self.refuse(url.to_string(), reason)),
        }
    }

    /// The addresses to connect to for `host:port`, after the check: loopback addresses for
    /// `localhost`, the address itself for an address, the checked addresses for a name only
    /// an address entry allows, and the resolver's answer for a name an entry allows.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let ips = match self.check(host, port)? {
            Permit::Local => Vec::new(),
            Permit::Resolved { addresses } => addresses,
            Permit::Loopback | Permit::Address { .. } => match Host::parse(host) {
                Ok(Host::Ip(ip)) => vec![ip],
                _ => LOCALHOST_ADDRS.to_vec(),
            },
            Permit::Name { .. } => self.lookup(host).map_err(|message| EgressError::Resolve { host: host.to_string(), message })?,
        };
        Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }

    /// A TCP connection to `host:port` through the guard (for non-HTTP clients): checked,
    /// resolved as [`EgressGuard::resolve`] does, then each address tried in turn.
    pub fn connect_tcp(&self, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, EgressError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        for addr in self.resolve(host, port)? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(EgressError::Connect { destination: destination(host, port), source: last })
    }

    /// What the guard would decide for `host`, without an audit record: for reports such as
    /// `airlock egress check`. Like [`EgressGuard::check`], it resolves a name only when an
    /// address entry could allow it.
    pub fn evaluate(&self, host: &str) -> Result<Permit, Denied> {
        self.decide(host).map_err(|denial| Denied {
            reason: match denial {
                Denial::Refused(reason) => reason,
                Denial::Resolve(message) => format!(
                    "it cannot be resolved to check its addresses against {SETTING} ({message}); the guard refuses it"
                ),
            },
        })
    }

    /// The check made before a request is handed to the HTTP client and at each redirect hop:
    /// everything except the lookup of names only an address entry could allow, which the DNS
    /// hook performs (and audits) when the client connects. For a client's own redirect policy
    /// on a [`crate::client_builder`] (which replaces the guard's): call it on every hop.
    pub fn precheck_url(&self, url: &Url) -> Result<(), EgressError> {
        let host = url_host(url)?;
        let port = url.port_or_known_default().unwrap_or(0);
        let parsed = Host::parse(host)
            .map_err(|reason| EgressError::InvalidUrl { url: url.to_string(), reason })?;
        match self.assess(parsed) {
            Assessment::Permit(_) | Assessment::Lookup(_) => Ok(()),
            Assessment::Deny(reason) => Err(self.refuse(destination(host, port), reason)),
        }
    }

    fn decide(&self, host: &str) -> Result<Permit, Denial> {
        let parsed = Host::parse(host).map_err(Denial::Refused)?;
        match self.assess(parsed) {
            Assessment::Permit(permit) => Ok(permit),
            Assessment::Deny(reason) => Err(Denial::Refused(reason)),
            Assessment::Lookup(name) => {
                let addresses = self.lookup(&name).map_err(Denial::Resolve)?;
                let outside: Vec<String> = addresses
                    .iter()
                    .filter(|ip| !ip.is_loopback() && self.network_rule(**ip).is_none())
                    .map(IpAddr::to_string)
                    .collect();
                if outside.is_empty() {
                    Ok(Permit::Resolved { addresses })
                } else {
                    Err(Denial::Refused(format!(
                        "{name} resolves to {}, outside {SETTING} ({}); add the host name or its address to {SETTING} in airlock.toml if this destination is internal",
                        outside.join(", "),
                        self.allowed_summary()
                    )))
                }
            }
        }
    }

    /// Pure rule matching: no lookup, no audit.
    fn assess(&self, host: Host) -> Assessment {
        match host {
            Host::Ip(ip) => {
                if ip.is_loopback() {
                    Assessment::Permit(Permit::Loopback)
                } else if let Some(rule) = self.network_rule(ip) {
                    Assessment::Permit(Permit::Address { rule: rule.to_string() })
                } else {
                    Assessment::Deny(self.not_allowed())
                }
            }
            Host::Name(name) => {
                if name == LOCALHOST {
                    Assessment::Permit(Permit::Loopback)
                } else if let Some(rule) = self.rules.iter().find(|r| r.matches_name(&name)) {
                    Assessment::Permit(Permit::Name { rule: rule.to_string() })
                } else if self.rules.iter().any(Rule::is_network) {
                    Assessment::Lookup(name)
                } else {
                    Assessment::Deny(self.not_allowed())
                }
            }
        }
    }

    fn network_rule(&self, ip: IpAddr) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches_ip(ip))
    }

    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![ip.to_canonical()]);
        }
        if normalize_name(bare) == LOCALHOST {
            return Ok(LOCALHOST_ADDRS.to_vec());
        }
        let mut addresses = self.resolver.lookup(bare).map_err(|e| e.to_string())?;
        if addresses.is_empty() {
            return Err("the name has no address".into());
        }
        for ip in &mut addresses {
            *ip = ip.to_canonical();
        }
        addresses.dedup();
        Ok(addresses)
    }

    fn not_allowed(&self) -> String {
        format!(
            "not in {SETTING} ({}); add it to {SETTING} in airlock.toml if this destination is internal",
            self.allowed_summary()
        )
    }

    /// `allowed: a, b` or a note that the list is empty.
    fn allowed_summary(&self) -> String {
        if self.rules.is_empty() {
            return format!("{SETTING} is empty: only loopback is allowed");
        }
        let mut listed: Vec<&str> = self.rules.iter().take(LISTED_IN_REFUSALS).map(Rule::as_str).collect();
        let more;
        if self.rules.len() > LISTED_IN_REFUSALS {
            more = format!("and {} more", self.rules.len() - LISTED_IN_REFUSALS);
            listed.push(&more);
        }
        format!("allowed: {}", listed.join(", "))
    }

    /// Audits a refusal and returns the error for it.
    pub(crate) fn refuse(&self, destination: String, reason: String) -> EgressError {
        let record = EgressRecord::now(&self.component, &destination, &reason);
        self.audit.refused(&record);
        EgressError::Refused { destination, reason }
    }
}

enum Denial {
    Refused(String),
    Resolve(String),
}

/// `host:port` (IPv6 in brackets), or the host alone for port 0.
fn destination(host: &str, port: u16) -> String {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let shown = if bare.parse::<Ipv6Addr>().is_ok() { format!("[{bare}]") } else { bare.to_string() };
    if port == 0 {
        shown
    } else {
        format!("{shown}:{port}")
    }
}

fn url_host(url: &Url) -> Result<&str, EgressError> {
    url.host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| EgressError::InvalidUrl { url: url.to_string(), reason: "the URL has no host".into() })
}

#[derive(Debug, PartialEq, Eq)]
enum GitRemote {
    Local,
    Host { host: String, port: u16 },
    Unsupported(String),
}

fn git_remote(url: &str) -> GitRemote {
    let unsupported = |what: &str| {
        GitRemote::Unsupported(format!(
            "{what} is not a git transport the high side allows; use https://, http://, ssh://, git:// or user@host:path to a host in {SETTING}"
        ))
    };
    if let Some((scheme, _)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "file" => return GitRemote::Local,
            "https" => 443,
            "http" => 80,
            "ssh" | "git+ssh" | "ssh+git" => 22,
            "git" => 9418,
            _ => return unsupported(&format!("the {scheme}:// scheme")),
        };
        return match Url::parse(url) {
            Ok(parsed) => match parsed.host_str().filter(|h| !h.is_empty()) {
                Some(host) => GitRemote::Host { host: host.to_string(), port: parsed.port().unwrap_or(default_port) },
                None => unsupported("a URL without a host"),
            },
            Err(e) => GitRemote::Unsupported(format!("it is not a valid URL ({e})")),
        };
    }
    if let Some((transport, _)) = url.split_once("::") {
        if !transport.is_empty() && transport.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            return unsupported("a remote-helper address (transport::address)");
        }
    }
    let before_slash = url.split('/').next().unwrap_or(url);
    // git's rule: a colon before the first slash makes `[user@]host:path` (scp-like syntax);
    // otherwise it is a local path.
    let Some(colon) = find_scp_colon(before_slash) else {
        return GitRemote::Local;
    };
    let authority = &before_slash[..colon];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return unsupported("an scp-like address without a host");
    }
    GitRemote::Host { host: host.to_string(), port: 22 }
}

/// The colon ending the host of an scp-like address, skipping a bracketed IPv6 host.
fn find_scp_colon(s: &str) -> Option<usize> {
    if let Some(open) = s.find("@[").map(|i| i + 1).or_else(|| s.starts_with('[').then_some(0)) {
        let close = open + s[open..].find(']')?;
        return s[close..].find(':').map(|i| close + i);
    }
    s.find(':')
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records refusals in memory.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<EgressRecord>>);

    impl EgressAudit for Recorder {
        fn refused(&self, record: &EgressRecord) {
            self.0.lock().unwrap().push(record.clone());
        }
    }

    /// Fails the test if the guard looks any name up.
    struct NoLookups;

    impl HostResolver for NoLookups {
        fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            panic!("the guard looked up {host:?}: refused names must not reach DNS");
        }
    }

    /// A fixed table, counting lookups.
    struct Table(Vec<(&'static str, Vec<IpAddr>)>, Mutex<Vec<String>>);

    impl HostResolver for Table {
        fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            self.1.lock().unwrap().push(host.to_string());
            self.0
                .iter()
                .find(|(name, _)| *name == host)
                .map(|(_, ips)| ips.clone())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
        }
    }

    fn guard(entries: &[&str]) -> (EgressGuard, Arc<Recorder>) {
        let audit = Arc::new(Recorder::default());
        let guard = EgressGuard::from_allow_list(entries, audit.clone()).unwrap().with_resolver(Arc::new(NoLookups));
        (guard, audit)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_always_allowed() {
        let (guard, audit) = guard(&[]);
        for host in ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "::ffff:127.0.0.1", "localhost", "LOCALHOST."] {
            assert_eq!(guard.check(host, 80).unwrap(), Permit::Loopback, "{host}");
        }
        assert_eq!(guard.resolve("localhost", 8080).unwrap(), [
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            SocketAddr::new(ip("::1"), 8080)
        ]);
        assert!(audit.0.lock().unwrap().is_empty());
    }

    #[test]
    fn allowed_names_and_addresses_pass_without_lookups() {
        let (guard, _) = guard(&["git.acme.internal", "*.svc.acme.internal", "10.20.0.0/16", "fd00::/8"]);
        assert_eq!(guard.check("GIT.acme.internal.", 443).unwrap(), Permit::Name { rule: "git.acme.internal".into() });
        assert_eq!(guard.check("db.svc.acme.internal", 5432).unwrap(), Permit::Name { rule: "*.svc.acme.internal".into() });
        assert_eq!(guard.check("10.20.3.4", 22).unwrap(), Permit::Address { rule: "10.20.0.0/16".into() });
        assert_eq!(guard.check("[fd00::5]", 443).unwrap(), Permit::Address { rule: "fd00::/8".into() });
        assert_eq!(
            guard.check_socket_addr("10.20.0.9:2222".parse().unwrap()).unwrap(),
            Permit::Address { rule: "10.20.0.0/16".into() }
        );
    }

    #[test]
    fn an_external_name_is_refused_without_a_lookup_and_audited() {
        let (guard, audit) = guard(&["git.acme.internal", "*.acme.internal"]);
        let guard = guard.with_component("runner");
        let err = guard.check("example.com", 443).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused outbound connection to example.com:443: not in egress.allow (allowed: git.acme.internal, *.acme.internal); \
             add it to egress.allow in airlock.toml if this destination is internal"
        );
        // The apex of a wildcard is not below it.
        assert!(guard.check("acme.internal", 443).unwrap_err().is_refused());
        let records = audit.0.lock().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].component, "runner");
        assert_eq!(records[0].destination, "example.com:443");
        assert!(records[0].reason.starts_with("not in egress.allow"), "{}", records[0].reason);
        assert_eq!(records[1].destination, "acme.internal:443");
    }

    #[test]
    fn addresses_outside_the_list_are_refused() {
        let (guard, audit) = guard(&["10.20.0.0/16"]);
        for (host, shown) in [
            ("192.0.2.1", "192.0.2.1:443"),
            ("0.0.0.0", "0.0.0.0:443"),
            ("2001:db8::1", "[2001:db8::1]:443"),
            ("[2001:db8::1]", "[2001:db8::1]:443"),
        ] {
            match guard.check(host, 443) {
                Err(EgressError::Refused { destination, reason }) => {
                    assert_eq!(destination, shown);
                    assert!(reason.contains("(allowed: 10.20.0.0/16)"), "{reason}");
                }
                other => panic!("{host}: {other:?}"),
            }
        }
        assert_eq!(audit.0.lock().unwrap().len(), 4);
    }

    #[test]
    fn an_empty_list_says_so() {
        let (guard, _) = guard(&[]);
        let err = guard.check("10.0.0.1", 22).unwrap_err().to_string();
        assert!(err.contains("egress.allow is empty: only loopback is allowed"), "{err}");
    }

    #[test]
    fn names_are_resolved_only_when_an_address_entry_could_allow_them() {
        let table = Arc::new(Table(
            vec![
                ("mirror.acme.internal", vec![ip("10.20.0.5"), ip("::ffff:10.20.0.6")]),
                ("split.acme.internal", vec![ip("10.20.0.7"), ip("192.0.2.50")]),
                ("loop.acme.internal", vec![ip("127.0.0.1")]),
            ],
            Mutex::default(),
        ));
        let audit = Arc::new(Recorder::default());
        let guard = EgressGuard::from_allow_list(&["git.acme.internal", "10.20.0.0/16"], audit.clone())
            .unwrap()
            .with_resolver(table.clone());

        // Allowed by name: no lookup needed to decide.
        assert_eq!(guard.check("git.acme.internal", 443).unwrap(), Permit::Name { rule: "git.acme.internal".into() });
        assert!(table.1.lock().unwrap().is_empty());

        // Allowed through its addresses; the checked addresses are the ones to use.
        assert_eq!(
            guard.check("mirror.acme.internal", 443).unwrap(),
            Permit::Resolved { addresses: vec![ip("10.20.0.5"), ip("10.20.0.6")] }
        );
        assert_eq!(guard.resolve("mirror.acme.internal", 5000).unwrap(), [
            SocketAddr::from(([10, 20, 0, 5], 5000)),
            SocketAddr::from(([10, 20, 0, 6], 5000))
        ]);
        assert_eq!(guard.check("loop.acme.internal", 80).unwrap(), Permit::Resolved { addresses: vec![ip("127.0.0.1")] });

        // One address outside is enough to refuse, and the message names it.
        let err = guard.check("split.acme.internal", 443).unwrap_err();
        match &err {
            EgressError::Refused { destination, reason } => {
                assert_eq!(destination, "split.acme.internal:443");
                assert!(reason.contains("resolves to 192.0.2.50, outside egress.allow"), "{reason}");
                assert!(!reason.contains("10.20.0.7,"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A name that does not resolve cannot be checked: an error, not a silent pass.
        assert!(matches!(guard.check("gone.acme.internal", 443), Err(EgressError::Resolve { .. })));
        assert_eq!(
            guard.evaluate("gone.acme.internal").unwrap_err().reason,
            "it cannot be resolved to check its addresses against egress.allow (no such host); the guard refuses it"
        );

        assert_eq!(audit.0.lock().unwrap().len(), 1);
        assert_eq!(*table.1.lock().unwrap(), [
            "mirror.acme.internal",
            "mirror.acme.internal",
            "loop.acme.internal",
            "split.acme.internal",
            "gone.acme.internal",
            "gone.acme.internal"
        ]);
    }

    #[test]
    fn evaluate_does_not_audit() {
        let (guard, audit) = guard(&["git.acme.internal"]);
        assert_eq!(guard.evaluate("git.acme.internal").unwrap(), Permit::Name { rule: "git.acme.internal".into() });
        assert!(guard.evaluate("example.com").unwrap_err().reason.starts_with("not in egress.allow"));
        assert!(audit.0.lock().unwrap().is_empty());
    }

    #[test]
    fn long_lists_are_shortened_in_messages() {
        let entries: Vec<String> = (0..10).map(|i| format!("h{i}.acme.internal")).collect();
        let guard = EgressGuard::from_allow_list(&entries, Arc::new(Recorder::default())).unwrap();
        let err = guard.check("example.com", 443).unwrap_err().to_string();
        assert!(err.contains("h7.acme.internal, and 2 more)"), "{err}");
        assert!(!err.contains("h8.acme.internal"), "{err}");
    }

    #[test]
    fn git_remotes() {
        let cases = [
            ("https://git.acme.internal/team/app.git", GitRemote::Host { host: "git.acme.internal".into(), port: 443 }),
            ("http://10.20.0.3:8080/app.git", GitRemote::Host { host: "10.20.0.3".into(), port: 8080 }),
            ("ssh://git@git.acme.internal:2222/team/app.git", GitRemote::Host { host: "git.acme.internal".into(), port: 2222 }),
            ("ssh://git@[fd00::3]/app.git", GitRemote::Host { host: "[fd00::3]".into(), port: 22 }),
            ("git://git.acme.internal/app.git", GitRemote::Host { host: "git.acme.internal".into(), port: 9418 }),
            ("git@github.com:owner/repo.git", GitRemote::Host { host: "github.com".into(), port: 22 }),
            ("git.acme.internal:team/app.git", GitRemote::Host { host: "git.acme.internal".into(), port: 22 }),
            ("git@[fd00::3]:team/app.git", GitRemote::Host { host: "[fd00::3]".into(), port: 22 }),
            ("file:///srv/git/app.git", GitRemote::Local),
            ("/srv/git/app.git", GitRemote::Local),
            ("./app", GitRemote::Local),
            ("dir/with:colon", GitRemote::Local),
        ];
        for (url, expected) in cases {
            assert_eq!(git_remote(url), expected, "{url}");
        }
        for url in ["ext::sh -c touch% /tmp/pwned", "fd::17", "rsync://host/repo", "ssh:///srv/repo"] {
            assert!(matches!(git_remote(url), GitRemote::Unsupported(_)), "{url}");
        }
    }

    #[test]
    fn check_git_url_applies_the_list() {
        let (guard, audit) = guard(&["git.acme.internal"]);
        assert_eq!(guard.check_git_url("file:///srv/app.git").unwrap(), Permit::Local);
        assert_eq!(
            guard.check_git_url("git@git.acme.internal:team/app.git").unwrap(),
            Permit::Name { rule: "git.acme.internal".into() }
        );
        let err = guard.check_git_url("git@github.com:owner/repo.git").unwrap_err().to_string();
        assert!(err.starts_with("refused outbound connection to github.com:22: not in egress.allow"), "{err}");
        let err = guard.check_git_url("ext::sh -c id").unwrap_err().to_string();
        assert!(err.contains("remote-helper"), "{err}");
        assert_eq!(audit.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn urls() {
        let (guard, _) = guard(&["git.acme.internal"]);
        assert_eq!(guard.check_url(&Url::parse("https://git.acme.internal/x").unwrap()).unwrap(), Permit::Name {
            rule: "git.acme.internal".into()
        });
        assert_eq!(guard.check_url(&Url::parse("file:///etc/hosts").unwrap()).unwrap(), Permit::Local);
        let err = guard.check_url(&Url::parse("http://[2001:db8::1]/").unwrap()).unwrap_err().to_string();
        assert!(err.starts_with("refused outbound connection to [2001:db8::1]:80:"), "{err}");
        assert!(matches!(
            guard.check_url(&Url::parse("mailto:someone@example.com").unwrap()),
            Err(EgressError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn connect_tcp_reaches_allowed_listeners_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (guard, _) = guard(&[]);
        let stream = guard.connect_tcp("localhost", port, Duration::from_secs(5)).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), SocketAddr::from(([127, 0, 0, 1], port)));
        // 0.0.0.0 would reach this host's listeners, but it is not loopback: refused first.
        listener.set_nonblocking(true).unwrap();
        let _first = listener.accept().unwrap();
        assert!(guard.connect_tcp("0.0.0.0", port, Duration::from_secs(5)).unwrap_err().is_refused());
        assert_eq!(listener.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
