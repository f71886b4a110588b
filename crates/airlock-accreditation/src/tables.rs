//! `tables/`: ports, protocols and services; crypto inventory; software inventory; audit
//! event catalog. Each as CSV (RFC 4180) and Markdown, from the same rows.

use crate::audit_catalog;
use crate::crypto::{AssetKind, FIPS_MODULE_STATUS};
use crate::facts::Facts;
use crate::sbom_cdx::content_sha256;
use crate::state::State;
use crate::text::Table;
use crate::Files;

fn put(files: &mut Files, name: &str, title: &str, intro: &str, table: &Table) {
    files.insert(format!("tables/{name}.csv"), table.csv());
    files.insert(format!("tables/{name}.md"), table.markdown(title, intro));
}

pub fn ports(facts: &Facts) -> Table {
    let mut t = Table::new(&[
        "component", "name", "direction", "endpoint", "transport", "protocol", "purpose", "enabled", "exposure", "crosses boundary",
    ]);
    for f in &facts.flows {
        t.push(vec![
            f.component.title().into(),
            f.name.clone(),
            f.direction.into(),
            f.endpoint.clone(),
            f.transport.into(),
            f.protocol.clone(),
            f.purpose.clone(),
            f.enabled.clone(),
            f.exposure.clone(),
            f.crosses_boundary.clone(),
        ]);
    }
    t
}

pub fn crypto(facts: &Facts) -> Table {
    let mut t = Table::new(&[
        "algorithm or protocol", "type", "libraries (version: role)", "components", "use", "algorithm status", "FIPS 140-3 module status", "OID",
    ]);
    for a in &facts.crypto {
        t.push(vec![
            a.name.into(),
            match a.kind {
                AssetKind::Algorithm { primitive, .. } => format!("algorithm ({primitive})"),
                AssetKind::Protocol { .. } => "protocol".into(),
            },
            a.libraries.iter().map(|l| format!("{} {}: {}", l.name, l.version, l.role)).collect::<Vec<_>>().join("; "),
            a.components.iter().map(|c| c.title()).collect::<Vec<_>>().join(", "),
            a.uses.into(),
            a.fips_algorithm.into(),
            FIPS_MODULE_STATUS.into(),
            a.oid.unwrap_or("").into(),
        ]);
    }
    t
}

pub fn software(state: &State) -> Table {
    let mut t = Table::new(&[
        "kind", "name", "version", "platform", "served as", "sha256", "OCI manifest digest", "upstream", "bundle", "imported",
    ]);
    t.push(vec![
        "airlock binary".into(),
        "airlock".into(),
        env!("CARGO_PKG_VERSION").into(),
        format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        "mirror, control plane, runner, bundler".into(),
        String::new(),
        String::new(),
        "built from the airlock workspace".into(),
        String::new(),
        String::new(),
    ]);
    t.push(vec![
        "OCI runtime (site-provided)".into(),
        state.config.runner.runc.display().to_string(),
        "as installed on the runner host".into(),
        String::new(),
        "runner.runc".into(),
        String::new(),
        String::new(),
        "the host's package manager".into(),
        String::new(),
        String::new(),
    ]);
    if let Some(m) = state.mirror.present() {
        for artifact in &m.artifacts {
            let a = &artifact.record.artifact;
            t.push(vec![
                a.kind.to_string(),
                a.name.clone(),
                a.version.clone(),
                a.platform.clone().unwrap_or_default(),
                format!("{}:{}", a.repository, a.tag),
                content_sha256(artifact),
                a.digest.to_string(),
                a.upstream.clone(),
                artifact.record.bundle_id.clone(),
                artifact.record.imported.clone(),
            ]);
        }
    }
    t
}

pub fn audit_events(state: &State) -> Table {
    let mut t = Table::new(&["source", "event", "outcomes", "records", "in the log as generated"]);
    let cp = state.control_plane.present();
    for a in audit_catalog::CONTROL_PLANE {
        let seen = match cp {
            Some(cp) => cp
                .audit_actions
                .get(a.name)
                .map(|by| by.iter().map(|(o, n)| format!("{n} {o}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "0".into()),
            None => "unknown (control plane data absent)".into(),
        };
        t.push(vec!["control plane audit log".into(), a.name.into(), a.outcomes.into(), a.records.into(), seen]);
    }
    let mirror = state.mirror.present();
    for (result, meaning) in audit_catalog::MIRROR_RESULTS {
        let seen = match mirror {
            Some(m) => m.history.iter().filter(|r| r.action == audit_catalog::MIRROR_ACTION && r.result == *result).count().to_string(),
            None => "unknown (mirror data absent)".into(),
        };
        t.push(vec![
            "mirror history".into(),
            format!("{} ({result})", audit_catalog::MIRROR_ACTION),
            (*result).into(),
            (*meaning).into(),
            seen,
        ]);
    }
    t.push(vec![
        "egress guard refusal log".into(),
        "refused connection".into(),
        "refused".into(),
        format!(
            "a high-side component tried to connect outside egress.allow; time, component, destination and reason are appended to {}",
            state.egress_log.display()
        ),
        state.egress_refusals.map_or("0 (no log yet)".to_string(), |n| n.to_string()),
    ]);
    t
}

pub fn write(state: &State, facts: &Facts, files: &mut Files) {
    put(files, "ports-protocols-services", "Ports, protocols and services",
        "Every listener and flow of the configured system, its direction, and whether it crosses the authorization boundary. No network path crosses it: bundles are carried across by hand.",
        &ports(facts));
    put(files, "crypto-inventory", "Cryptographic inventory",
        "Algorithms and protocols airlock uses, the libraries and versions compiled into this binary (from its Cargo.lock), and their FIPS 140 status. None of the modules is FIPS 140-3 validated as built.",
        &crypto(facts));
    put(files, "software-inventory", "Software inventory",
        "airlock itself, the OCI runtime the runner uses, and every artifact the mirror serves, with the bundle that delivered it.",
        &software(state));
    put(files, "audit-events", "Audit event catalog",
        "Every event the control plane writes to its hash-chained audit log, every kind of mirror history record and the egress guard's refusals, with how many the logs held when this was generated.",
        &audit_events(state));
}
