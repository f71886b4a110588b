//! What an environment may reach on its runner's network: the allow-list entry syntax the
//! site's `[runner.network]` and a project's narrowing share, and the project setting.
//! Parsing only; the runner turns entries into nftables rules.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A narrowing of the site's network allow-list, by an org's policy or a project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkNarrowing {
    /// Destinations the environments may reach (`host:port`, `address:port` or `cidr:port`,
    /// `/udp` for UDP), each within the site's `runner.network.allow` (and a project's within
    /// its org's); an environment whose entry the runner's site list does not cover fails to
    /// start, naming it. Absent: the wider list. Empty: nothing but the site's DNS servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
}

impl NetworkNarrowing {
    pub fn is_empty(&self) -> bool {
        self == &NetworkNarrowing::default()
    }

    /// The list an environment gets from its org's narrowing and its project's: the project's
    /// when both have one (each entry must lie within an org entry), else whichever is set.
    /// The error names the project's entry the org does not allow.
    pub fn within_org(&self, org: &NetworkNarrowing) -> Result<NetworkNarrowing, String> {
        let (Some(project), Some(allowed)) = (&self.allow, &org.allow) else {
            return Ok(if self.allow.is_some() { self.clone() } else { org.clone() });
        };
        let allowed: Vec<AllowEntry> = allowed.iter().filter_map(|e| AllowEntry::parse(e).ok()).collect();
        for text in project {
            let entry = AllowEntry::parse(text).map_err(|e| format!("network.allow: {e}"))?;
            if !allowed.iter().any(|org_entry| entry.within(org_entry)) {
                return Err(format!(
                    "the project's network entry `{text}` is not within the org's policy ({}); ask an org admin to add it, or narrow the project",
                    org.allow.as_deref().unwrap_or_default().join(", ")
                ));
            }
        }
        Ok(self.clone())
    }

    /// Checks every entry's shape; the error names the field and the entry.
    pub fn validate(&self) -> Result<(), String> {
        for entry in self.allow.iter().flatten() {
            AllowEntry::parse(entry).map_err(|e| format!("network.allow: {e}"))?;
        }
        Ok(())
    }
}

/// An IPv4 network, `address/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// `a.b.c.d/n`, or a bare address as a /32.
    pub fn parse(text: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse().ok()?, p.parse().ok()?),
            None => (text.parse().ok()?, 32),
        };
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// The network's `n`th address (0 is the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + n)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The protocol's name as nftables and the entries spell it.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Net(Ipv4Net),
    /// A name, resolved through the runner host's resolver when an environment starts.
    Host(String),
}

/// An allow-list entry that does not parse: the entry and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` {reason}")]
pub struct AllowEntryError {
    pub value: String,
    pub reason: &'static str,
}

/// One allow-list entry: `host:port`, `address:port` or `cidr:port`, with `/udp` for UDP
/// (TCP by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    pub destination: Destination,
    pub port: u16,
    pub proto: Proto,
}

impl AllowEntry {
    pub fn parse(text: &str) -> Result<AllowEntry, AllowEntryError> {
        let bad = |reason| AllowEntryError { value: text.to_string(), reason };
        let (rest, proto) = match text.rsplit_once('/') {
            Some((rest, "udp")) => (rest, Proto::Udp),
            Some((rest, "tcp")) => (rest, Proto::Tcp),
            _ => (text, Proto::Tcp),
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("is not host:port, address:port or cidr:port (e.g. `mirror.internal:443`, `10.20.0.0/16:22`)"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("has no port between 1 and 65535 after the last `:`"))?;
        let destination = if let Some(net) = Ipv4Net::parse(host) {
            Destination::Net(net)
        } else if host.contains('/') || host.parse::<std::net::IpAddr>().is_ok() {
            return Err(bad("is not an IPv4 address or CIDR (environments have IPv4 only)"));
        } else if !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            Destination::Host(host.to_ascii_lowercase())
        } else {
            return Err(bad("has no valid host name, address or CIDR before the port"));
        };
        Ok(AllowEntry { destination, port, proto })
    }

    /// The host and port of a service URL (`https://mirror.internal:5000` → `mirror.internal:5000`).
    pub fn from_url(url: &str) -> Result<AllowEntry, AllowEntryError> {
        let bad = |reason| AllowEntryError { value: url.to_string(), reason };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("is not a URL"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("is not an http or https URL")),
        };
        let text = match authority.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_string(),
            _ => format!("{authority}:{default_port}"),
        };
        AllowEntry::parse(&text).map_err(|_| bad("has no host the environments could be allowed to reach"))
    }

    /// Whether everything this entry allows is allowed by `site` (names: the same name).
    pub fn within(&self, site: &AllowEntry) -> bool {
        if self.port != site.port || self.proto != site.proto {
            return false;
        }
        match (&self.destination, &site.destination) {
            (Destination::Net(mine), Destination::Net(theirs)) => theirs.covers(mine),
            (Destination::Host(mine), Destination::Host(theirs)) => mine == theirs,
            _ => false,
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.destination {
            Destination::Net(net) if net.prefix == 32 => write!(f, "{}:{}", net.addr, self.port)?,
            Destination::Net(net) => write!(f, "{net}:{}", self.port)?,
            Destination::Host(host) => write!(f, "{host}:{}", self.port)?,
        }
        if self.proto == Proto::Udp {
            write!(f, "/udp")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_parse_and_explain_mistakes() {
        let e = AllowEntry::parse("mirror.internal:443").unwrap();
        assert_eq!(e.destination, Destination::Host("mirror.internal".into()));
        assert_eq!((e.port, e.proto), (443, Proto::Tcp));
        let e = AllowEntry::parse("10.20.0.0/16:22").unwrap();
        assert_eq!(e.destination, Destination::Net(Ipv4Net { addr: Ipv4Addr::new(10, 20, 0, 0), prefix: 16 }));
        assert_eq!(AllowEntry::parse("10.0.0.53:53/udp").unwrap().proto, Proto::Udp);
        assert_eq!(AllowEntry::parse("10.0.0.53:53/udp").unwrap().to_string(), "10.0.0.53:53/udp");
        for bad in ["mirror.internal", "mirror:0", "mirror:99999", "10.0.0.0/40:22", "[::1]:22", "bad host:22", ":22"] {
            let err = AllowEntry::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn service_urls_become_entries() {
        assert_eq!(AllowEntry::from_url("https://mirror.internal").unwrap().to_string(), "mirror.internal:443");
        assert_eq!(AllowEntry::from_url("http://10.0.0.5:5000/v2/").unwrap().to_string(), "10.0.0.5:5000");
        assert!(AllowEntry::from_url("mirror.internal:5000").is_err());
    }

    #[test]
    fn project_entries_must_be_within_the_site_list() {
        let site = AllowEntry::parse("10.20.0.0/16:22").unwrap();
        assert!(AllowEntry::parse("10.20.3.0/24:22").unwrap().within(&site));
        assert!(AllowEntry::parse("10.20.3.4:22").unwrap().within(&site));
        assert!(!AllowEntry::parse("10.21.0.0/24:22").unwrap().within(&site));
        assert!(!AllowEntry::parse("10.20.3.4:23").unwrap().within(&site));
        assert!(!AllowEntry::parse("10.0.0.0/8:22").unwrap().within(&site));
        let named = AllowEntry::parse("git.internal:22").unwrap();
        assert!(AllowEntry::parse("GIT.internal:22").unwrap().within(&named));
        assert!(!AllowEntry::parse("other.internal:22").unwrap().within(&named));
    }

    #[test]
    fn a_project_narrows_within_its_orgs_policy() {
        let list = |entries: &[&str]| NetworkNarrowing { allow: Some(entries.iter().map(|e| e.to_string()).collect()) };
        let org = list(&["10.20.0.0/16:443", "git.internal:22"]);
        let open = NetworkNarrowing::default();
        assert_eq!(open.within_org(&org).unwrap(), org, "the org's list when the project has none");
        assert_eq!(list(&["10.20.1.0/24:443"]).within_org(&open).unwrap(), list(&["10.20.1.0/24:443"]));
        assert_eq!(list(&["git.internal:22"]).within_org(&org).unwrap(), list(&["git.internal:22"]));
        let err = list(&["10.21.0.1:443"]).within_org(&org).unwrap_err();
        assert!(err.contains("`10.21.0.1:443`") && err.contains("org's policy"), "{err}");
        assert_eq!(open.within_org(&open).unwrap(), open);
    }

    #[test]
    fn a_project_setting_names_its_bad_entry() {
        assert!(NetworkNarrowing::default().validate().is_ok());
        assert!(NetworkNarrowing { allow: Some(vec![]) }.validate().is_ok());
        let err = NetworkNarrowing { allow: Some(vec!["git.internal:22".into(), "git.internal".into()]) }.validate().unwrap_err();
        assert!(err.starts_with("network.allow: `git.internal`"), "{err}");
    }
}
