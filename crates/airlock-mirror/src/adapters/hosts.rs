//! Which upstream a request's `Host` names, and so which protocol answers it.
//!
//! Clients with a compiled-in host (VS Code's update service, JetBrains tools, container
//! engines pulling `mcr.microsoft.com/…`) reach the mirror through split-horizon DNS and a
//! certificate from the internal CA; the mirror then answers as that upstream would. Any
//! other name is the mirror's own, where every protocol is served side by side.

/// The protocol personality a host name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    /// The mirror's own name: every protocol, Open VSX at `/api` and `/vscode`, the update
    /// service under `/vscode-update` (and `/commit:…` at the root).
    Own,
    /// `update.code.visualstudio.com`: the VS Code update service at the root.
    VscodeUpdate,
    /// `open-vsx.org`: the Open VSX gallery (`/vscode/…`) and registry API (`/api/…`).
    OpenVsx,
    /// `marketplace.visualstudio.com`: the same gallery under the Marketplace's paths.
    Marketplace,
    /// `data.services.jetbrains.com`: the products API.
    JetBrainsData,
    /// `download.jetbrains.com` and its CDN names: archives and checksums at upstream paths.
    JetBrainsDownload,
    /// Container registries: the OCI Distribution API for every path.
    Registry,
}

/// Every upstream host the mirror can answer as, with its face. `mirror tls issue` puts all
/// of them in the server certificate.
pub const MIRRORED_HOSTS: &[(&str, Face)] = &[
    ("update.code.visualstudio.com", Face::VscodeUpdate),
    ("open-vsx.org", Face::OpenVsx),
    ("marketplace.visualstudio.com", Face::Marketplace),
    ("data.services.jetbrains.com", Face::JetBrainsData),
    ("download.jetbrains.com", Face::JetBrainsDownload),
    ("download-cdn.jetbrains.com", Face::JetBrainsDownload),
    ("download-cf.jetbrains.com", Face::JetBrainsDownload),
    ("mcr.microsoft.com", Face::Registry),
    ("public.ecr.aws", Face::Registry),
    ("ghcr.io", Face::Registry),
    ("registry-1.docker.io", Face::Registry),
];

/// The host part of a `Host` header or authority: no port, lowercase, no trailing dot.
pub fn normalize(host: &str) -> String {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: `[::1]:443`.
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host, |(h, _)| h)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

pub fn face_for(host: &str) -> Face {
    let host = normalize(host);
    MIRRORED_HOSTS.iter().find(|(name, _)| *name == host).map_or(Face::Own, |(_, face)| *face)
}

/// Hosts that serve the same files under the same paths (JetBrains' download CDNs), so a
/// file whose upstream URL names one is found under any of them.
pub fn same_content(a: &str, b: &str) -> bool {
    a == b || (face_for(a) == Face::JetBrainsDownload && face_for(b) == Face::JetBrainsDownload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_select_faces_whatever_the_port_and_case() {
        assert_eq!(face_for("update.code.visualstudio.com"), Face::VscodeUpdate);
        assert_eq!(face_for("Update.Code.VisualStudio.com:8443"), Face::VscodeUpdate);
        assert_eq!(face_for("mcr.microsoft.com."), Face::Registry);
        assert_eq!(face_for("mirror.internal:5000"), Face::Own);
        assert_eq!(face_for("127.0.0.1:5000"), Face::Own);
        assert_eq!(face_for("[::1]:5000"), Face::Own);
        assert_eq!(normalize("[::1]:5000"), "::1");
        assert!(same_content("download-cdn.jetbrains.com", "download.jetbrains.com"));
        assert!(!same_content("open-vsx.org", "download.jetbrains.com"));
    }
}
