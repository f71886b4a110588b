//! The NIST SP 800-53 rev5 controls airlock supports, and what each component does for each
//! one, stated from the live configuration and state. Control ids are OSCAL's (lowercase).
//!
//! Every id is either in the HIGH baseline's resolved catalog or in [`OUTSIDE_BASELINES`]
//! (rev5 controls that no baseline selects); the tests check both against the NIST files.

use airlock_control_plane::{auth, bootstrap};

use crate::facts::{Component, Facts};
use crate::state::State;
use crate::statements as s;

pub struct ControlDef {
    pub id: &'static str,
    pub title: &'static str,
}

/// The controls, in catalog order.
pub const CONTROLS: &[ControlDef] = &[
    ControlDef { id: "ac-2", title: "Account Management" },
    ControlDef { id: "ac-3", title: "Access Enforcement" },
    ControlDef { id: "ac-6", title: "Least Privilege" },
    ControlDef { id: "au-2", title: "Event Logging" },
    ControlDef { id: "au-3", title: "Content of Audit Records" },
    ControlDef { id: "au-8", title: "Time Stamps" },
    ControlDef { id: "au-9", title: "Protection of Audit Information" },
    ControlDef { id: "au-10", title: "Non-repudiation" },
    ControlDef { id: "au-12", title: "Audit Record Generation" },
    ControlDef { id: "cm-2", title: "Baseline Configuration" },
    ControlDef { id: "cm-7", title: "Least Functionality" },
    ControlDef { id: "cm-8", title: "System Component Inventory" },
    ControlDef { id: "cm-11", title: "User-installed Software" },
    ControlDef { id: "cm-14", title: "Signed Components" },
    ControlDef { id: "ia-2", title: "Identification and Authentication (Organizational Users)" },
    ControlDef { id: "ia-5", title: "Authenticator Management" },
    ControlDef { id: "sc-7", title: "Boundary Protection" },
    ControlDef { id: "sc-8", title: "Transmission Confidentiality and Integrity" },
    ControlDef { id: "sc-12", title: "Cryptographic Key Establishment and Management" },
    ControlDef { id: "sc-13", title: "Cryptographic Protection" },
    ControlDef { id: "sc-28", title: "Protection of Information at Rest" },
    ControlDef { id: "sc-39", title: "Process Isolation" },
    ControlDef { id: "si-7", title: "Software, Firmware, and Information Integrity" },
    ControlDef { id: "sr-4", title: "Provenance" },
    ControlDef { id: "sr-11", title: "Component Authenticity" },
];

/// SP 800-53 rev5 controls used here that no baseline (LOW, MODERATE, HIGH) selects, so
/// they are not in the HIGH resolved catalog: checked by the tests to stay outside it.
pub const OUTSIDE_BASELINES: &[&str] = &["cm-14", "sr-4"];

/// `ac-2` → `AC-2`, `si-7.15` → `SI-7(15)`.
pub fn label(id: &str) -> String {
    match id.split_once('.') {
        Some((base, enhancement)) => format!("{}({enhancement})", base.to_uppercase()),
        None => id.to_uppercase(),
    }
}

/// OSCAL implementation-status values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Implemented,
    Partial,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Partial => "partial",
        }
    }
}

pub struct Statement {
    pub component: Component,
    pub text: String,
    pub status: Status,
}

pub struct Implemented {
    pub control: &'static ControlDef,
    pub statements: Vec<Statement>,
}

/// Every control with what each component does for it, from the live state.
pub fn implemented(state: &State, facts: &Facts) -> Vec<Implemented> {
    CONTROLS
        .iter()
        .map(|control| Implemented { control, statements: statements_for(control.id, state, facts) })
        .collect()
}

fn st(component: Component, status: Status, text: String) -> Statement {
    Statement { component, text, status }
}

fn statements_for(id: &str, state: &State, facts: &Facts) -> Vec<Statement> {
    use Component::*;
    use Status::*;
    let c = &state.config;
    let cp_live = s::control_plane_live(state);
    match id {
        "ac-2" => vec![
            st(ControlPlane, Implemented, format!(
                "Accounts live in the control plane. Each user belongs to one org and holds one role: owner, admin, member or auditor. \
                 Owners and admins create, change, disable and delete accounts; only owners create, change or remove owners. \
                 `airlock admin init` creates the site org and its first owner with a bootstrap token valid for {} days and no password: there are no default passwords. \
                 Runners are accounts of their own, registered by an admin and activated with a one-time exchange token. \
                 Every account change is audited (user.create, user.update, user.delete, user.set_password, runner.create, runner.delete). {cp_live}",
                bootstrap::BOOTSTRAP_TOKEN_TTL.as_secs() / 86_400
            )),
            st(Mirror, Implemented, format!(
                "The mirror has no user accounts. Pulls are not authenticated: any client that reaches the mirror listener ({}) reads mirrored content, which is software published upstream. \
                 Pushes need a push token (`airlock mirror token create`, stored only as its SHA-256) and are {} (mirror.allow_push = {}).",
                c.mirror.listen, if c.mirror.allow_push { "enabled" } else { "disabled" }, c.mirror.allow_push
            )),
        ],
        "ac-3" => vec![
            st(ControlPlane, Implemented,
                "Every API route requires a bearer token except login and the runner's token exchange, which take their credential in the body; there is no implicit trust, not even from localhost. \
                 Each handler checks the caller's role against one permission table; a refusal answers 403 and is audited with outcome `denied`. \
                 Objects of another org answer 404. Runner credentials reach only /api/v1/runner/* and only the environments assigned to that runner; user tokens get 403 there.".to_string()),
            st(Mirror, Implemented, format!(
                "Content is read-only for clients; writes happen only through verified imports and, when mirror.allow_push is set (now {}), pushes with a push token. \
                 The admin socket admits only the owner of the data folder (mode 0600).", c.mirror.allow_push)),
            st(Runner, Implemented,
                "The SSH gateway admits a user to an environment only with an SSH public key registered in the control plane by that environment's owner; the runner re-reads the keys from the control plane.".to_string()),
        ],
        "ac-6" => vec![
            st(ControlPlane, Implemented, format!(
                "Roles grant decreasing privilege: owners and admins manage the org; members create and manage only their own environments and read metadata; \
                 auditors read users, runners, environments and the audit log but change nothing and cannot use environments. \
                 Site administration (creating orgs, rotating the key-encryption key) is limited to owners and admins of the site org. \
                 Secret values are never returned to users; only the runner hosting an environment receives them, each read audited. {cp_live}")),
            st(Runner, Implemented, format!(
                "Environment users map to unprivileged host ids: each environment gets its own range of 65536 uids and gids starting at runner.uid_base = {}, root inside being an unprivileged id outside; \
                 processes run with noNewPrivileges and a reduced capability set.", c.runner.uid_base)),
        ],
        "au-2" => vec![
            st(ControlPlane, Implemented, format!(
                "The control plane records {} kinds of events (tables/audit-events.csv): every create, update and delete, every login with its outcome, every refused privileged action (outcome `denied`), \
                 runner registration and phase changes, environment phase changes and SSH sessions, and every secret value read. {}",
                crate::audit_catalog::CONTROL_PLANE.len(), s::audit_observed(state))),
            st(Mirror, Implemented, format!(
                "The mirror records every import attempt in its history with its result (imported, already-imported, refused, failed), the importing identity, the signers and any override (expired bundle, downgrade). {}",
                s::mirror_history_count(state))),
        ],
        "au-3" => vec![
            st(ControlPlane, Implemented,
                "Each record holds seq, time (UTC), org_id, actor (kind user/runner/system/anonymous, id, name, token_id of the credential used), action, subject, \
                 outcome (success, failure, denied), source (client address), request_id (also returned to the client as x-request-id), detail, prev_hash and hash.".to_string()),
            st(Mirror, Implemented,
                "Each history record holds id, time (UTC), actor (login name and uid), action, result, bundle id, channel, sequence, the key ids of the signers, overrides, source (the bundle file) and a message.".to_string()),
        ],
        "au-8" => vec![
            st(ControlPlane, Implemented,
                "Audit records carry UTC timestamps in RFC 3339 with milliseconds, taken from the host clock. airlock does not synchronise clocks: the site synchronises each host with an internal time source.".to_string()),
            st(Mirror, Implemented,
                "History records carry UTC timestamps in RFC 3339 with whole seconds, from the host clock.".to_string()),
        ],
        "au-9" => {
            let (text, status) = s::audit_protection(state);
            vec![
                st(ControlPlane, status, text),
                st(Mirror, Partial,
                    "History records live in the mirror's metadata database inside its data folder; no command changes or deletes them. They are not hash-chained: their protection rests on the permissions of the data folder.".to_string()),
            ]
        }
        "au-10" => vec![
            st(ControlPlane, Partial,
                "Each audit record binds an action to one account and the id of the credential used (token_id), with source address and request id. \
                 Bearer tokens are shared secrets, not signatures: the binding is to a credential, not cryptographic proof of a person.".to_string()),
            st(Mirror, Implemented, format!(
                "Bundles carry minisign signatures by named keys; every import records the key ids of the trusted keys whose signatures verified. {}", s::imports_summary(state))),
            st(Bundler, Implemented,
                "`airlock bundle create` signs the bundle manifest with each key given; officers co-sign with the stock minisign tool, so each approval is a signature by that officer's key.".to_string()),
        ],
        "au-12" => vec![
            st(ControlPlane, Implemented, format!(
                "The control plane writes the records itself, for every API route that changes state, refuses an action or hands out a secret value, and for its own background actions (actor system); \
                 a record and its state change are one atomic write, flushed before the answer. `airlock admin audit export` writes JSON lines for a SIEM. {}", s::audit_observed(state))),
            st(Mirror, Implemented, format!(
                "Every import, through the command line or the running server's admin socket, writes a history record, including refusals and failures; `airlock mirror history` lists them. {}",
                s::mirror_history_count(state))),
        ],
        "cm-2" => vec![
            st(Mirror, Implemented, format!("{} Mirror settings: {}.", s::baseline(state), s::mirror_settings(state))),
            st(ControlPlane, Implemented, format!("{} Control plane settings: {}.", s::baseline(state), s::control_plane_settings(state))),
            st(Runner, Implemented, format!("{} Runner settings: {}.", s::baseline(state), s::runner_settings(state))),
        ],
        "cm-7" => vec![
            st(Mirror, Implemented, format!(
                "mirror.enabled = {}. One listener, {}; push {}; no telemetry and no update checks; no outbound connection of its own except an operator-run `airlock mirror push`.",
                c.mirror.enabled, c.mirror.listen, if c.mirror.allow_push { "enabled" } else { "disabled" })),
            st(ControlPlane, Implemented, format!(
                "control_plane.enabled = {}. One listener, {}; the control plane never opens an outbound connection; plain HTTP is refused on anything but loopback.",
                c.control_plane.enabled, c.control_plane.listen)),
            st(Runner, Implemented, format!(
                "runner.enabled = {}. One listener, the SSH gateway on {}; outbound only to the mirror, the control plane and the egress allow-list ({}).",
                c.runner.enabled, c.runner.ssh_listen, s::egress(state))),
        ],
        "cm-8" => vec![
            st(Mirror, Implemented, format!(
                "The mirror's inventory is its imported artifacts: {}. Each imported bundle has a CycloneDX 1.6 and an SPDX 2.3 SBOM in sbom/; tables/software-inventory.csv lists them all.",
                s::artifact_counts(facts))),
            st(ControlPlane, Implemented, format!("The control plane keeps the inventory of runners and environments. {}", s::runners(state))),
            st(Bundler, Implemented, format!(
                "airlock {} is one binary holding every component; its cryptographic libraries and their versions are listed in tables/crypto-inventory.csv.",
                env!("CARGO_PKG_VERSION"))),
        ],
        "cm-11" => vec![
            st(Mirror, Implemented,
                "Users get IDE servers, extensions and tools only from the mirror, which holds only content from verified bundles; editors and clients are pointed at the mirror's update, gallery and registry APIs, and no route leads to public marketplaces.".to_string()),
            st(ControlPlane, Implemented, format!(
                "Environments start only from the image their project names, copied into the environment when it is created. {}", s::project_images(state))),
            st(Runner, Implemented, format!(
                "The runner pulls images only from the mirror at {} and reaches other destinations (such as the git servers it clones project repositories from) only through the egress guard, which admits the egress allow-list ({}) and refuses everything else. Environments get a network namespace with loopback only.",
                state.config.mirror_url(), s::egress(state))),
        ],
        "cm-14" => vec![
            st(Mirror, s::trust_status(state), format!(
                "The mirror imports nothing unless the bundle manifest carries valid minisign signatures that meet every trust requirement; a signature by a trusted key that does not verify is an error whatever the threshold. {} \
                 Configured trusted keys: {}. {}",
                s::trust_enforced(state), s::trusted_keys(state), s::imports_summary(state))),
            st(Bundler, Implemented,
                "`airlock bundle create` signs the manifest (and the volume list) with every key given; signatures are deterministic Ed25519 in minisign format, verifiable with the stock minisign tool.".to_string()),
        ],
        "ia-2" => vec![
            st(ControlPlane, Partial, format!(
                "Users authenticate with a bearer token: a session token from login with email and password (12 hours), or a personal access token (1 to 365 days). \
                 Only the SHA-256 of a token is stored. Failed logins are rate limited (5 per account and 50 per source address in 15 minutes) and audited. \
                 Not implemented: multi-factor and PIV/CAC authentication; a site that needs them puts an authenticating proxy in front of the API. {}", s::password_users(state))),
            st(Runner, Implemented, format!(
                "Users reach environments over SSH with public-key authentication only, using keys registered in the control plane. {}", s::ssh_keys(state))),
        ],
        "ia-5" => vec![
            st(ControlPlane, Implemented, format!(
                "No default passwords: the first owner gets a {}-day token. Passwords have at least {} characters and are stored as argon2id hashes with a random salt. \
                 Tokens carry 256 random bits, are shown once, stored as SHA-256 and expire (sessions 12 hours, personal tokens 1 to 365 days); runner exchange tokens are single-use and expire after 24 hours; \
                 issuing a new exchange token revokes the runner's credential.",
                bootstrap::BOOTSTRAP_TOKEN_TTL.as_secs() / 86_400, auth::MIN_PASSWORD_LEN)),
            st(Mirror, Implemented,
                "Push tokens are random, shown once and stored only as their SHA-256.".to_string()),
            st(Bundler, Implemented,
                "Signing keys are minisign key pairs; `airlock keygen --password` encrypts the secret key with a password (scrypt), unencrypted keys are for automation and are written with mode 0600.".to_string()),
        ],
        "sc-7" => vec![
            st(Mirror, Implemented, format!("Listeners: {}. {}", s::flows_of(facts, Mirror), "The mirror opens no outbound connection except an operator-run push to a site registry.")),
            st(ControlPlane, Implemented, format!("Listeners: {}. The control plane never opens an outbound connection.", s::flows_of(facts, ControlPlane))),
            st(Runner, Implemented, format!(
                "Flows: {}. Egress allow-list (egress.allow): {}; the egress guard refuses every other destination before a socket opens (loopback is always allowed) and records each refusal in {}. {} Environments get a network namespace with loopback only.",
                s::flows_of(facts, Runner), s::egress(state), state.egress_log.display(), s::egress_refusals(state))),
            st(Bundler, Implemented,
                "No network path crosses the boundary: the bundler runs on the connected side and its bundles cross the air gap by hand on removable media; the mirror verifies them before anything becomes visible.".to_string()),
        ],
        "sc-8" => vec![
            st(Mirror, s::tls_status(&c.mirror.tls_cert, &c.mirror.listen), s::tls_text("mirror", &c.mirror.tls_cert, &c.mirror.listen)),
            st(ControlPlane, s::tls_status(&c.control_plane.tls_cert, &c.control_plane.listen), s::tls_text("control plane", &c.control_plane.tls_cert, &c.control_plane.listen)),
            st(Runner, Implemented, format!(
                "The SSH gateway encrypts and authenticates every session (SSH 2.0). The runner reaches the mirror at {} and the control plane at {}.",
                state.config.mirror_url(), state.config.control_plane_url())),
            st(Bundler, Implemented,
                "Bundles are integrity-protected end to end by their signatures and per-blob SHA-256 digests, whatever carries them; they are not encrypted, so the confidentiality of media in transit rests on its handling.".to_string()),
        ],
        "sc-12" => vec![
            st(ControlPlane, s::kek_status(state), format!(
                "Key-encryption keys (control_plane.kek_files): {}. The first wraps new data keys; each secret has its own random 256-bit data key. \
                 Rotation: `airlock control-plane gen-kek`, restart with the new and the old key, `airlock admin secrets rotate-kek` (re-wraps every data key, all or nothing), restart with the new key only.",
                s::keks(state))),
            st(Mirror, s::trust_status(state), format!(
                "Bundle signing keys are minisign key pairs made on the connected side; only their public halves reach the mirror, as mirror.trusted_keys: {}. \
                 `airlock mirror tls issue` makes the site's internal CA and server certificates (ECDSA P-256).", s::trusted_keys(state))),
            st(Bundler, Implemented, format!(
                "`airlock keygen` makes minisign Ed25519 key pairs from the operating system's random source. Site document signing key (site.signing_key): {}.",
                state.signing_key.as_ref().map_or("not configured".to_string(), |p| p.display().to_string()))),
        ],
        "sc-13" => [Mirror, ControlPlane, Runner, Bundler]
            .into_iter()
            .filter_map(|comp| s::crypto_of(facts, comp).map(|text| st(comp, Partial, text)))
            .collect(),
        "sc-28" => vec![
            st(ControlPlane, Partial, format!(
                "Secret values are encrypted with AES-256-GCM under a per-secret data key, itself wrapped with AES-256-GCM under the key-encryption key whose id is recorded with the secret; both bind the secret id as associated data. \
                 Key-encryption keys: {}. Store covered: the control plane secret store in {}: {}. \
                 The rest of the control plane database (accounts, metadata, audit log) is not encrypted by airlock: the site provides disk encryption.",
                s::keks(state), c.control_plane_dir().display(), s::secrets_per_kek(state, facts))),
            st(Mirror, Implemented, format!(
                "Mirrored content is published software; its integrity at rest is protected by content addressing (every blob in {} is named by its SHA-256 and `airlock mirror verify` re-hashes them all). It is not encrypted.",
                c.mirror_dir().join("blobs").display())),
        ],
        "sc-39" => vec![st(Runner, Implemented, format!(
            "Each environment runs as its own OCI container under runc (runner.runc = {}) with its own user, pid, mount, network (loopback only), ipc, uts and cgroup namespaces, \
             noNewPrivileges, a reduced capability set, a seccomp filter and cgroup limits from its environment class. \
             Its users map to a private range of 65536 host ids starting at runner.uid_base = {}. The runner holds at most runner.capacity = {} environments.",
            c.runner.runc.display(), c.runner.uid_base, c.runner.capacity))],
        "si-7" => vec![
            st(Mirror, Implemented,
                "Import hashes every entry with SHA-256 while it streams and compares it with the signed manifest; hostile archives (absolute paths, `..`, links, devices, duplicates, unlisted or oversize entries, trailing data) are refused; \
                 nothing becomes visible before one atomic commit at the end. `airlock mirror verify` re-hashes every stored blob and names any corrupt one. Clients pull by digest.".to_string()),
            st(Bundler, Implemented,
                "Bundles are deterministic (same inputs, same bytes); `airlock bundle verify` checks every signature and every byte without importing.".to_string()),
            st(ControlPlane, s::audit_protection(state).1,
                "The audit log's hash chain makes any change, deletion or reordering of records detectable (`airlock admin audit verify`); see AU-9 for the state as generated.".to_string()),
        ],
        "sr-4" => vec![
            st(Mirror, Implemented, format!(
                "For every artifact the mirror keeps its upstream (as the offline manifest named it), the bundle that delivered it and the import time; every import records who imported it, the channel and sequence and which keys signed it. {}",
                s::provenance(state))),
            st(Bundler, Implemented,
                "The bundler resolves an offline manifest into a lock file that pins every upstream artifact by digest; each bundle manifest records its tool and version, creation and expiry time, channel and sequence.".to_string()),
        ],
        "sr-11" => vec![
            st(Mirror, s::trust_status(state), format!(
                "Authenticity is established before import: {} Then rollback and freeze protection: a sequence lower than the highest imported on its channel, another bundle with the same sequence, a tag moved by a channel other than the one that set it, or an expired bundle, is refused unless an operator overrides it, and the override is recorded. \
                 Refusals are recorded in the mirror history. {}",
                s::trust_enforced(state), s::channels(state))),
            st(Bundler, Implemented,
                "Bundles are built only from pinned upstream content (lock file digests) and signed on the connected side.".to_string()),
        ],
        other => unreachable!("no statements for {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn nist(file: &str) -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/nist").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    fn catalog_controls(value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for control in value["controls"].as_array().into_iter().flatten() {
            out.push((control["id"].as_str().unwrap().to_string(), control["title"].as_str().unwrap().to_string()));
            catalog_controls(control, out);
        }
        for group in value["groups"].as_array().into_iter().flatten() {
            catalog_controls(group, out);
        }
    }

    fn baseline_ids(file: &str) -> BTreeSet<String> {
        let profile = nist(file);
        let mut ids = BTreeSet::new();
        for import in profile["profile"]["imports"].as_array().unwrap() {
            for include in import["include-controls"].as_array().into_iter().flatten() {
                for id in include["with-ids"].as_array().unwrap() {
                    ids.insert(id.as_str().unwrap().to_string());
                }
            }
        }
        assert!(ids.len() > 100, "{file} lists its controls");
        ids
    }

    #[test]
    fn every_control_is_in_the_high_catalog_or_declared_outside_every_baseline() {
        let mut controls = Vec::new();
        catalog_controls(&nist("NIST_SP-800-53_rev5_HIGH-baseline-resolved-profile_catalog-min.json")["catalog"], &mut controls);
        assert!(controls.len() > 300);
        for def in CONTROLS {
            match controls.iter().find(|(id, _)| id == def.id) {
                Some((_, title)) => {
                    assert!(!OUTSIDE_BASELINES.contains(&def.id), "{} is in the HIGH baseline", def.id);
                    assert_eq!(title, def.title, "title of {}", def.id);
                }
                None => assert!(OUTSIDE_BASELINES.contains(&def.id), "{} is neither in the HIGH catalog nor declared outside", def.id),
            }
        }
    }

    #[test]
    fn the_outside_list_is_honest() {
        let baselines = ["LOW", "MODERATE", "HIGH"].map(|b| baseline_ids(&format!("NIST_SP-800-53_rev5_{b}-baseline_profile.json")));
        for id in OUTSIDE_BASELINES {
            assert!(CONTROLS.iter().any(|c| c.id == *id), "{id} is used");
            for (name, ids) in ["LOW", "MODERATE", "HIGH"].iter().zip(&baselines) {
                assert!(!ids.contains(*id), "{id} is in the {name} baseline");
            }
            // A well-formed rev5 id of an existing family.
            let (family, number) = id.split_once('-').unwrap();
            assert!(["cm", "sr"].contains(&family) && number.parse::<u32>().is_ok(), "{id}");
        }
        for def in CONTROLS.iter().filter(|c| !OUTSIDE_BASELINES.contains(&c.id)) {
            assert!(baselines[2].contains(def.id), "{} is in the HIGH profile", def.id);
        }
    }

    #[test]
    fn ids_are_lowercase_and_labels_are_not() {
        for def in CONTROLS {
            assert_eq!(def.id, def.id.to_lowercase());
        }
        assert_eq!(label("ac-2"), "AC-2");
        assert_eq!(label("si-7.15"), "SI-7(15)");
    }

    #[test]
    fn runner_isolation_claims_match_the_runner_spec() {
        let spec = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../airlock-runner/src/spec.rs")).unwrap();
        for ns in ["user", "pid", "mount", "network", "ipc", "uts", "cgroup"] {
            assert!(spec.contains(&format!("{{\"type\": \"{ns}\"}}")), "runner spec has no {ns} namespace");
        }
        for claim in ["noNewPrivileges", "seccomp", "CAPABILITIES"] {
            assert!(spec.contains(claim), "runner spec does not mention {claim}");
        }
    }
}
