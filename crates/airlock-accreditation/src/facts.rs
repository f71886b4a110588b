//! Facts derived from the gathered state that several documents state the same way: the
//! components, every network flow, the cryptography, secrets per key, artifacts per kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::crypto::{self, Asset};
use crate::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Bundler,
    Mirror,
    ControlPlane,
    Runner,
}

impl Component {
    pub const ALL: [Component; 4] = [Component::Bundler, Component::Mirror, Component::ControlPlane, Component::Runner];

    /// Stable name (UUIDs and file names derive from it).
    pub fn key(self) -> &'static str {
        match self {
            Component::Bundler => "bundler",
            Component::Mirror => "mirror",
            Component::ControlPlane => "control-plane",
            Component::Runner => "runner",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Component::Bundler => "airlock bundler",
            Component::Mirror => "airlock mirror",
            Component::ControlPlane => "airlock control plane",
            Component::Runner => "airlock runner",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Component::Bundler => "Runs on the connected (low) side: pins every artifact of an offline manifest, fetches it into a content cache and packs it into one signed, deterministic bundle (zstd-compressed tar holding an OCI image layout behind a minisign-signed manifest). It also verifies bundles; the mirror uses its reader and verifier.",
            Component::Mirror => "Runs inside the enclave: verifies and imports signed bundles into a content-addressed store (streamed, digest-checked, committed atomically) and serves the content to unmodified clients: OCI Distribution, the VS Code update service, Open VSX and Marketplace gallery APIs, JetBrains product data, release files and AMI descriptors.",
            Component::ControlPlane => "Runs inside the enclave: identity, role-based access control, orgs and projects, runners, development environments, secrets (encrypted at rest) and the hash-chained audit log, served as a JSON API.",
            Component::Runner => "Runs inside the enclave: registers with the control plane, pulls images from the mirror and runs each development environment isolated with the OCI runtime runc; users reach environments through its SSH gateway.",
        }
    }

    pub fn purpose(self) -> &'static str {
        match self {
            Component::Bundler => "Carry software across the air gap as signed, verifiable bundles.",
            Component::Mirror => "Make only verified, signed content available inside the enclave.",
            Component::ControlPlane => "Decide who may do what, keep secrets, and record every state change.",
            Component::Runner => "Run development environments isolated from each other and from the host.",
        }
    }

    /// Which side of the gap it runs on.
    pub fn side(self) -> &'static str {
        match self {
            Component::Bundler => "connected side (outside the boundary)",
            _ => "enclave (inside the boundary)",
        }
    }
}

/// A network (or other) path into, out of or within the system.
pub struct Flow {
    pub component: Component,
    pub name: String,
    pub endpoint: String,
    pub transport: &'static str,
    pub protocol: String,
    pub direction: &'static str,
    pub purpose: String,
    pub enabled: String,
    pub exposure: String,
    pub crosses_boundary: String,
}

pub struct Facts {
    pub flows: Vec<Flow>,
    pub crypto: Vec<Asset>,
    /// Secrets per key-encryption key id.
    pub secrets_per_kek: BTreeMap<String, usize>,
    /// Artifacts per kind.
    pub artifacts_per_kind: BTreeMap<String, usize>,
}

fn exposure(addr: &SocketAddr) -> String {
    if addr.ip().is_loopback() {
        "loopback only".into()
    } else if addr.ip().is_unspecified() {
        "every interface of the host".into()
    } else {
        format!("network address {}", addr.ip())
    }
}

fn scheme_protocol(url: &str) -> String {
    if url.starts_with("https://") { "HTTPS (TLS)".into() } else { "HTTP (no TLS)".into() }
}

fn on_off(enabled: bool) -> String {
    if enabled { "yes".into() } else { "no (disabled in the configuration)".into() }
}

impl Facts {
    pub fn of(state: &State) -> Facts {
        let c = &state.config;
        let mut flows = vec![
            Flow {
                component: Component::Mirror,
                name: "mirror API".into(),
                endpoint: c.mirror.listen.to_string(),
                transport: "TCP",
                protocol: if c.mirror.tls_cert.is_some() { "HTTPS (TLS 1.2/1.3)".into() } else { "HTTP (no TLS configured)".into() },
                direction: "inbound",
                purpose: format!(
                    "OCI Distribution pulls{}, VS Code update service, Open VSX and Marketplace gallery APIs, JetBrains product data, release files, AMI descriptors, /metrics",
                    if c.mirror.allow_push { " and pushes with a push token" } else { " (push disabled)" }
                ),
                enabled: on_off(c.mirror.enabled),
                exposure: exposure(&c.mirror.listen),
                crosses_boundary: "no: serves users and runners inside the enclave".into(),
            },
            Flow {
                component: Component::Mirror,
                name: "mirror admin socket".into(),
                endpoint: c.mirror_dir().join("admin").join("admin.sock").display().to_string(),
                transport: "Unix domain socket",
                protocol: "JSON lines".into(),
                direction: "local",
                purpose: "`airlock mirror` commands (import, ls, verify, gc, history, token create, push) while the mirror serves; mode 0600, owner of the data folder only".into(),
                enabled: on_off(c.mirror.enabled),
                exposure: "this host only (file permissions)".into(),
                crosses_boundary: "no".into(),
            },
            Flow {
                component: Component::ControlPlane,
                name: "control plane API".into(),
                endpoint: c.control_plane.listen.to_string(),
                transport: "TCP",
                protocol: if c.control_plane.tls_cert.is_some() { "HTTPS (TLS 1.2/1.3)".into() } else { "HTTP (no TLS configured; refused off loopback)".into() },
                direction: "inbound",
                purpose: "JSON API /api/v1 for users, the admin CLI and runners; /metrics".into(),
                enabled: on_off(c.control_plane.enabled),
                exposure: exposure(&c.control_plane.listen),
                crosses_boundary: "no".into(),
            },
            Flow {
                component: Component::Runner,
                name: "runner SSH gateway".into(),
                endpoint: c.runner.ssh_listen.to_string(),
                transport: "TCP",
                protocol: "SSH 2.0".into(),
                direction: "inbound",
                purpose: format!(
                    "users' OpenSSH clients to their environments (host name in ssh-config: {})",
                    c.runner.ssh_public_host.clone().unwrap_or_else(|| c.runner.ssh_listen.ip().to_string())
                ),
                enabled: on_off(c.runner.enabled),
                exposure: exposure(&c.runner.ssh_listen),
                crosses_boundary: "no".into(),
            },
            Flow {
                component: Component::Runner,
                name: "runner to mirror".into(),
                endpoint: state.config.mirror_url(),
                transport: "TCP",
                protocol: scheme_protocol(&state.config.mirror_url()),
                direction: "outbound (internal)",
                purpose: "image pulls for environments".into(),
                enabled: on_off(c.runner.enabled),
                exposure: "enclave network".into(),
                crosses_boundary: "no".into(),
            },
            Flow {
                component: Component::Runner,
                name: "runner to control plane".into(),
                endpoint: state.config.control_plane_url(),
                transport: "TCP",
                protocol: scheme_protocol(&state.config.control_plane_url()),
                direction: "outbound (internal)",
                purpose: "runner API: credential exchange, heartbeats, environments, secrets, status and events".into(),
                enabled: on_off(c.runner.enabled),
                exposure: "enclave network".into(),
                crosses_boundary: "no".into(),
            },
        ];
        if c.egress.allow.is_empty() {
            flows.push(Flow {
                component: Component::Runner,
                name: "egress allow-list".into(),
                endpoint: "(empty)".into(),
                transport: "TCP",
                protocol: "none".into(),
                direction: "outbound",
                purpose: "egress.allow is empty: high-side components may open no connection beyond loopback and the internal flows above".into(),
                enabled: "n/a".into(),
                exposure: "n/a".into(),
                crosses_boundary: "no".into(),
            });
        }
        let mut allow = c.egress.allow.clone();
        allow.sort();
        for entry in allow {
            flows.push(Flow {
                component: Component::Runner,
                name: "allowed egress destination".into(),
                endpoint: entry,
                transport: "TCP",
                protocol: "as the connecting component uses it (e.g. HTTPS to an internal git server)".into(),
                direction: "outbound (internal)",
                purpose: "a destination in egress.allow that high-side components (e.g. the runner cloning project repositories) may connect to through the egress guard; everything else is refused before a socket opens".into(),
                enabled: "yes".into(),
                exposure: "enclave network".into(),
                crosses_boundary: "no, provided the destination is inside the enclave (the site confirms each entry)".into(),
            });
        }
        flows.push(Flow {
            component: Component::Mirror,
            name: "push to a site registry".into(),
            endpoint: "the URL given to `airlock mirror push --to`".into(),
            transport: "TCP",
            protocol: "HTTPS or HTTP (OCI Distribution)".into(),
            direction: "outbound (internal, on demand)",
            purpose: "an operator copies mirrored content into an existing registry inside the enclave".into(),
            enabled: "only when an operator runs the command".into(),
            exposure: "enclave network".into(),
            crosses_boundary: "no".into(),
        });
        flows.push(Flow {
            component: Component::Bundler,
            name: "bundle transfer".into(),
            endpoint: "removable media (USB, DVD) carried by hand".into(),
            transport: "offline media",
            protocol: "signed bundle files (.airlock.tar.zst, volumes)".into(),
            direction: "into the enclave",
            purpose: "the only path across the air gap: bundles are verified (signatures, threshold, rollback, expiry, every digest) before anything is imported".into(),
            enabled: "by procedure".into(),
            exposure: "n/a".into(),
            crosses_boundary: "yes, by hand; no network path crosses the boundary".into(),
        });

        let mut secrets_per_kek = BTreeMap::new();
        if let Some(cp) = state.control_plane.present() {
            for secret in &cp.secrets {
                *secrets_per_kek.entry(secret.kek_id.clone()).or_insert(0) += 1;
            }
        }
        let mut artifacts_per_kind = BTreeMap::new();
        if let Some(m) = state.mirror.present() {
            for a in &m.artifacts {
                *artifacts_per_kind.entry(a.record.artifact.kind.to_string()).or_insert(0) += 1;
            }
        }
        Facts { flows, crypto: crypto::inventory(&state.lock), secrets_per_kek, artifacts_per_kind }
    }

    /// Enabled network listeners (TCP, inbound).
    pub fn listeners(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter().filter(|f| f.direction == "inbound" && f.transport == "TCP")
    }
}
