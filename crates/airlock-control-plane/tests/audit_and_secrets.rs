//! The audit chain against an attacker with write access to the store, and secrets at rest.

mod common;

use std::path::Path;

use airlock_control_plane::api::Config;
use airlock_control_plane::audit::{self, AuditRecord, ChainHash};
use airlock_control_plane::bootstrap;
use airlock_control_plane::secrets::{Kek, Keyring};
use airlock_control_plane::server::{self, ServeError, ServeOptions};
use airlock_control_plane::store::{keys, Store};
use airlock_control_plane::time::Clock;
use common::{items, Harness};
use serde_json::json;

async fn harness_with_records(n: usize) -> Harness {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    for i in 0..n {
        h.ok(
            "POST",
            "/api/v1/tokens",
            &org.member.1,
            Some(json!({"name": format!("t{i}")})),
            201,
        )
        .await;
    }
    h
}

fn record(store: &Store, seq: u64) -> Vec<u8> {
    store.raw_get(&keys::audit(seq)).unwrap().unwrap()
}

fn problems(store: &Store, expect_head: Option<&str>) -> Vec<String> {
    audit::verify(store, expect_head)
        .unwrap()
        .problems
        .into_iter()
        .map(|p| p.message)
        .collect()
}

#[tokio::test]
async fn verify_names_modified_deleted_and_swapped_records() {
    let h = harness_with_records(10).await;
    let store = &h.app.store;
    let report = audit::verify(store, None).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert!(report.records >= 14);

    // Modified: an attacker changes who did something.
    let original = record(store, 5);
    let mut forged: AuditRecord = serde_json::from_slice(&original).unwrap();
    forged.actor.name = "someone-else@acme.internal".into();
    store
        .raw_put(&keys::audit(5), Some(serde_json::to_vec(&forged).unwrap()))
        .unwrap();
    assert_eq!(
        problems(store, None),
        ["record 5 was modified after it was written (its hash does not match its contents)"]
    );
    // ... and re-hashes it to cover up: the next record no longer links to it.
    forged.hash = forged.compute_hash();
    store
        .raw_put(&keys::audit(5), Some(serde_json::to_vec(&forged).unwrap()))
        .unwrap();
    assert_eq!(
        problems(store, None),
        ["record 6 does not follow record 5: one of them was replaced or re-hashed"]
    );
    store.raw_put(&keys::audit(5), Some(original)).unwrap();
    assert!(problems(store, None).is_empty());

    // Deleted.
    let seventh = record(store, 7);
    store.raw_put(&keys::audit(7), None).unwrap();
    assert_eq!(problems(store, None), ["record 7 is missing (deleted)"]);
    store.raw_put(&keys::audit(7), Some(seventh)).unwrap();

    // Swapped.
    let (third, fourth) = (record(store, 3), record(store, 4));
    store
        .raw_put(&keys::audit(3), Some(fourth.clone()))
        .unwrap();
    store.raw_put(&keys::audit(4), Some(third.clone())).unwrap();
    assert_eq!(
        problems(store, None),
        [
            "record 3 holds record 4 instead: records were swapped or moved",
            "record 4 holds record 3 instead: records were swapped or moved"
        ]
    );
    store.raw_put(&keys::audit(3), Some(third)).unwrap();
    store.raw_put(&keys::audit(4), Some(fourth)).unwrap();
    assert!(problems(store, None).is_empty());
}

#[tokio::test]
async fn a_head_kept_elsewhere_reveals_a_truncated_tail() {
    let h = harness_with_records(3).await;
    let store = &h.app.store;
    let head = audit::head(store).unwrap();
    assert!(problems(store, Some(&head.hash)).is_empty());

    // Dropping the last record without fixing the head is caught from the store alone.
    let last = record(store, head.seq);
    store.raw_put(&keys::audit(head.seq), None).unwrap();
    assert_eq!(
        problems(store, None),
        [format!(
            "records {} to {} are missing from the end of the log (truncated)",
            head.seq, head.seq
        )]
    );

    // A careful attacker also rewinds the head; only the head stored elsewhere shows it.
    let previous: AuditRecord = serde_json::from_slice(&record(store, head.seq - 1)).unwrap();
    let rewound = audit::Head {
        seq: previous.seq,
        hash: previous.hash,
    };
    store
        .raw_put(
            keys::AUDIT_HEAD,
            Some(serde_json::to_vec(&rewound).unwrap()),
        )
        .unwrap();
    assert!(problems(store, None).is_empty());
    let found = problems(store, Some(&head.hash));
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("is not in the log"), "{found:?}");
    store.raw_put(&keys::audit(head.seq), Some(last)).unwrap();
}

/// Every byte under `dir`, for a search.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_survive_kek_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (old_kek_file, new_kek_file) = (tmp.path().join("kek-old"), tmp.path().join("kek-new"));
    Kek::generate_file(&old_kek_file).unwrap();
    Kek::generate_file(&new_kek_file).unwrap();
    let load = |p: &Path| Kek::from_file(p).unwrap();
    let canary = "PLAINTEXT-CANARY-7f3a9c";

    // Before: a secret, an environment that uses it, and a runner hosting it.
    let (token, env_id, runner, secret_id) = {
        let store = Store::open(&data).unwrap();
        let init =
            bootstrap::init_store(&store, "site", "root@site.internal", Clock::system().now())
                .unwrap();
        let h = Harness::reopen(
            store,
            Keyring::new(load(&old_kek_file), vec![]),
            Clock::system(),
            init.token.clone(),
        );
        let (_, project_id, _, runner) = h.inventory(&h.site_token, 2).await;
        let secret = h
            .ok(
                "POST",
                "/api/v1/secrets",
                &h.site_token,
                Some(json!({"name": "api-key", "scope": {"kind": "org"}, "value": canary})),
                201,
            )
            .await;
        assert!(!secret.to_string().contains(canary));
        let listed = h
            .ok("GET", "/api/v1/secrets", &h.site_token, None, 200)
            .await;
        assert!(
            !listed.to_string().contains(canary),
            "list never returns values"
        );
        let env = h
            .ok(
                "POST",
                "/api/v1/environments",
                &h.site_token,
                Some(json!({"project_id": project_id})),
                201,
            )
            .await;
        // The next block opens the same folder in this process.
        h.close();
        (
            init.token,
            env["id"].as_str().unwrap().to_string(),
            runner,
            secret["id"].as_str().unwrap().to_string(),
        )
    };
    assert!(
        !contains(&all_bytes(&data), canary.as_bytes()),
        "the data directory holds the plaintext"
    );

    // Rotation: new key current, old key kept to unwrap.
    {
        let store = Store::open(&data).unwrap();
        let h = Harness::reopen(
            store,
            Keyring::new(load(&new_kek_file), vec![load(&old_kek_file)]),
            Clock::system(),
            token.clone(),
        );
        let rotated = h
            .ok(
                "POST",
                "/api/v1/secrets/rotate-kek",
                &h.site_token,
                None,
                200,
            )
            .await;
        assert_eq!(
            (
                rotated["rewrapped"].as_u64(),
                rotated["already_current"].as_u64()
            ),
            (Some(1), Some(0))
        );
        assert_eq!(rotated["current_kek_id"], load(&new_kek_file).id());
        let secret = h
            .ok(
                "GET",
                &format!("/api/v1/secrets/{secret_id}"),
                &h.site_token,
                None,
                200,
            )
            .await;
        assert_eq!(secret["kek_id"], load(&new_kek_file).id());
        let again = h
            .ok(
                "POST",
                "/api/v1/secrets/rotate-kek",
                &h.site_token,
                None,
                200,
            )
            .await;
        assert_eq!(again["rewrapped"], 0);
        let log = h
            .ok(
                "GET",
                "/api/v1/audit?action=secret.rotate_kek",
                &h.site_token,
                None,
                200,
            )
            .await;
        assert!(items(&log)[0]["detail"]
            .as_str()
            .unwrap()
            .contains(load(&old_kek_file).id()));
        h.close();
    }

    // After: the old key is no longer needed, and the hosting runner still gets the value.
    {
        let store = Store::open(&data).unwrap();
        let h = Harness::reopen(
            store,
            Keyring::new(load(&new_kek_file), vec![]),
            Clock::system(),
            token.clone(),
        );
        let values = h
            .ok(
                "GET",
                &format!("/api/v1/runner/environments/{env_id}/secrets"),
                &runner,
                None,
                200,
            )
            .await;
        assert_eq!(items(&values)[0]["value"], canary);
        h.close();
    }
    assert!(!contains(&all_bytes(&data), canary.as_bytes()));

    // Serving with only the retired key is refused with the missing key named.
    let opts = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        kek_files: vec![old_kek_file.clone()],
        tls: None,
        config: Config::default(),
    };
    match server::prepare(&opts) {
        Err(ServeError::MissingKeks { missing }) => {
            assert_eq!(missing, [load(&new_kek_file).id().to_string()])
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("served without the key that wraps the secrets"),
    }
}

/// Finding 11: the site-wide verify (every org's figures and problems) is for site
/// administrators; an org's admins and auditors get their org's records only.
#[tokio::test]
async fn org_readers_verify_their_org_and_only_site_admins_see_the_whole_chain() {
    let h = Harness::new();
    let acme = h.org_with_users("acme").await;
    let beta = h.org_with_users("beta").await;
    for i in 0..5 {
        h.ok("POST", "/api/v1/tokens", &beta.member.1, Some(json!({"name": format!("b{i}")})), 201)
            .await;
    }
    let store = &h.app.store;
    let all: Vec<AuditRecord> = store
        .scan_raw("audit/")
        .unwrap()
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).unwrap())
        .collect();
    let acme_seqs: Vec<u64> = all
        .iter()
        .filter(|r| r.org_id.as_deref() == Some(acme.org_id.as_str()))
        .map(|r| r.seq)
        .collect();
    let beta_seq = all
        .iter()
        .find(|r| r.org_id.as_deref() == Some(beta.org_id.as_str()))
        .unwrap()
        .seq;

    for token in [&acme.admin.1, &acme.auditor.1, &acme.owner.1] {
        let report = h.ok("GET", "/api/v1/audit/verify", token, None, 200).await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["records"], acme_seqs.len() as u64, "only acme's records are counted: {report}");
        assert_eq!(report["head"]["seq"], *acme_seqs.last().unwrap(), "acme's last record: {report}");
        assert_eq!(report["scope"], format!("org {}", acme.org_id));
    }
    let site = h.ok("GET", "/api/v1/audit/verify", &h.site_token, None, 200).await;
    assert_eq!(site["records"], all.len() as u64);
    assert_eq!(site["scope"], "site");

    // Another org's record is tampered with: acme learns the chain is broken, not where.
    let mut forged: AuditRecord = serde_json::from_slice(&record(store, beta_seq)).unwrap();
    forged.detail = Some("rewritten".into());
    store
        .raw_put(&keys::audit(beta_seq), Some(serde_json::to_vec(&forged).unwrap()))
        .unwrap();
    let report = h.ok("GET", "/api/v1/audit/verify", &acme.auditor.1, None, 200).await;
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["seq"], 0);
    let message = problems[0]["message"].as_str().unwrap();
    assert!(message.contains("outside this org's records") && !message.contains(&beta_seq.to_string()), "{message}");
    let site = h.ok("GET", "/api/v1/audit/verify", &h.site_token, None, 200).await;
    assert_eq!(site["problems"][0]["seq"], beta_seq, "{site}");

    // One of acme's own records: named to acme's readers.
    let own = acme_seqs[1];
    let mut forged: AuditRecord = serde_json::from_slice(&record(store, own)).unwrap();
    forged.detail = Some("rewritten".into());
    store
        .raw_put(&keys::audit(own), Some(serde_json::to_vec(&forged).unwrap()))
        .unwrap();
    let report = h.ok("GET", "/api/v1/audit/verify", &acme.admin.1, None, 200).await;
    let seqs: Vec<u64> = report["problems"].as_array().unwrap().iter().map(|p| p["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [own, 0], "{report}");
}
