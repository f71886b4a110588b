//! Entries of `egress.allow`: host names (exact or `*.suffix`), CIDR blocks and single
//! addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::EgressError;

/// One parsed `egress.allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    kind: RuleKind,
    /// The entry as written, normalized (lower case, no trailing dot, canonical block).
    text: String,
}

/// What an entry allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// Exactly this host name (lower case, without a trailing dot).
    Host(String),
    /// Every name below this suffix (`*.acme.internal` → `acme.internal`), not the suffix
    /// itself.
    Subdomains(String),
    /// Every address of this block; a single address is a /32 or /128 block.
    Network(IpNet),
}

impl Rule {
    /// Parses one `egress.allow` entry. The error names the entry and the setting.
    pub fn parse(entry: &str) -> Result<Rule, EgressError> {
        let invalid = |reason: &str| EgressError::InvalidRule { entry: entry.to_string(), reason: reason.to_string() };
        let text = entry.trim();
        if text.is_empty() {
            return Err(invalid("an entry cannot be empty"));
        }
        if text != entry {
            return Err(invalid("remove the spaces around the entry"));
        }
        if text.contains("://") {
            return Err(invalid("write the host name alone, without a scheme or path (e.g. git.acme.internal)"));
        }
        if text.contains('/') {
            let net = IpNet::from_str(text)
                .map_err(|_| invalid("not a valid CIDR block (expected e.g. 10.20.0.0/16 or fd00::/8)"))?;
            if net.trunc() != net {
                return Err(invalid(&format!(
                    "the address has bits set beyond the /{} prefix; did you mean {}?",
                    net.prefix_len(),
                    net.trunc()
                )));
            }
            return Ok(Rule { text: net.to_string(), kind: RuleKind::Network(net) });
        }
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        if let Ok(ip) = IpAddr::from_str(bare) {
            let ip = ip.to_canonical();
            return Ok(Rule { text: ip.to_string(), kind: RuleKind::Network(IpNet::from(ip)) });
        }
        if text.contains(':') {
            return Err(invalid(
                "port restrictions are not supported: list the host name or address alone (every port of an allowed destination is allowed)",
            ));
        }
        if text == "*" || text == "*." {
            return Err(invalid("a bare wildcard would allow every destination; list the internal domain, e.g. *.acme.internal"));
        }
        if let Some(suffix) = text.strip_prefix("*.") {
            let suffix = normalize_name(suffix);
            check_name(&suffix).map_err(|reason| invalid(&reason))?;
            return Ok(Rule { text: format!("*.{suffix}"), kind: RuleKind::Subdomains(suffix) });
        }
        if text.contains('*') {
            return Err(invalid("a wildcard is allowed only as the whole first label, e.g. *.acme.internal"));
        }
        let name = normalize_name(text);
        check_name(&name).map_err(|reason| invalid(&reason))?;
        Ok(Rule { text: name.clone(), kind: RuleKind::Host(name) })
    }

    pub fn kind(&self) -> &RuleKind {
        &self.kind
    }

    /// The normalized entry, as shown in messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A short description of the kind of entry, for listings.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            RuleKind::Host(_) => "host name",
            RuleKind::Subdomains(_) => "host names below a domain",
            RuleKind::Network(net) if net.prefix_len() == net.max_prefix_len() => "address",
            RuleKind::Network(_) => "address block (CIDR)",
        }
    }

    /// Whether this rule allows the (normalized) host name.
    pub fn matches_name(&self, name: &str) -> bool {
        match &self.kind {
            RuleKind::Host(host) => host == name,
            RuleKind::Subdomains(suffix) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
            RuleKind::Network(_) => false,
        }
    }

    /// Whether this rule allows the address.
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        match &self.kind {
            RuleKind::Network(net) => net.contains(&ip.to_canonical()),
            _ => false,
        }
    }

    pub fn is_network(&self) -> bool {
        matches!(self.kind, RuleKind::Network(_))
    }
}

impl FromStr for Rule {
    type Err = EgressError;
    fn from_str(s: &str) -> Result<Rule, EgressError> {
        Rule::parse(s)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses every entry of `egress.allow`; the first invalid one is the error.
pub fn parse_rules<S: AsRef<str>>(entries: &[S]) -> Result<Vec<Rule>, EgressError> {
    let mut rules: Vec<Rule> = Vec::with_capacity(entries.len());
    for entry in entries {
        let rule = Rule::parse(entry.as_ref())?;
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// Lower case, without one trailing dot: the form names are compared in.
pub(crate) fn normalize_name(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the host name is empty".into());
    }
    if name.len() > 253 {
        return Err("a host name has at most 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("a host name cannot have an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("the label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!(
                "{c:?} cannot appear in a host name (expected a host name like git.acme.internal, a CIDR block like 10.20.0.0/16 or an address)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} cannot start or end with a hyphen"));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.chars().all(|c| c.is_ascii_digit()) {
        return Err("this is neither a host name nor a complete IP address".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(entry: &str) -> Rule {
        Rule::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    fn bad(entry: &str) -> String {
        match Rule::parse(entry) {
            Ok(rule) => panic!("{entry:?} parsed as {rule:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn host_names_are_case_insensitive_and_ignore_a_trailing_dot() {
        let rule = ok("Git.ACME.internal.");
        assert_eq!(rule.as_str(), "git.acme.internal");
        assert_eq!(rule.kind(), &RuleKind::Host("git.acme.internal".into()));
        assert!(rule.matches_name("git.acme.internal"));
        assert!(!rule.matches_name("acme.internal"));
        assert!(!rule.matches_name("x.git.acme.internal"));
        assert!(!rule.matches_ip("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn wildcards_match_subdomains_not_the_apex() {
        let rule = ok("*.ACME.internal");
        assert_eq!(rule.as_str(), "*.acme.internal");
        assert!(rule.matches_name("git.acme.internal"));
        assert!(rule.matches_name("a.b.acme.internal"));
        assert!(!rule.matches_name("acme.internal"));
        assert!(!rule.matches_name("evilacme.internal"));
        assert!(!rule.matches_name("acme.internal.evil.com"));
    }

    #[test]
    fn cidr_blocks_and_single_addresses() {
        let v4 = ok("10.20.0.0/16");
        assert!(v4.matches_ip("10.20.255.1".parse().unwrap()));
        assert!(!v4.matches_ip("10.21.0.1".parse().unwrap()));
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert!(v4.matches_ip("::ffff:10.20.0.9".parse().unwrap()));
        assert_eq!(v4.describe(), "address block (CIDR)");

        let v6 = ok("fd00::/8");
        assert!(v6.matches_ip("fd12:3456::1".parse().unwrap()));
        assert!(!v6.matches_ip("fe80::1".parse().unwrap()));

        let single = ok("10.20.0.5");
        assert_eq!(single.as_str(), "10.20.0.5");
        assert_eq!(single.describe(), "address");
        assert!(single.matches_ip("10.20.0.5".parse().unwrap()));
        assert!(!single.matches_ip("10.20.0.6".parse().unwrap()));
        assert!(!single.matches_name("10.20.0.5"));

        let single6 = ok("[fd00::1]");
        assert!(single6.matches_ip("fd00::1".parse().unwrap()));
        assert!(!single6.matches_ip("fd00::2".parse().unwrap()));
    }

    #[test]
    fn invalid_entries_name_the_entry_and_the_setting() {
        for (entry, hint) in [
            ("", "empty"),
            (" git.acme.internal", "spaces"),
            ("*", "every destination"),
            ("*.", "every destination"),
            ("git.*.internal", "first label"),
            ("https://git.acme.internal/", "without a scheme"),
            ("10.20.0.0/33", "CIDR"),
            ("10.20.0.5/16", "did you mean 10.20.0.0/16?"),
            ("git.acme.internal:443", "port"),
            ("git..internal", "empty label"),
            ("git acme", "cannot appear"),
            ("-git.internal", "hyphen"),
            ("10.20.0", "neither a host name"),
        ] {
            let message = bad(entry);
            assert!(message.contains(&format!("{entry:?}")), "{message}");
            assert!(message.contains(crate::SETTING), "{message}");
            assert!(message.contains(hint), "{entry:?}: {message}");
        }
    }

    #[test]
    fn duplicates_are_listed_once() {
        let rules = parse_rules(&["git.acme.internal", "GIT.acme.internal.", "10.0.0.0/8"]).unwrap();
        let texts: Vec<&str> = rules.iter().map(Rule::as_str).collect();
        assert_eq!(texts, ["git.acme.internal", "10.0.0.0/8"]);
    }
}
