//! What a configuration exposes and reaches: the facts behind `airlock egress check`.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_config::Config;
use reqwest::Url;
use serde::Serialize;

use crate::{EgressError, EgressGuard, Permit, TracingAudit, SETTING};

/// Listeners, outbound destinations and the allow-list of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub listeners: Vec<Listener>,
    pub destinations: Vec<Destination>,
    pub allow: Vec<AllowEntry>,
    /// Destinations the guard would refuse: the ones `airlock egress check` fails on.
    pub outside: Vec<Destination>,
    /// No destination outside the allow-list.
    pub ok: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub component: String,
    pub name: String,
    /// `ip:port`, or the socket path.
    pub address: String,
    pub protocol: String,
    /// Bound to a non-loopback address: other hosts can connect (informational).
    pub network_reachable: bool,
    pub exposure: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Destination {
    /// The component that connects.
    pub from: String,
    pub name: String,
    /// The URL or entry as configured.
    pub target: String,
    /// The host the guard checks, when the configuration names one.
    pub host: Option<String>,
    pub status: Status,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Loopback: always allowed.
    Loopback,
    /// Covered by an `egress.allow` entry (or is one).
    Allowed,
    /// Not known from the configuration; checked against the allow-list when used.
    CheckedAtUse,
    /// The guard would refuse it.
    Outside,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Loopback => "loopback",
            Status::Allowed => "allowed",
            Status::CheckedAtUse => "checked at use",
            Status::Outside => "OUTSIDE",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AllowEntry {
    pub entry: String,
    pub kind: String,
}

impl Report {
    /// The report for `config`, checking destinations with a guard built from its
    /// `egress.allow` (an invalid entry is an error naming it).
    pub fn of(config: &Config) -> Result<Report, EgressError> {
        let guard = EgressGuard::from_config(config, Arc::new(TracingAudit))?;
        Ok(Report::with_guard(config, &guard))
    }

    /// The report for `config`, checking destinations with `guard` (no audit records: nothing
    /// connects). A name that only an address entry could allow is resolved, as the guard
    /// would at connect time.
    pub fn with_guard(config: &Config, guard: &EgressGuard) -> Report {
        let listeners = listeners(config);
        let mut destinations = Vec::new();
        if config.runner.enabled {
            destinations.push(url_destination(
                guard,
                "runner",
                "control plane API",
                &config.control_plane_url(),
                "control_plane.public_url",
            ));
            destinations.push(url_destination(guard, "runner", "mirror", &config.mirror_url(), "mirror.public_url"));
            destinations.push(Destination {
                from: "runner".into(),
                name: "project repositories".into(),
                target: "project repository hosts".into(),
                host: None,
                status: Status::CheckedAtUse,
                detail: format!("project repository hosts are checked at clone time against {SETTING}"),
            });
        }
        let allow: Vec<AllowEntry> = guard
            .rules()
            .iter()
            .map(|rule| AllowEntry { entry: rule.to_string(), kind: rule.describe().to_string() })
            .collect();
        for entry in &allow {
            destinations.push(Destination {
                from: "any high-side component".into(),
                name: format!("{SETTING} entry"),
                target: entry.entry.clone(),
                host: None,
                status: Status::Allowed,
                detail: format!("{}; the site confirms it is inside the enclave", entry.kind),
            });
        }
        let outside: Vec<Destination> = destinations.iter().filter(|d| d.status == Status::Outside).cloned().collect();
        Report { listeners, ok: outside.is_empty(), destinations, allow, outside }
    }
}

fn listeners(config: &Config) -> Vec<Listener> {
    let mut out = Vec::new();
    if config.mirror.enabled {
        let protocol = if config.mirror.tls_cert.is_some() { "HTTPS" } else { "HTTP" };
        out.push(tcp_listener("mirror", "mirror API (mirror.listen)", config.mirror.listen, protocol));
        out.push(Listener {
            component: "mirror".into(),
            name: "mirror admin socket".into(),
            address: config.mirror_dir().join("admin").join("admin.sock").display().to_string(),
            protocol: "Unix domain socket".into(),
            network_reachable: false,
            exposure: "this host only (private directory 0700, socket 0600)".into(),
        });
    }
    if config.control_plane.enabled {
        let protocol = if config.control_plane.tls_cert.is_some() { "HTTPS" } else { "HTTP" };
        out.push(tcp_listener(
            "control plane",
            "control plane API (control_plane.listen)",
            config.control_plane.listen,
            protocol,
        ));
    }
    if config.runner.enabled {
        out.push(tcp_listener("runner", "SSH gateway (runner.ssh_listen)", config.runner.ssh_listen, "SSH"));
    }
    out
}

fn tcp_listener(component: &str, name: &str, addr: SocketAddr, protocol: &str) -> Listener {
    let ip = addr.ip();
    let exposure = if ip.is_loopback() {
        "loopback only".to_string()
    } else if ip.is_unspecified() {
        "reachable from the network: every interface of the host".to_string()
    } else {
        format!("reachable from the network at {ip}")
    };
    Listener {
        component: component.into(),
        name: name.into(),
        address: addr.to_string(),
        protocol: protocol.into(),
        network_reachable: !ip.is_loopback(),
        exposure,
    }
}

fn url_destination(guard: &EgressGuard, from: &str, name: &str, url: &str, setting: &str) -> Destination {
    let mut destination = Destination {
        from: from.into(),
        name: name.into(),
        target: url.into(),
        host: None,
        status: Status::Outside,
        detail: String::new(),
    };
    let parsed = match Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            destination.detail = format!("{setting} is not a valid URL ({e}); the guard refuses what it cannot check");
            return destination;
        }
    };
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        destination.detail = format!("{setting} has no host; the guard refuses what it cannot check");
        return destination;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    match guard.evaluate(&host) {
        Ok(permit) => {
            destination.status = if permit == Permit::Loopback { Status::Loopback } else { Status::Allowed };
            destination.detail = permit.to_string();
        }
        Err(denied) => {
            destination.detail = format!("{host} (from {setting}): {denied}");
        }
    }
    destination.host = Some(host);
    destination
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(edit: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config::default();
        edit(&mut config);
        config
    }

    #[test]
    fn the_default_configuration_stays_on_loopback() {
        let report = Report::of(&Config::default()).unwrap();
        assert!(report.ok);
        assert!(report.outside.is_empty());
        let listeners: Vec<(&str, bool)> =
            report.listeners.iter().map(|l| (l.address.as_str(), l.network_reachable)).collect();
        assert_eq!(listeners, [
            ("127.0.0.1:5000", false),
            ("./airlock-data/mirror/admin/admin.sock", false),
            ("127.0.0.1:8443", false),
            ("127.0.0.1:2222", false)
        ]);
        let statuses: Vec<(&str, Status)> = report.destinations.iter().map(|d| (d.target.as_str(), d.status)).collect();
        assert_eq!(statuses, [
            ("http://127.0.0.1:8443", Status::Loopback),
            ("http://127.0.0.1:5000", Status::Loopback),
            ("project repository hosts", Status::CheckedAtUse)
        ]);
    }

    #[test]
    fn an_external_public_url_is_flagged_until_allowed() {
        let mut c = config(|c| c.mirror.public_url = Some("https://mirror.example.com".into()));
        let report = Report::of(&c).unwrap();
        assert!(!report.ok);
        assert_eq!(report.outside.len(), 1);
        assert_eq!(report.outside[0].host.as_deref(), Some("mirror.example.com"));
        assert!(report.outside[0].detail.contains("mirror.public_url"), "{}", report.outside[0].detail);
        assert!(report.outside[0].detail.contains("not in egress.allow"), "{}", report.outside[0].detail);

        c.egress.allow = vec!["*.example.com".into()];
        let report = Report::of(&c).unwrap();
        assert!(report.ok, "{:?}", report.outside);
        assert_eq!(report.destinations[1].status, Status::Allowed);
        assert_eq!(report.destinations[1].detail, "allowed by *.example.com");
        assert_eq!(report.allow[0].kind, "host names below a domain");
    }

    #[test]
    fn network_listeners_are_marked_and_disabled_components_left_out() {
        let c = config(|c| {
            c.mirror.listen = "10.20.0.5:443".parse().unwrap();
            c.mirror.tls_cert = Some("s.crt".into());
            c.mirror.tls_key = Some("s.key".into());
            c.control_plane.listen = "0.0.0.0:8443".parse().unwrap();
            c.runner.enabled = false;
        });
        let report = Report::of(&c).unwrap();
        let listeners: Vec<(&str, &str, bool)> = report
            .listeners
            .iter()
            .map(|l| (l.address.as_str(), l.protocol.as_str(), l.network_reachable))
            .collect();
        assert_eq!(listeners, [
            ("10.20.0.5:443", "HTTPS", true),
            ("./airlock-data/mirror/admin/admin.sock", "Unix domain socket", false),
            ("0.0.0.0:8443", "HTTP", true)
        ]);
        // No runner: nothing connects out.
        assert!(report.destinations.is_empty());
        assert!(report.ok);
    }

    #[test]
    fn an_invalid_entry_is_an_error() {
        let c = config(|c| c.egress.allow = vec!["https://git.acme.internal".into()]);
        let err = Report::of(&c).unwrap_err().to_string();
        assert!(err.starts_with("egress.allow entry \"https://git.acme.internal\" is not valid"), "{err}");
    }
}
