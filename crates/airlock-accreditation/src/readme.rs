//! `README.md` and `diagrams/boundary.dot` (+ `.svg` when Graphviz's `dot` is installed): the
//! readable system description and boundary statement that ties the package together.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::controls::{self, label};
use crate::facts::{Component, Facts};
use crate::state::{Part, State};
use crate::text::{count, Table};
use crate::{ssp, Files};

pub const PATH: &str = "README.md";
pub const DOT: &str = "diagrams/boundary.dot";
pub const SVG: &str = "diagrams/boundary.svg";

pub struct Diagram {
    pub dot: String,
    pub svg: Option<Vec<u8>>,
}

/// A DOT string; a `\n` escape in `text` stays a line break, quotes are escaped.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\\\""))
}

/// Text from the configuration, made safe inside a DOT string (no escapes of its own).
fn clean(text: &str) -> String {
    text.replace(['\\', '\n', '\r'], " ")
}

impl Diagram {
    pub fn render(state: &State, facts: &Facts) -> Diagram {
        let dot = dot(state, facts);
        Diagram { svg: svg(&dot), dot }
    }

    /// Where the SSP and README point: the SVG when it was rendered.
    pub fn href(&self) -> &'static str {
        if self.svg.is_some() { SVG } else { DOT }
    }
}

fn dot(state: &State, facts: &Facts) -> String {
    let c = &state.config;
    let node = |id: &str, title: &str, detail: String, enabled: bool| {
        let style = if enabled { "rounded" } else { "rounded,dashed" };
        let suffix = if enabled { "" } else { "\\n(disabled)" };
        format!("    {id} [label={}, style={quote_style}];\n", quote(&format!("{title}\\n{detail}{suffix}")), quote_style = quote(style))
    };
    let listener = |component: Component| {
        facts.listeners().filter(|f| f.component == component).map(|f| format!("{} {}", f.protocol.split(' ').next().unwrap_or(""), clean(&f.endpoint))).collect::<Vec<_>>().join("\\n")
    };
    let mut out = String::new();
    out.push_str("digraph airlock {\n");
    out.push_str(&format!(
        "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label={}];\n",
        quote(&format!("{}: airlock authorization boundary", clean(&c.site.name)))
    ));
    out.push_str("  node [shape=box, fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  subgraph cluster_connected {\n    label=\"Connected side (outside the boundary)\"; style=dashed;\n");
    out.push_str("    bundler [label=\"airlock bundler\\nsigns bundles (minisign)\", style=rounded];\n  }\n");
    out.push_str("  media [label=\"removable media\\nsigned bundles, by hand\", shape=note];\n");
    out.push_str(&format!("  subgraph cluster_enclave {{\n    label={}; style=bold;\n", quote(&format!("Authorization boundary: {}", clean(&c.site.name)))));
    out.push_str(&node("mirror", "airlock mirror", listener(Component::Mirror), c.mirror.enabled));
    out.push_str(&node("control_plane", "airlock control plane", listener(Component::ControlPlane), c.control_plane.enabled));
    out.push_str(&node("runner", "airlock runner", listener(Component::Runner), c.runner.enabled));
    out.push_str("    environments [label=\"environments\\nrunc: own user, pid, mount namespaces\\nnetwork: loopback only\", shape=box3d];\n");
    out.push_str("    users [label=\"users\\nIDEs, ssh, CLI, container engines\", shape=ellipse];\n");
    let mut allow = c.egress.allow.clone();
    allow.sort();
    for (i, entry) in allow.iter().enumerate() {
        out.push_str(&format!("    egress_{i} [label={}, shape=component];\n", quote(&format!("allowed: {}", clean(entry)))));
    }
    out.push_str("  }\n");
    out.push_str("  bundler -> media [label=\"bundle create\"];\n");
    out.push_str("  media -> mirror [label=\"verify + import\"];\n");
    out.push_str("  users -> mirror [label=\"pull\"];\n  users -> control_plane [label=\"API\"];\n  users -> runner [label=\"SSH\"];\n");
    out.push_str("  runner -> mirror [label=\"image pulls\"];\n  runner -> control_plane [label=\"runner API\"];\n  runner -> environments;\n");
    for i in 0..allow.len() {
        out.push_str(&format!("  runner -> egress_{i} [label=\"egress.allow\"];\n"));
    }
    out.push_str("}\n");
    out
}

/// Renders with `dot -Tsvg` when Graphviz is installed; `None` otherwise.
fn svg(dot: &str) -> Option<Vec<u8>> {
    let mut child = Command::new("dot").arg("-Tsvg").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    child.stdin.take()?.write_all(dot.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
}

fn contents(state: &State) -> Table {
    let mut t = Table::new(&["file", "what"]);
    let mut row = |f: &str, w: &str| t.push(vec![format!("`{f}`"), w.to_string()]);
    row("oscal/component-definition.json", "OSCAL 1.1.2 component definition: the four components and the SP 800-53 rev5 controls each implements, with statements from the live configuration");
    row("oscal/ssp-draft.json", "OSCAL 1.1.2 system security plan draft: components, boundary, users and roles, inventory, by-component statements; the site completes it");
    for bundle in state.bundles() {
        row(&format!("sbom/{}.cdx.json", bundle.id), "CycloneDX 1.6 SBOM of an imported bundle, with airlock's cryptographic assets");
        row(&format!("sbom/{}.spdx.json", bundle.id), "SPDX 2.3 SBOM of the same bundle");
    }
    row("tables/ports-protocols-services.csv, .md", "every listener and flow, direction, purpose, boundary crossing");
    row("tables/crypto-inventory.csv, .md", "algorithms, libraries and versions, uses, FIPS 140 status");
    row("tables/software-inventory.csv, .md", "airlock, the OCI runtime and every mirrored artifact");
    row("tables/audit-events.csv, .md", "every audit event and mirror history kind, with counts");
    row("evidence/audit-chain-verification.json", "the audit chain verified when this was generated, and its head");
    row("evidence/bundle-imports.json", "every import attempt: signers, digests, import time, importing identity");
    row("evidence/configuration-baseline.json, .sha256", "the effective configuration (canonical JSON) and its SHA-256");
    row(DOT, "boundary and data-flow diagram (Graphviz); the .svg beside it when Graphviz was installed");
    row("MANIFEST.sha256", "SHA-256 of every other file, in `sha256sum` format; MANIFEST.sha256.minisig signs it");
    t
}

fn controls_table(state: &State, facts: &Facts) -> Table {
    let mut t = Table::new(&["control", "title", "components (status)"]);
    for imp in controls::implemented(state, facts) {
        let by: Vec<String> = imp.statements.iter().map(|s| format!("{} ({})", s.component.title(), s.status.as_str())).collect();
        t.push(vec![label(imp.control.id), imp.control.title.into(), by.join(", ")]);
    }
    t
}

fn state_found(state: &State) -> String {
    let mut out = String::new();
    match &state.mirror {
        Part::Present(m) => out.push_str(&format!(
            "- Mirror: {} (read through {}): {} from {}, {} in its history.\n",
            m.dir.display(),
            if m.through_server { "the running mirror's admin socket" } else { "its data folder" },
            count(m.artifacts.len(), "artifact", "artifacts"),
            count(state.bundles().len(), "imported bundle", "imported bundles"),
            count(m.history.len(), "record", "records")
        )),
        Part::Absent(why) => out.push_str(&format!("- Mirror: **absent**: {why}. No SBOM and no inventory could be generated from it.\n")),
    }
    match &state.control_plane {
        Part::Present(cp) => out.push_str(&format!(
            "- Control plane: {}: {}, {}, {}; audit chain {} ({}, head {} `{}`).\n",
            cp.dir.display(),
            count(cp.orgs.len(), "org", "orgs"),
            count(cp.users.len(), "account", "accounts"),
            count(cp.secrets.len(), "secret", "secrets"),
            if cp.audit.ok { "verified" } else { "**does not verify**" },
            count(cp.audit.records as usize, "record", "records"),
            cp.audit.head.seq,
            cp.audit.head.hash
        )),
        Part::Absent(why) => out.push_str(&format!("- Control plane: **absent**: {why}. Accounts, secrets and the audit chain are not documented.\n")),
    }
    for note in state.notes().iter().filter(|n| !n.starts_with("mirror:") && !n.starts_with("control plane:")) {
        out.push_str(&format!("- {note}.\n"));
    }
    out
}

fn gaps(state: &State) -> Vec<String> {
    let c = &state.config;
    let mut gaps = vec![
        "No cryptographic module in airlock is FIPS 140-3 validated as built (tables/crypto-inventory.csv).".to_string(),
        "minisign signatures prehash with BLAKE2b-512, which is not a FIPS-approved hash; password hashing uses Argon2id and key files scrypt, neither FIPS-approved.".to_string(),
        "The control plane has no multi-factor or PIV/CAC authentication (IA-2(1), (2), (12)).".to_string(),
        "Mirror pulls are not authenticated: any client that reaches the mirror can read mirrored content.".to_string(),
        "The audit hash chain is not keyed: keep its head (evidence/audit-chain-verification.json) outside the system. The mirror history is not hash-chained.".to_string(),
        "The control plane database is not encrypted by airlock beyond secret values: the site provides disk encryption.".to_string(),
    ];
    for (what, cert, listen) in [("mirror", &c.mirror.tls_cert, c.mirror.listen), ("control plane", &c.control_plane.tls_cert, c.control_plane.listen)] {
        if cert.is_none() {
            gaps.push(format!(
                "TLS is not configured for the {what} ({listen}){}.",
                if listen.ip().is_loopback() { ", which listens on loopback only" } else { ": traffic to it crosses the network in the clear" }
            ));
        }
    }
    if state.mirror.present().and_then(|m| m.anchor.as_ref()).is_none() {
        gaps.push("no site trust anchor is pinned in the mirror: imports are checked only against the keys their operator names on the command line.".into());
    }
    if let Some(why) = crate::statements::anchor_differs(state) {
        gaps.push(format!("trust anchor: {why}."));
    }
    gaps
}

pub fn write(state: &State, facts: &Facts, diagram: &Diagram, signer: Option<&str>, files: &mut Files) {
    let c = &state.config;
    let mut md = String::new();
    md.push_str(&format!("# Accreditation package: {}\n\n", c.site.name));
    md.push_str(&format!(
        "Generated by airlock {} (`airlock docs accreditation`) from the live configuration and state. \
         Documents carry the time of {}: **{}**. Configuration: {} (SHA-256 `{}`).\n\n",
        env!("CARGO_PKG_VERSION"),
        state.as_of.source,
        state.as_of.time,
        state.config_path.as_ref().map_or("defaults and AIRLOCK_* variables".to_string(), |p| format!("`{}` with AIRLOCK_* variables", p.display())),
        state.config_sha256
    ));
    md.push_str("## System\n\n");
    md.push_str(
        "airlock provides cloud development environments on a network with no route to the internet. \
         Everything the environments need (container images, IDE servers, editor extensions, tools) is packed on the connected side into signed bundles, \
         carried across the air gap by hand, verified and imported by the mirror, and served inside the enclave. \
         The control plane holds accounts, roles, projects, secrets and the audit log; runners run each environment isolated under runc.\n\n",
    );
    let mut components = Table::new(&["component", "where", "enabled", "what it does"]);
    for component in Component::ALL {
        let enabled = match component {
            Component::Mirror => c.mirror.enabled.to_string(),
            Component::ControlPlane => c.control_plane.enabled.to_string(),
            Component::Runner => c.runner.enabled.to_string(),
            Component::Bundler => "n/a (connected side)".into(),
        };
        components.push(vec![component.title().into(), component.side().into(), enabled, component.description().into()]);
    }
    md.push_str(&components.markdown_table());
    md.push_str("\n## Authorization boundary\n\n");
    md.push_str(&ssp::boundary_statement(state));
    md.push_str("\n\n");
    match &diagram.svg {
        Some(_) => md.push_str(&format!("![Boundary diagram]({SVG})\n\nSource: [`{DOT}`]({DOT}).\n\n")),
        None => md.push_str(&format!(
            "Diagram source: [`{DOT}`]({DOT}) (Graphviz was not installed when this was generated; render it with `dot -Tsvg {DOT} > {SVG}`).\n\n"
        )),
    }
    let mut flows = Table::new(&["flow", "direction", "endpoint", "protocol", "crosses boundary"]);
    for f in &facts.flows {
        flows.push(vec![f.name.clone(), f.direction.into(), f.endpoint.clone(), f.protocol.clone(), f.crosses_boundary.clone()]);
    }
    md.push_str(&flows.markdown_table());
    md.push_str("\n## State read\n\n");
    md.push_str(&state_found(state));
    md.push_str("\n## Contents\n\n");
    md.push_str(&contents(state).markdown_table());
    md.push_str("\n## Controls\n\n");
    md.push_str("NIST SP 800-53 rev5 controls airlock implements (CM-14 and SR-4 lie outside every baseline). Statements are in `oscal/component-definition.json` and, by component, in `oscal/ssp-draft.json`.\n\n");
    md.push_str(&controls_table(state, facts).markdown_table());
    md.push_str("\n## Known gaps\n\n");
    for gap in gaps(state) {
        md.push_str(&format!("- {gap}\n"));
    }
    md.push_str("\n## Checking this package\n\n");
    match signer {
        Some(key_id) => md.push_str(&format!(
            "`MANIFEST.sha256` lists the SHA-256 of every other file and is signed with the site key (key id {key_id}) in `MANIFEST.sha256.minisig`. With the site's public key:\n\n\
             ```sh\nminisign -Vm MANIFEST.sha256 -p site.pub\nsha256sum -c MANIFEST.sha256\n```\n"
        )),
        None => md.push_str(
            "**`MANIFEST.sha256` is not signed**: no site signing key was configured (`site.signing_key` or `--signing-key`). \
             It still lists the SHA-256 of every other file:\n\n```sh\nsha256sum -c MANIFEST.sha256\n```\n",
        ),
    }
    md.push_str("\n## For the site to complete\n\n");
    md.push_str(
        "- In `oscal/ssp-draft.json`: the FIPS 199 categorization and SP 800-60 impacts of each information type, the security sensitivity and impact levels, the baseline profile (the HIGH baseline is a placeholder), the authorization date, and the status.\n\
         - Responsible people for system roles (system owner, authorizing official, ISSO); the parties listed are the control plane's accounts.\n\
         - Organizational controls airlock cannot state: policies and procedures, personnel and physical security, media handling for bundles, host hardening, backups, time synchronisation, disk encryption.\n\
         - Controls inherited from the hosting environment, and a plan of action for the known gaps above.\n",
    );
    files.insert(PATH.into(), md.into_bytes());
    files.insert(DOT.into(), diagram.dot.clone().into_bytes());
    if let Some(svg) = &diagram.svg {
        files.insert(SVG.into(), svg.clone());
    }
}
