//! Runners, environments, scheduling, policy and secret delivery, end to end through the
//! router.

mod common;

use std::time::Duration;

use airlock_control_plane::environments::sweep_idle;
use common::{items, Harness, KEY};
use serde_json::json;

#[tokio::test]
async fn environment_lifecycle_with_a_runner() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let admin = &org.admin.1;
    let member = &org.member.1;
    let (_, project_id, runner_id, runner) = h.inventory(admin, 10).await;
    h.ok(
        "POST",
        "/api/v1/ssh-keys",
        member,
        Some(json!({"name": "laptop", "public_key": KEY})),
        201,
    )
    .await;
    h.ok("POST", "/api/v1/secrets", admin, Some(json!({"name": "db-password", "scope": {"kind": "project", "project_id": project_id}, "value": "s3cret-db"})), 201).await;
    h.ok("POST", "/api/v1/secrets", admin, Some(json!({"name": "npm-token", "scope": {"kind": "org"}, "delivery": {"kind": "env", "name": "NPM_TOKEN"}, "value": "npm-abc"})), 201).await;

    let env = h
        .ok(
            "POST",
            "/api/v1/environments",
            member,
            Some(json!({"project_id": project_id})),
            201,
        )
        .await;
    let env_id = env["id"].as_str().unwrap().to_string();
    assert_eq!(env["phase"], "creating");
    assert_eq!(env["desired_state"], "running");
    assert_eq!(env["runner_id"], runner_id.as_str());
    assert_eq!(
        env["spec"]["image"],
        "mirror.internal:5000/devcontainers/base:1.0"
    );
    assert_eq!(env["spec"]["resources"]["memory_mib"], 4096);

    // The runner sees it with everything it needs to start it.
    let assigned = h
        .ok("GET", "/api/v1/runner/environments", &runner, None, 200)
        .await;
    let spec = &items(&assigned)[0];
    assert_eq!(spec["id"], env_id.as_str());
    assert_eq!(spec["owner"]["email"], "member@acme.internal");
    assert_eq!(
        spec["ssh_authorized_keys"][0],
        KEY.rsplit_once(' ').unwrap().0
    );
    assert_eq!(spec["spec"]["tasks"][0]["command"], "make build");
    let names: Vec<_> = spec["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-password", "npm-token"]);
    assert!(
        spec["secrets"][0].get("value").is_none(),
        "the spec carries no values"
    );

    // Values reach the hosting runner only, and each read is audited.
    let values = h
        .ok(
            "GET",
            &format!("/api/v1/runner/environments/{env_id}/secrets"),
            &runner,
            None,
            200,
        )
        .await;
    let got: Vec<_> = items(&values)
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("db-password", "s3cret-db"), ("npm-token", "npm-abc")]
    );
    assert_eq!(
        items(&values)[0]["delivery"],
        json!({"kind": "file", "path": "/run/secrets/db-password"})
    );
    let reads = h
        .ok(
            "GET",
            "/api/v1/audit?action=secret.read",
            &org.auditor.1,
            None,
            200,
        )
        .await;
    assert_eq!(items(&reads).len(), 2);
    assert_eq!(items(&reads)[0]["actor"]["kind"], "runner");
    assert_eq!(items(&reads)[0]["actor"]["id"], runner_id.as_str());

    // A second runner does not see it, and cannot read its secrets.
    let (_, other_runner) = h.active_runner(admin, "runner-2", 10).await;
    h.ok(
        "GET",
        &format!("/api/v1/runner/environments/{env_id}/secrets"),
        &other_runner,
        None,
        404,
    )
    .await;
    assert!(items(
        &h.ok(
            "GET",
            "/api/v1/runner/environments",
            &other_runner,
            None,
            200
        )
        .await
    )
    .is_empty());

    // Phases: the runner reports progress; illegal jumps are refused.
    let status = |phase: &str| json!({"phase": phase});
    let path = format!("/api/v1/runner/environments/{env_id}/status");
    h.ok("POST", &path, &runner, Some(status("starting")), 200)
        .await;
    h.ok("POST", &path, &runner, Some(status("deleted")), 409)
        .await;
    let running = h
        .ok("POST", &path, &runner, Some(status("running")), 200)
        .await;
    assert_eq!(running["phase"], "running");
    h.ok(
        "POST",
        &format!("/api/v1/runner/environments/{env_id}/events"),
        &runner,
        Some(json!({"events": [{"kind": "clone", "message": "cloned backend"}]})),
        200,
    )
    .await;
    let events = h
        .ok(
            "GET",
            &format!("/api/v1/environments/{env_id}/events"),
            member,
            None,
            200,
        )
        .await;
    assert_eq!(items(&events)[0]["message"], "cloned backend");

    let stopped = h
        .ok(
            "POST",
            &format!("/api/v1/environments/{env_id}/stop"),
            member,
            None,
            200,
        )
        .await;
    assert_eq!(
        (stopped["phase"].as_str(), stopped["desired_state"].as_str()),
        (Some("stopping"), Some("stopped"))
    );
    h.ok("POST", &path, &runner, Some(status("stopped")), 200)
        .await;
    let started = h
        .ok(
            "POST",
            &format!("/api/v1/environments/{env_id}/start"),
            member,
            None,
            200,
        )
        .await;
    assert_eq!(started["phase"], "starting");
    h.ok(
        "POST",
        &path,
        &runner,
        Some(json!({"phase": "failed"})),
        400,
    )
    .await;
    let failed = h
        .ok(
            "POST",
            &path,
            &runner,
            Some(json!({"phase": "failed", "reason": "image pull failed: not on the mirror"})),
            200,
        )
        .await;
    assert_eq!(
        failed["failure_reason"],
        "image pull failed: not on the mirror"
    );

    let deleting = h
        .ok(
            "DELETE",
            &format!("/api/v1/environments/{env_id}"),
            member,
            None,
            200,
        )
        .await;
    assert_eq!(deleting["phase"], "deleting");
    h.ok(
        "GET",
        &format!("/api/v1/runner/environments/{env_id}/secrets"),
        &runner,
        None,
        409,
    )
    .await;
    h.ok("POST", &path, &runner, Some(status("deleted")), 200)
        .await;
    assert!(items(
        &h.ok("GET", "/api/v1/runner/environments", &runner, None, 200)
            .await
    )
    .is_empty());
    let r = h
        .ok(
            "GET",
            &format!("/api/v1/runners/{runner_id}"),
            admin,
            None,
            200,
        )
        .await;
    assert_eq!(r["environments"], 0, "the place on the runner is freed");
    assert!(items(&h.ok("GET", "/api/v1/environments", member, None, 200).await).is_empty());
    assert_eq!(
        items(
            &h.ok(
                "GET",
                "/api/v1/environments?include_deleted=true",
                member,
                None,
                200
            )
            .await
        )
        .len(),
        1
    );

    // Every phase change is on record with the runner as actor.
    let phases = h
        .ok(
            "GET",
            &format!("/api/v1/audit?action=environment.phase&subject=environment/{env_id}"),
            admin,
            None,
            200,
        )
        .await;
    let details: Vec<_> = items(&phases)
        .iter()
        .map(|r| r["detail"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        details,
        [
            "creating -> starting",
            "starting -> running",
            "stopping -> stopped",
            "starting -> failed: image pull failed: not on the mirror",
            "deleting -> deleted"
        ]
    );
}

#[tokio::test]
async fn scheduler_respects_capacity_policy_and_runner_liveness() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (_, project_id, runner_id, runner) = h.inventory(&org.admin.1, 2).await;
    let create = json!({"project_id": project_id});

    h.ok(
        "PATCH",
        &format!("/api/v1/orgs/{}", org.org_id),
        &org.owner.1,
        Some(json!({"policy": {"max_running_environments_per_user": 1}})),
        200,
    )
    .await;
    let first = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.member.1,
            Some(create.clone()),
            201,
        )
        .await;
    let limited = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.member.1,
            Some(create.clone()),
            409,
        )
        .await;
    assert_eq!(limited["error"]["code"], "policy_limit");
    assert!(limited["error"]["message"]
        .as_str()
        .unwrap()
        .contains("allows 1 per user"));

    // Stopping frees the policy slot but not the runner place.
    let id = first["id"].as_str().unwrap();
    h.ok(
        "POST",
        &format!("/api/v1/environments/{id}/stop"),
        &org.member.1,
        None,
        200,
    )
    .await;
    h.ok(
        "POST",
        "/api/v1/environments",
        &org.member.1,
        Some(create.clone()),
        201,
    )
    .await;
    // No free place: accepted, and waiting in the org's queue.
    let queued = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.admin.1,
            Some(create.clone()),
            201,
        )
        .await;
    assert_eq!(queued["runner_id"], "", "{queued}");
    assert_eq!(queued["phase"], "creating");
    let queued_id = queued["id"].as_str().unwrap().to_string();
    // Starting the stopped one now breaks the per-user limit.
    let early = h
        .ok(
            "POST",
            &format!("/api/v1/environments/{id}/start"),
            &org.member.1,
            None,
            409,
        )
        .await;
    assert!(
        early["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is stopping"),
        "{early}"
    );
    h.ok(
        "POST",
        &format!("/api/v1/runner/environments/{id}/status"),
        &runner,
        Some(json!({"phase": "stopped"})),
        200,
    )
    .await;
    let again = h
        .ok(
            "POST",
            &format!("/api/v1/environments/{id}/start"),
            &org.member.1,
            None,
            409,
        )
        .await;
    assert_eq!(again["error"]["code"], "policy_limit");

    h.ok(
        "PATCH",
        &format!("/api/v1/runners/{runner_id}"),
        &org.admin.1,
        Some(json!({"capacity": 3})),
        200,
    )
    .await;
    // From here on the runner's room is what counts, not the per-user limit.
    h.ok(
        "PATCH",
        &format!("/api/v1/orgs/{}", org.org_id),
        &org.owner.1,
        Some(json!({"policy": {"max_running_environments_per_user": 10}})),
        200,
    )
    .await;
    // The new place goes to the one that waited, not to a newcomer.
    let newcomer = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.admin.1,
            Some(create.clone()),
            201,
        )
        .await;
    assert_eq!(newcomer["runner_id"], "", "{newcomer}");
    let placed = h
        .ok(
            "GET",
            &format!("/api/v1/environments/{queued_id}"),
            &org.admin.1,
            None,
            200,
        )
        .await;
    assert_eq!(placed["runner_id"], runner_id.as_str(), "{placed}");
    h.ok(
        "PATCH",
        &format!("/api/v1/runners/{runner_id}"),
        &org.admin.1,
        Some(json!({"capacity": 10})),
        200,
    )
    .await;

    // A runner that stops heartbeating goes inactive and gets no new work.
    h.clock.advance(Duration::from_secs(91));
    let r = h
        .ok(
            "GET",
            &format!("/api/v1/runners/{runner_id}"),
            &org.admin.1,
            None,
            200,
        )
        .await;
    assert_eq!(r["phase"], "inactive");
    let while_inactive = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.owner.1,
            Some(create.clone()),
            201,
        )
        .await;
    assert_eq!(while_inactive["runner_id"], "", "an inactive runner gets no new work");
    h.ok(
        "POST",
        "/api/v1/runner/heartbeat",
        &runner,
        Some(json!({"status": "degraded", "message": "disk 95% full"})),
        200,
    )
    .await;
    let while_degraded = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.owner.1,
            Some(create.clone()),
            201,
        )
        .await;
    assert_eq!(while_degraded["runner_id"], "", "nor does a degraded one");
    h.ok(
        "POST",
        "/api/v1/runner/heartbeat",
        &runner,
        Some(json!({})),
        200,
    )
    .await;
    // Back to active: its heartbeat places everything that waited, oldest first.
    for waited in [&newcomer, &while_inactive, &while_degraded] {
        let now = h
            .ok(
                "GET",
                &format!("/api/v1/environments/{}", waited["id"].as_str().unwrap()),
                &org.admin.1,
                None,
                200,
            )
            .await;
        assert_eq!(now["runner_id"], runner_id.as_str(), "{now}");
    }
    let direct = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.owner.1,
            Some(create.clone()),
            201,
        )
        .await;
    assert_eq!(direct["runner_id"], runner_id.as_str());
    let transitions = h
        .ok(
            "GET",
            "/api/v1/audit?action=runner.phase",
            &org.admin.1,
            None,
            200,
        )
        .await;
    let details: Vec<_> = items(&transitions)
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "created -> active",
            "inactive -> degraded",
            "degraded -> active"
        ]
    );
}

#[tokio::test]
async fn idle_environments_are_stopped_by_the_sweep() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (_, project_id, _, runner) = h.inventory(&org.admin.1, 5).await;
    h.ok(
        "PATCH",
        &format!("/api/v1/orgs/{}", org.org_id),
        &org.admin.1,
        Some(json!({"policy": {"idle_timeout_minutes": 30}})),
        200,
    )
    .await;
    let busy = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.member.1,
            Some(json!({"project_id": project_id})),
            201,
        )
        .await;
    let idle = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.member.1,
            Some(json!({"project_id": project_id})),
            201,
        )
        .await;
    for env in [&busy, &idle] {
        h.ok(
            "POST",
            &format!(
                "/api/v1/runner/environments/{}/status",
                env["id"].as_str().unwrap()
            ),
            &runner,
            Some(json!({"phase": "running"})),
            200,
        )
        .await;
    }
    h.clock.advance(Duration::from_secs(20 * 60));
    let now = h.clock.now().to_string();
    let beat = h.ok("POST", "/api/v1/runner/heartbeat", &runner, Some(json!({"environments": [{"id": busy["id"], "last_activity": now}, {"id": "env_gone", "last_activity": now}]})), 200).await;
    assert_eq!(beat["unknown_environments"], json!(["env_gone"]));
    h.clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(sweep_idle(&h.app.store, h.clock.now()).unwrap(), 1);
    let idle_now = h
        .ok(
            "GET",
            &format!("/api/v1/environments/{}", idle["id"].as_str().unwrap()),
            &org.member.1,
            None,
            200,
        )
        .await;
    assert_eq!(
        (
            idle_now["phase"].as_str(),
            idle_now["desired_state"].as_str()
        ),
        (Some("stopping"), Some("stopped"))
    );
    let busy_now = h
        .ok(
            "GET",
            &format!("/api/v1/environments/{}", busy["id"].as_str().unwrap()),
            &org.member.1,
            None,
            200,
        )
        .await;
    assert_eq!(busy_now["phase"], "running");
    let record = h
        .ok(
            "GET",
            "/api/v1/audit?action=environment.idle_stop",
            &org.auditor.1,
            None,
            200,
        )
        .await;
    assert_eq!(items(&record)[0]["actor"]["kind"], "system");
}

#[tokio::test]
async fn runner_exchange_tokens_are_one_time_and_expire_after_24h() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let created = h
        .ok(
            "POST",
            "/api/v1/runners",
            &org.admin.1,
            Some(json!({"name": "r1", "capacity": 4})),
            201,
        )
        .await;
    let token = created["exchange_token"].clone();
    let runner_id = created["runner"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["runner"]["phase"], "created");

    // Not usable as a bearer token anywhere.
    let (status, _) = h
        .call("GET", "/api/v1/runner/environments", token.as_str(), None)
        .await;
    assert_eq!(status, 401);

    let (status, first) = h
        .call(
            "POST",
            "/api/v1/runner/exchange",
            None,
            Some(json!({"exchange_token": token})),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, reused) = h
        .call(
            "POST",
            "/api/v1/runner/exchange",
            None,
            Some(json!({"exchange_token": token})),
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        reused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{reused}"
    );

    // A fresh token, left for a day and a second, is refused as expired.
    let again = h
        .ok(
            "POST",
            &format!("/api/v1/runners/{runner_id}/exchange-token"),
            &org.admin.1,
            None,
            201,
        )
        .await;
    let (status, _) = h
        .call(
            "POST",
            "/api/v1/runner/heartbeat",
            first["credential"].as_str(),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 401, "re-issuing revokes the old credential");
    h.clock.advance(Duration::from_secs(24 * 3600 + 1));
    let (status, expired) = h
        .call(
            "POST",
            "/api/v1/runner/exchange",
            None,
            Some(json!({"exchange_token": again["exchange_token"]})),
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        expired["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{expired}"
    );
    let (status, _) = h
        .call(
            "POST",
            "/api/v1/runner/exchange",
            None,
            Some(json!({"exchange_token": "alk_rex_made-up"})),
        )
        .await;
    assert_eq!(status, 401);

    let failures = h
        .ok(
            "GET",
            "/api/v1/audit?action=runner.exchange",
            &org.auditor.1,
            None,
            200,
        )
        .await;
    let outcomes: Vec<_> = items(&failures)
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["success", "failure", "failure"],
        "the made-up token belongs to no org, so it is in no org's log"
    );
}

#[tokio::test]
async fn ssh_access_session_records_and_a_workspace_snapshot_that_follows_the_environment() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (admin, member, auditor) = (&org.admin.1, &org.member.1, &org.auditor.1);
    let (_, project_id, first_id, first) = h.inventory(admin, 10).await;
    let env = h
        .ok("POST", "/api/v1/environments", member, Some(json!({"project_id": project_id})), 201)
        .await;
    let id = env["id"].as_str().unwrap().to_string();

    // Where to SSH: only once the runner reported its gateway, and only for the owner.
    let ssh = format!("/api/v1/environments/{id}/ssh");
    h.ok("GET", &ssh, member, None, 409).await;
    let gateway = json!({"ssh": {"host": "10.0.0.7", "port": 2222, "host_key": KEY}});
    h.ok("POST", "/api/v1/runner/heartbeat", &first, Some(gateway), 200).await;
    let access = h.ok("GET", &ssh, member, None, 200).await;
    assert_eq!(access["host_alias"], format!("{id}.airlock.environment"));
    assert_eq!((access["host"].as_str(), access["port"].as_u64(), access["user"].as_str()), (Some("10.0.0.7"), Some(2222), Some(id.as_str())));
    assert_eq!(access["host_key"], KEY);
    h.ok("GET", &ssh, admin, None, 404).await;
    let bad = json!({"ssh": {"host": "evil\nHost *", "port": 22, "host_key": KEY}});
    h.ok("POST", "/api/v1/runner/heartbeat", &first, Some(bad), 400).await;

    // The gateway's records land on the audit log, refusals as denied.
    let status = format!("/api/v1/runner/environments/{id}/status");
    h.ok("POST", &status, &first, Some(json!({"phase": "running"})), 200).await;
    let sessions = json!({"sessions": [
        {"event": "accepted", "peer": "10.0.0.9:50000", "key_fingerprint": "SHA256:abc"},
        {"event": "ended", "peer": "10.0.0.9:50000", "key_fingerprint": "SHA256:abc", "command": "make test", "exit_status": 2},
        {"event": "refused", "peer": "10.0.0.66:40000", "key_fingerprint": "SHA256:evil"},
        {"event": "ended", "peer": "10.0.0.9:50000", "key_fingerprint": "SHA256:abc", "command": "direct-tcpip localhost:8080",
         "bytes_in": 120, "bytes_out": 4096, "duration_ms": 1500},
        {"event": "refused", "peer": "10.0.0.9:50000", "key_fingerprint": "SHA256:abc", "command": "direct-tcpip 10.0.0.1:22"},
    ]});
    let records = format!("/api/v1/runner/environments/{id}/ssh-sessions");
    h.ok("POST", &records, &first, Some(sessions), 200).await;
    let audit = h.ok("GET", "/api/v1/audit?action=environment.ssh", auditor, None, 200).await;
    let audit = items(&audit);
    assert_eq!(audit.len(), 5, "{audit:?}");
    assert!(audit.iter().any(|r| r["outcome"] == "denied" && r["detail"].as_str().unwrap().contains("SHA256:evil")));
    assert!(audit.iter().any(|r| r["detail"].as_str().unwrap().contains("`make test`") && r["detail"].as_str().unwrap().contains("status 2")));
    let detail = |r: &serde_json::Value| r["detail"].as_str().unwrap().to_owned();
    assert!(audit.iter().any(|r| detail(r).contains("`direct-tcpip localhost:8080`")
        && detail(r).contains("120 bytes in, 4096 bytes out, 1500 ms")));
    assert!(audit.iter().any(|r| r["outcome"] == "denied" && detail(r).contains("`direct-tcpip 10.0.0.1:22`")));
    assert!(audit.iter().all(|r| r["actor"]["kind"] == "runner"));

    // Stop, and the runner stores a snapshot; a wrong digest is refused and records nothing.
    h.ok("POST", &format!("/api/v1/environments/{id}/stop"), member, None, 200).await;
    h.ok("POST", &status, &first, Some(json!({"phase": "stopped"})), 200).await;
    let archive = json!("pretend this is tar+zstd");
    let digest = {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(archive.to_string().as_bytes())))
    };
    let backup = format!("/api/v1/runner/environments/{id}/backup");
    let wrong = format!("{backup}?digest=sha256:{}", "0".repeat(64));
    h.ok("PUT", &wrong, &first, Some(archive.clone()), 400).await;
    h.ok("GET", &backup, &first, None, 404).await;
    let stored = h.ok("PUT", &format!("{backup}?digest={digest}"), &first, Some(archive.clone()), 200).await;
    assert_eq!(stored["backup"]["digest"], digest.as_str());
    let got = h.ok("GET", &backup, &first, None, 200).await;
    assert_eq!(got, archive, "the same bytes come back");

    // The first runner goes silent; a start moves the environment to a live runner, which
    // sees the snapshot to restore. The old runner no longer sees it.
    let (second_id, second) = h.active_runner(admin, "runner-2", 10).await;
    h.clock.advance(Duration::from_secs(91));
    h.ok("POST", "/api/v1/runner/heartbeat", &second, Some(json!({})), 200).await;
    let started = h.ok("POST", &format!("/api/v1/environments/{id}/start"), member, None, 200).await;
    assert_eq!(started["runner_id"], second_id.as_str());
    assert_ne!(second_id, first_id);
    let seen = h.ok("GET", &format!("/api/v1/runner/environments/{id}"), &second, None, 200).await;
    assert_eq!(seen["backup"]["digest"], digest.as_str());
    h.ok("GET", &format!("/api/v1/runner/environments/{id}"), &first, None, 404).await;
    let runners = h.ok("GET", "/api/v1/runners", admin, None, 200).await;
    let load = |rid: &str| items(&runners).iter().find(|r| r["id"] == rid).unwrap()["environments"].as_u64();
    assert_eq!((load(&first_id), load(&second_id)), (Some(0), Some(1)), "the place moved with it");
}

#[tokio::test]
async fn environments_without_a_free_place_wait_in_a_queue_and_are_placed_oldest_first() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (_, project_id, runner_id, runner) = h.inventory(&org.admin.1, 1).await;
    let member = &org.member.1;
    let create = || h.ok("POST", "/api/v1/environments", member, Some(json!({"project_id": project_id})), 201);
    let h = &h;
    let get = |id: String| async move { h.ok("GET", &format!("/api/v1/environments/{id}"), member, None, 200).await };
    let id = |env: &serde_json::Value| env["id"].as_str().unwrap().to_string();
    let hosted = || async {
        let page = h.ok("GET", "/api/v1/runner/environments", &runner, None, 200).await;
        items(&page).iter().map(|e| e["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };

    let first = create().await;
    assert_eq!(first["runner_id"], runner_id.as_str());
    let second = create().await;
    let third = create().await;
    for waiting in [&second, &third] {
        assert_eq!(waiting["runner_id"], "", "{waiting}");
        assert_eq!(waiting["phase"], "creating");
    }
    assert_eq!(hosted().await, [id(&first)], "the runner sees only what it hosts");
    let ssh = h.ok("GET", &format!("/api/v1/environments/{}/ssh", id(&second)), member, None, 409).await;
    assert!(ssh["error"]["message"].as_str().unwrap().contains("waits for a runner"), "{ssh}");

    // No runner holds a queued environment: stopping and deleting it take effect at once.
    let stopped = h.ok("POST", &format!("/api/v1/environments/{}/stop", id(&third)), member, None, 200).await;
    assert_eq!(stopped["phase"], "stopped");
    let restarted = h.ok("POST", &format!("/api/v1/environments/{}/start", id(&third)), member, None, 200).await;
    assert_eq!((restarted["phase"].as_str(), restarted["runner_id"].as_str()), (Some("starting"), Some("")));

    // The first one is deleted: its place goes to the oldest waiting one.
    h.ok("DELETE", &format!("/api/v1/environments/{}", id(&first)), member, None, 200).await;
    assert_eq!(get(id(&second)).await["runner_id"], "", "the place is free only once the runner confirms");
    h.ok("POST", &format!("/api/v1/runner/environments/{}/status", id(&first)), &runner, Some(json!({"phase": "deleted"})), 200).await;
    assert_eq!(get(id(&second)).await["runner_id"], runner_id.as_str());
    assert_eq!(get(id(&third)).await["runner_id"], "");
    assert_eq!(hosted().await, [id(&second)]);

    let deleted = h.ok("DELETE", &format!("/api/v1/environments/{}", id(&third)), member, None, 200).await;
    assert_eq!(deleted["phase"], "deleted");
    let placed = h.ok("GET", &format!("/api/v1/audit?action=environment.place&subject=environment/{}", id(&second)), &org.admin.1, None, 200).await;
    assert_eq!(items(&placed).len(), 1, "{placed}");
    assert!(items(&placed)[0]["detail"].as_str().unwrap().contains(&runner_id));
}

/// Finding 2: a disabled or deleted owner's SSH keys are no longer handed to the runner (whose
/// gateway then closes their open sessions), and the gateway's report of each closing lands
/// on the audit log.
#[tokio::test]
async fn disabled_and_deleted_owners_lose_their_ssh_keys_on_the_runner() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (admin, member) = (&org.admin.1, &org.member.1);
    let (_, project_id, _, runner) = h.inventory(admin, 10).await;
    h.ok("POST", "/api/v1/ssh-keys", member, Some(json!({"name": "laptop", "public_key": KEY})), 201)
        .await;
    let env = h
        .ok("POST", "/api/v1/environments", member, Some(json!({"project_id": project_id})), 201)
        .await;
    let env_id = env["id"].as_str().unwrap().to_string();
    let view = format!("/api/v1/runner/environments/{env_id}");
    let keys = |v: serde_json::Value| v["ssh_authorized_keys"].as_array().unwrap().len();
    assert_eq!(keys(h.ok("GET", &view, &runner, None, 200).await), 1);

    let user = format!("/api/v1/users/{}", org.member.0);
    let disabled = h.ok("PATCH", &user, admin, Some(json!({"disabled": true})), 200).await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(keys(h.ok("GET", &view, &runner, None, 200).await), 0, "a disabled owner's keys are withdrawn");
    let listed = h.ok("GET", "/api/v1/runner/environments", &runner, None, 200).await;
    assert_eq!(items(&listed)[0]["ssh_authorized_keys"].as_array().unwrap().len(), 0);
    let log = h.ok("GET", "/api/v1/audit?action=user.update", admin, None, 200).await;
    assert!(items(&log).last().unwrap()["detail"].as_str().unwrap().contains("SSH keys withdrawn"), "{log}");

    // The gateway reports the sessions it closed.
    h.ok(
        "POST",
        &format!("{view}/ssh-sessions"),
        &runner,
        Some(json!({"sessions": [{"event": "withdrawn", "peer": "10.0.0.5:51000", "key_fingerprint": "SHA256:abc"}]})),
        200,
    )
    .await;
    let log = h.ok("GET", "/api/v1/audit?action=environment.ssh", admin, None, 200).await;
    let last = items(&log).last().unwrap().clone();
    assert_eq!(last["outcome"], "denied");
    assert!(last["detail"].as_str().unwrap().contains("access withdrawn"), "{last}");

    // Enabled again: the keys come back. Deleted: gone for good.
    h.ok("PATCH", &user, admin, Some(json!({"disabled": false})), 200).await;
    assert_eq!(keys(h.ok("GET", &view, &runner, None, 200).await), 1);
    h.ok("DELETE", &user, admin, None, 204).await;
    assert_eq!(keys(h.ok("GET", &view, &runner, None, 200).await), 0, "a deleted owner's keys are withdrawn");
}
