//! `evidence/`: what an assessor can check again.
//!
//! - `audit-chain-verification.json`: the control plane's audit chain walked with its own
//!   verifier when the documents were made, and the head (keep it elsewhere, then pass it to
//!   `airlock admin audit verify --expect-head`).
//! - `bundle-imports.json`: every import attempt in the mirror history, signers resolved to
//!   the configured trusted keys, and for each imported bundle the digests it delivered.
//! - `configuration-baseline.json` and `.sha256`: the effective configuration as canonical
//!   JSON, byte for byte what the stated SHA-256 covers (`sha256sum -c` checks it).

use serde_json::{json, Value};

use crate::sbom_cdx::content_sha256;
use crate::state::{Part, State};
use crate::text;
use crate::Files;

pub const AUDIT: &str = "evidence/audit-chain-verification.json";
pub const IMPORTS: &str = "evidence/bundle-imports.json";
pub const BASELINE: &str = "evidence/configuration-baseline.json";
pub const BASELINE_SHA256: &str = "evidence/configuration-baseline.sha256";

fn audit(state: &State) -> Value {
    match &state.control_plane {
        Part::Absent(why) => json!({"status": "absent", "reason": why, "checked_at": state.as_of.time}),
        Part::Present(cp) => json!({
            "status": if cp.audit.ok { "verified" } else { "problems found" },
            "verifier": "airlock_control_plane::audit::verify (as `airlock admin audit verify --data-dir`)",
            "data_dir": cp.dir.display().to_string(),
            "checked_at": state.as_of.time,
            "records": cp.audit.records,
            "head": {"seq": cp.audit.head.seq, "hash": cp.audit.head.hash},
            "problems": cp.audit.problems.iter().map(|p| json!({"seq": p.seq, "message": p.message})).collect::<Vec<_>>(),
            "how_to_recheck": format!("airlock admin audit verify --data-dir {} --expect-head {}", cp.dir.display(), cp.audit.head.hash),
        }),
    }
}

fn imports(state: &State) -> Value {
    let m = match &state.mirror {
        Part::Absent(why) => return json!({"status": "absent", "reason": why}),
        Part::Present(m) => m,
    };
    let trusted: Vec<(String, String, String)> = state
        .trusted_keys
        .iter()
        .filter_map(|k| k.loaded.as_ref().ok().map(|l| (l.key_id.clone(), k.path.display().to_string(), l.fingerprint.clone())))
        .collect();
    let records: Vec<Value> = m
        .history
        .iter()
        .map(|r| {
            let signers: Vec<Value> = r
                .signers
                .iter()
                .map(|id| match trusted.iter().find(|(kid, _, _)| kid == id) {
                    Some((_, path, fingerprint)) => json!({"key_id": id, "trusted_key": path, "fingerprint_sha256": fingerprint}),
                    None => json!({"key_id": id, "trusted_key": null, "note": "not among mirror.trusted_keys of this configuration (the import named its --trusted-key)"}),
                })
                .collect();
            let mut record = json!({
                "id": r.id,
                "time": r.time,
                "actor": r.actor,
                "action": r.action,
                "result": r.result,
                "bundle_id": r.bundle_id,
                "channel": r.channel,
                "sequence": r.sequence,
                "signers": signers,
                "overrides": r.overrides,
                "source": r.source,
                "message": r.message,
            });
            if r.result == "imported" {
                let delivered: Vec<Value> = m
                    .artifacts
                    .iter()
                    .filter(|a| Some(&a.record.bundle_id) == r.bundle_id.as_ref())
                    .map(|a| {
                        let art = &a.record.artifact;
                        json!({
                            "kind": art.kind,
                            "reference": format!("{}:{}", art.repository, art.tag),
                            "manifest_digest": art.digest.to_string(),
                            "sha256": content_sha256(a),
                            "size": a.file.as_ref().map_or(art.size, |f| f.size),
                        })
                    })
                    .collect();
                record["artifacts_now_served"] = json!(delivered);
            }
            record
        })
        .collect();
    json!({
        "mirror_data_dir": m.dir.display().to_string(),
        "read_through": if m.through_server { "the running mirror's admin socket" } else { "the data folder" },
        "threshold": state.config.mirror.threshold,
        "records": records,
    })
}

pub fn write(state: &State, files: &mut Files) {
    files.insert(AUDIT.into(), text::json(&audit(state)));
    files.insert(IMPORTS.into(), text::json(&imports(state)));
    files.insert(BASELINE.into(), state.config_json.clone().into_bytes());
    files.insert(BASELINE_SHA256.into(), format!("{}  configuration-baseline.json\n", state.config_sha256).into_bytes());
}
