//! Phrases with live values that the control statements ([`crate::controls`]) are built from.
//! Each says honestly when the value could not be read.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use airlock_control_plane::rbac::Role;
use airlock_mirror::anchor::{self, KeyRequirement};

use crate::controls::Status;
use crate::facts::{Component, Facts};
use crate::state::{Part, State};
use crate::text::{count, join_and};

fn absent_control_plane(state: &State) -> Option<String> {
    match &state.control_plane {
        Part::Absent(why) => Some(format!("Live values could not be read: {why}.")),
        Part::Present(_) => None,
    }
}

fn absent_mirror(state: &State) -> Option<String> {
    match &state.mirror {
        Part::Absent(why) => Some(format!("Live values could not be read: {why}.")),
        Part::Present(_) => None,
    }
}

/// Accounts per org and role, and runners.
pub fn control_plane_live(state: &State) -> String {
    if let Some(absent) = absent_control_plane(state) {
        return absent;
    }
    format!("As generated: {}; {}", accounts(state), runners(state))
}

fn accounts(state: &State) -> String {
    let Some(cp) = state.control_plane.present() else { return String::new() };
    if cp.orgs.is_empty() {
        return "no org exists yet".into();
    }
    let mut orgs: Vec<&airlock_control_plane::model::Org> = cp.orgs.iter().collect();
    orgs.sort_by(|a, b| a.name.cmp(&b.name));
    let parts: Vec<String> = orgs
        .iter()
        .map(|org| {
            let mut per_role: BTreeMap<Role, (usize, usize)> = Role::ALL.iter().map(|r| (*r, (0, 0))).collect();
            for u in cp.users.iter().filter(|u| u.org_id == org.id) {
                let e = per_role.entry(u.role).or_default();
                if u.disabled { e.1 += 1 } else { e.0 += 1 }
            }
            let roles: Vec<String> = per_role
                .iter()
                .map(|(role, (active, _))| count(*active, role.as_str(), &format!("{}s", role.as_str())))
                .collect();
            let disabled: usize = per_role.values().map(|(_, d)| d).sum();
            format!(
                "org `{}`{}: {} active accounts ({}){}",
                org.name,
                if org.site { " (site org)" } else { "" },
                per_role.values().map(|(a, _)| a).sum::<usize>(),
                join_and(&roles),
                if disabled > 0 { format!(", {disabled} disabled") } else { String::new() }
            )
        })
        .collect();
    parts.join("; ")
}

pub fn runners(state: &State) -> String {
    if let Some(absent) = absent_control_plane(state) {
        return absent;
    }
    let cp = state.control_plane.present().expect("present");
    let mut list: Vec<String> = cp
        .runners
        .iter()
        .map(|r| format!("{} (capacity {}, {})", r.name, r.capacity, serde_json::to_value(r.phase).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()))
        .collect();
    list.sort();
    format!(
        "{}{}; {} and {}.",
        count(list.len(), "runner", "runners"),
        if list.is_empty() { String::new() } else { format!(": {}", list.join(", ")) },
        count(cp.projects.len(), "project", "projects"),
        count(cp.environments, "environment", "environments")
    )
}

pub fn audit_observed(state: &State) -> String {
    if let Some(absent) = absent_control_plane(state) {
        return absent;
    }
    let cp = state.control_plane.present().expect("present");
    format!(
        "As generated the log holds {} of {} kinds.",
        count(cp.audit.records as usize, "record", "records"),
        cp.audit_actions.len()
    )
}

pub fn mirror_history_count(state: &State) -> String {
    match state.mirror.present() {
        Some(m) => format!("As generated the history holds {}.", count(m.history.len(), "record", "records")),
        None => absent_mirror(state).unwrap_or_default(),
    }
}

/// AU-9's statement and whether the chain verified.
pub fn audit_protection(state: &State) -> (String, Status) {
    let mechanism = "Each record stores the SHA-256 of the previous record's hash and its own canonical JSON; record 1 chains to 64 zeros. \
        A record is written in the same atomic batch as the state change it describes and flushed before the API answers. \
        The API has no way to change or delete records; reading and verifying them needs an owner, admin or auditor role. \
        `airlock admin audit verify` names every modified, deleted or reordered record. The chain is not keyed: against someone with write access to the data directory, \
        keep the head elsewhere and pass it back with --expect-head.";
    match state.control_plane.present() {
        None => (format!("{mechanism} {}", absent_control_plane(state).unwrap_or_default()), Status::Partial),
        Some(cp) if cp.audit.ok => (
            format!(
                "{mechanism} As generated the chain verifies: {}, head record {} with hash {} (evidence/audit-chain-verification.json).",
                count(cp.audit.records as usize, "record", "records"),
                cp.audit.head.seq,
                cp.audit.head.hash
            ),
            Status::Implemented,
        ),
        Some(cp) => (
            format!(
                "{mechanism} As generated the chain does NOT verify: {} (evidence/audit-chain-verification.json).",
                cp.audit.problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; ")
            ),
            Status::Partial,
        ),
    }
}

pub fn imports_summary(state: &State) -> String {
    let Some(_) = state.mirror.present() else { return absent_mirror(state).unwrap_or_default() };
    let bundles = state.bundles();
    if bundles.is_empty() {
        return "As generated no bundle has been imported.".into();
    }
    let list: Vec<String> = bundles
        .iter()
        .map(|b| {
            format!(
                "{} (channel {}, sequence {}, signed by {})",
                b.id,
                b.import.channel.as_deref().unwrap_or("?"),
                b.import.sequence.map_or("?".into(), |s| s.to_string()),
                if b.import.signers.is_empty() { "no recorded key".into() } else { b.import.signers.join(", ") }
            )
        })
        .collect();
    format!("As generated, imported bundles: {}.", list.join("; "))
}

pub fn baseline(state: &State) -> String {
    format!(
        "The baseline configuration is the effective configuration ({} with AIRLOCK_* overrides), SHA-256 {} (evidence/configuration-baseline.json); unknown keys are refused, so a misspelt setting cannot slip in.",
        state.config_path.as_ref().map_or("defaults, no configuration file".to_string(), |p| p.display().to_string()),
        state.config_sha256
    )
}

fn path_list(paths: &[PathBuf]) -> String {
    if paths.is_empty() { "none".into() } else { paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") }
}

pub fn mirror_settings(state: &State) -> String {
    let m = &state.config.mirror;
    format!(
        "enabled = {}, listen = {}, TLS {}, allow_push = {}, trusted_keys = {}, threshold = {}",
        m.enabled,
        m.listen,
        m.tls_cert.as_ref().map_or("not configured".to_string(), |p| format!("certificate {}", p.display())),
        m.allow_push,
        path_list(&m.trusted_keys),
        m.threshold
    )
}

pub fn control_plane_settings(state: &State) -> String {
    let c = &state.config.control_plane;
    format!(
        "enabled = {}, listen = {}, TLS {}, kek_files = {}, inactive_after_seconds = {}",
        c.enabled,
        c.listen,
        c.tls_cert.as_ref().map_or("not configured".to_string(), |p| format!("certificate {}", p.display())),
        if c.kek_files.is_empty() { "not configured (`airlock server` refuses to start without one)".to_string() } else { path_list(&c.kek_files) },
        c.inactive_after_seconds
    )
}

pub fn runner_settings(state: &State) -> String {
    let r = &state.config.runner;
    format!(
        "enabled = {}, name = {}, capacity = {}, ssh_listen = {}, uid_base = {}, runc = {}, egress.allow = {}",
        r.enabled,
        r.name,
        r.capacity,
        r.ssh_listen,
        r.uid_base,
        r.runc.display(),
        egress(state)
    )
}

pub fn egress(state: &State) -> String {
    let mut allow = state.config.egress.allow.clone();
    allow.sort();
    if allow.is_empty() { "empty: no destination beyond loopback".into() } else { allow.join(", ") }
}

pub fn artifact_counts(facts: &Facts) -> String {
    if facts.artifacts_per_kind.is_empty() {
        return "none yet".into();
    }
    join_and(&facts.artifacts_per_kind.iter().map(|(kind, n)| format!("{n} {kind}")).collect::<Vec<_>>())
}

pub fn project_images(state: &State) -> String {
    if let Some(absent) = absent_control_plane(state) {
        return absent;
    }
    let cp = state.control_plane.present().expect("present");
    if cp.projects.is_empty() {
        return "As generated no project exists.".into();
    }
    let mut list: Vec<String> = cp.projects.iter().map(|p| format!("{} uses {}", p.name, p.image)).collect();
    list.sort();
    format!("As generated: {}.", list.join("; "))
}

/// Implemented only when the mirror has a pinned trust anchor and it is the configuration's.
pub fn trust_status(state: &State) -> Status {
    let pinned = state.mirror.present().and_then(|m| m.anchor.as_ref());
    if pinned.is_some() && trust_enforced_text(state).is_ok() && anchor_differs(state).is_none() {
        Status::Implemented
    } else {
        Status::Partial
    }
}

/// What every import on this mirror enforces, in the words of the check itself
/// (`airlock_mirror::anchor::enforced`, built from the same pinned record imports use).
pub fn trust_enforced(state: &State) -> String {
    trust_enforced_text(state).unwrap_or_else(|e| e)
}

fn trust_enforced_text(state: &State) -> Result<String, String> {
    let Some(mirror) = state.mirror.present() else {
        return Err("As generated the mirror has no data folder, so no trust anchor is pinned; `airlock server` (or `airlock mirror serve --config`) pins mirror.trusted_keys and mirror.threshold when it starts.".into());
    };
    match anchor::enforced(mirror.anchor.as_ref()) {
        Ok(Some(text)) => Ok(format!(
            "Every import, in-process or through the running server, requires {text}; keys named at import time (--trusted-key, --config) only add requirements, each checked on its own, and an override of rollback or expiry is possible only after every requirement is met, and is recorded."
        )),
        Ok(None) => Err("As generated no site trust anchor is pinned in the mirror: each import is checked only against the keys its operator names (--trusted-key). `airlock server` (or `airlock mirror serve --config`) pins mirror.trusted_keys and mirror.threshold when it starts.".into()),
        Err(e) => Err(format!("The pinned trust anchor cannot be used ({e}): every import is refused until `airlock server` pins a valid one.")),
    }
}

/// Why the configuration's mirror.trusted_keys/threshold are not what is pinned, if they differ.
pub fn anchor_differs(state: &State) -> Option<String> {
    let pinned = state.mirror.present().and_then(|m| m.anchor.as_ref());
    let configured = KeyRequirement::read(&state.config.mirror.trusted_keys, state.config.mirror.threshold, "").map_err(|e| e.to_string());
    match (configured, pinned) {
        (Err(e), _) => Some(format!("the configured trusted keys cannot be used: {e}")),
        (Ok(None), None) => None,
        (Ok(Some(_)), None) => Some("mirror.trusted_keys is configured but not pinned in the mirror yet: start `airlock server` (or `airlock mirror serve --config`) to pin it".into()),
        (Ok(None), Some(p)) => Some(format!("the configuration names no mirror.trusted_keys; the anchor pinned from {} stays in force", p.requirement.source)),
        (Ok(Some(c)), Some(p)) if c.keys.iter().map(|k| &k.0).ne(p.requirement.keys.iter().map(|k| &k.0)) || c.threshold != p.requirement.threshold => {
            Some(format!("mirror.trusted_keys or mirror.threshold differ from the anchor pinned {}; restart `airlock server` to pin them", p.pinned))
        }
        _ => None,
    }
}

pub fn trusted_keys(state: &State) -> String {
    if state.trusted_keys.is_empty() {
        return "none in the configuration".into();
    }
    let list: Vec<String> = state
        .trusted_keys
        .iter()
        .map(|k| match &k.loaded {
            Ok(key) => format!("{} (key id {}, SHA-256 fingerprint {})", k.path.display(), key.key_id, key.fingerprint),
            Err(e) => format!("{} (cannot be read: {e})", k.path.display()),
        })
        .collect();
    list.join("; ")
}

pub fn password_users(state: &State) -> String {
    match state.control_plane.present() {
        Some(cp) => format!(
            "As generated {} of {} have a password.",
            cp.users.iter().filter(|u| u.has_password).count(),
            count(cp.users.len(), "account", "accounts")
        ),
        None => absent_control_plane(state).unwrap_or_default(),
    }
}

pub fn ssh_keys(state: &State) -> String {
    match state.control_plane.present() {
        Some(cp) => format!("As generated {} registered.", count(cp.ssh_keys, "SSH key is", "SSH keys are")),
        None => absent_control_plane(state).unwrap_or_default(),
    }
}

pub fn flows_of(facts: &Facts, component: Component) -> String {
    let list: Vec<String> = facts
        .flows
        .iter()
        .filter(|f| f.component == component)
        .map(|f| format!("{} {} {} ({}, {}, enabled: {})", f.name, f.direction, f.endpoint, f.protocol, f.exposure, f.enabled))
        .collect();
    list.join("; ")
}

pub fn tls_status(cert: &Option<PathBuf>, listen: &SocketAddr) -> Status {
    if cert.is_some() || listen.ip().is_loopback() { Status::Implemented } else { Status::Partial }
}

pub fn tls_text(what: &str, cert: &Option<PathBuf>, listen: &SocketAddr) -> String {
    match cert {
        Some(cert) => format!(
            "The {what} listener {listen} serves HTTPS only (rustls, TLS 1.2 and 1.3) with the certificate chain {}.",
            cert.display()
        ),
        None if listen.ip().is_loopback() => format!(
            "TLS is not configured: the {what} listener {listen} serves plain HTTP, on loopback only, so nothing leaves the host unprotected. Configure a certificate before listening on the network."
        ),
        None => format!(
            "TLS is not configured: the {what} listener {listen} serves plain HTTP on the network; traffic to it is neither encrypted nor integrity-protected. Configure tls_cert and tls_key."
        ),
    }
}

pub fn kek_status(state: &State) -> Status {
    if !state.keks.is_empty() && state.keks.iter().all(|k| k.id.is_ok()) { Status::Implemented } else { Status::Partial }
}

pub fn keks(state: &State) -> String {
    let list: Vec<String> = state
        .keks
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let role = if i == 0 { "current" } else { "previous, unwrap only" };
            match &k.id {
                Ok(id) => format!("{id} in {} ({role})", k.path.display()),
                Err(e) => format!("{} ({role}): {e}", k.path.display()),
            }
        })
        .collect();
    list.join("; ")
}

pub fn secrets_per_kek(state: &State, facts: &Facts) -> String {
    if let Some(absent) = absent_control_plane(state) {
        return absent;
    }
    if facts.secrets_per_kek.is_empty() {
        return "no secret is stored yet".into();
    }
    let configured: Vec<&str> = state.keks.iter().filter_map(|k| k.id.as_deref().ok()).collect();
    let list: Vec<String> = facts
        .secrets_per_kek
        .iter()
        .map(|(id, n)| {
            let known = if configured.contains(&id.as_str()) { "" } else { ", a key not among the configured files: the control plane cannot open these" };
            format!("{} under {id}{known}", count(*n, "secret", "secrets"))
        })
        .collect();
    join_and(&list)
}

pub fn crypto_of(facts: &Facts, component: Component) -> Option<String> {
    let assets: Vec<String> = facts
        .crypto
        .iter()
        .filter(|a| a.components.contains(&component))
        .map(|a| {
            let mut libs: Vec<String> = a.libraries.iter().map(|l| format!("{} {}", l.name, l.version)).collect();
            libs.dedup();
            format!("{} ({}; {}; {})", a.name, a.uses, libs.join(", "), a.fips_algorithm)
        })
        .collect();
    if assets.is_empty() {
        return None;
    }
    Some(format!(
        "Cryptography used: {}. FIPS 140: none of these libraries is a FIPS 140-3 validated module as built; sites that require validated modules carry this as an open item (tables/crypto-inventory.csv).",
        assets.join("; ")
    ))
}

pub fn provenance(state: &State) -> String {
    let Some(m) = state.mirror.present() else { return absent_mirror(state).unwrap_or_default() };
    if m.artifacts.is_empty() {
        return "As generated the mirror holds no artifact.".into();
    }
    let mut upstreams: Vec<String> = m.artifacts.iter().map(|a| a.record.artifact.upstream.clone()).collect();
    upstreams.sort();
    upstreams.dedup();
    format!(
        "As generated: {} from {}, from {}: {}.",
        count(m.artifacts.len(), "artifact", "artifacts"),
        count(state.bundles().len(), "bundle", "bundles"),
        count(upstreams.len(), "upstream source", "upstream sources"),
        upstreams.join(", ")
    )
}

/// Highest imported sequence per channel, and overrides and refusals seen.
pub fn channels(state: &State) -> String {
    let Some(m) = state.mirror.present() else { return absent_mirror(state).unwrap_or_default() };
    let mut highest: BTreeMap<String, u64> = BTreeMap::new();
    for r in m.history.iter().filter(|r| r.result == "imported") {
        if let (Some(c), Some(s)) = (&r.channel, r.sequence) {
            let e = highest.entry(c.clone()).or_insert(s);
            *e = (*e).max(s);
        }
    }
    let overrides: usize = m.history.iter().map(|r| r.overrides.len()).sum();
    let refused = m.history.iter().filter(|r| r.result == "refused" || r.result == "failed").count();
    format!(
        "As generated: {}; {} recorded; {} refused or failed.",
        if highest.is_empty() {
            "no channel imported yet".to_string()
        } else {
            format!("highest sequence per channel {}", highest.iter().map(|(c, s)| format!("{c} = {s}")).collect::<Vec<_>>().join(", "))
        },
        count(overrides, "override", "overrides"),
        count(refused, "import", "imports")
    )
}

/// Refused outbound connections the egress guard recorded.
pub fn egress_refusals(state: &State) -> String {
    match &state.egress_refusals {
        Some(n) => format!("As generated {} recorded.", count(*n, "refusal is", "refusals are")),
        None => "As generated no refusal log exists.".into(),
    }
}
