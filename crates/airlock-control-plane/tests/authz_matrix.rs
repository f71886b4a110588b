//! The authorization matrix: every route × every principal (owner, admin, member, auditor,
//! runner) × same-org and cross-org targets, asserting the exact status, plus 401 for every
//! route without valid credentials. Each cell acts on freshly made objects, so cells do not
//! depend on each other.

mod common;

use airlock_control_plane::api::endpoints::{AuthKind, ENDPOINTS};
use airlock_control_plane::rbac::Role;
use base64::Engine;
use common::{Harness, OrgUsers, KEY};
use serde_json::{json, Value};

/// Order of the columns.
#[derive(Clone, Copy, Debug)]
enum Who {
    Role(Role),
    Runner,
}

const WHO: [Who; 5] = [
    Who::Role(Role::Owner),
    Who::Role(Role::Admin),
    Who::Role(Role::Member),
    Who::Role(Role::Auditor),
    Who::Runner,
];

/// Expected statuses for a same-org target, by column; cross-org targets are 404 for users
/// (403 for a runner on user routes, as runner credentials are refused before any lookup).
fn expected(op: &str) -> [u16; 5] {
    match op {
        "login" | "runnerExchange" => [200, 200, 200, 200, 200],
        "logout" => [204, 204, 204, 204, 403],
        "getSession" | "ssoLogout" => [200, 200, 200, 200, 403],
        // Public: the provider list answers everyone; without configured providers the
        // sign-in routes say SSO is unavailable (503), whoever asks.
        "listSsoProviders" => [200, 200, 200, 200, 200],
        "startSso" | "finishSso" | "startDeviceLogin" => [503, 503, 503, 503, 503],
        // Credentials in the body, and the made-up ones the harness sends are unknown.
        "pollDeviceLogin" | "refreshSession" => [401, 401, 401, 401, 401],
        "whoami"
        | "listOrgs"
        | "getOrg"
        | "listClasses"
        | "getClass"
        | "listProjects"
        | "getProject"
        | "listSecrets"
        | "getSecret"
        | "listEnvironments"
        | "getEnvironment"
        | "listEnvironmentEvents"
        | "getOpenApi"
        | "listTokens" => [200, 200, 200, 200, 403],
        "listUsers" | "getUser" | "listRunners" | "getRunner" | "listAudit" | "verifyAudit" => {
            [200, 200, 403, 200, 403]
        }
        "createUser" | "createClass" | "createProject" | "createSecret" | "createRunner"
        | "issueExchangeToken" => [201, 201, 403, 403, 403],
        "updateUser" | "updateOrg" | "updateClass" | "updateProject" | "updateRunner"
        | "setSecretValue" => [200, 200, 403, 403, 403],
        "deleteUser" | "setPassword" | "deleteClass" | "deleteProject" | "deleteRunner"
        | "deleteSecret" => [204, 204, 403, 403, 403],
        "createToken" => [201, 201, 201, 201, 403],
        "revokeToken" => [204, 204, 204, 204, 403],
        "listSshKeys" => [200, 200, 200, 403, 403],
        // Only the environment's owner (the member) learns where to reach it.
        "getEnvironmentSsh" => [404, 404, 200, 404, 403],
        "addSshKey" => [201, 201, 201, 403, 403],
        // The target key belongs to the member: it is nobody else's to see.
        "deleteSshKey" => [404, 404, 204, 404, 403],
        "createEnvironment" => [201, 201, 201, 403, 403],
        "deleteEnvironment" | "startEnvironment" | "stopEnvironment" => [200, 200, 200, 403, 403],
        // Site-wide operations: org A is not the site org.
        "createOrg" | "rotateKek" | "exportStoreSnapshot" | "getMetrics" => [403, 403, 403, 403, 403],
        op if op.starts_with("runner") => [403, 403, 403, 403, 200],
        other => panic!("the matrix has no row for `{other}`: add one"),
    }
}

struct OrgCtx {
    users: OrgUsers,
    /// The email domain of the org's users.
    domain: String,
    runner: String,
    class_id: String,
    project_id: String,
}

async fn org(h: &Harness, name: &str) -> OrgCtx {
    let users = h.org_with_users(name).await;
    let (class_id, project_id, _, runner) = h.inventory(&users.admin.1, 10_000).await;
    let gateway = json!({"ssh": {"host": "127.0.0.1", "port": 2222, "host_key": KEY}});
    h.ok("POST", "/api/v1/runner/heartbeat", &runner, Some(gateway), 200)
        .await;
    h.ok(
        "PATCH",
        &format!("/api/v1/orgs/{}", users.org_id),
        &users.owner.1,
        Some(json!({"policy": {"max_running_environments_per_user": 10000}})),
        200,
    )
    .await;
    OrgCtx {
        users,
        domain: format!("{name}.internal"),
        runner,
        class_id,
        project_id,
    }
}

fn fresh_ssh_key() -> String {
    let mut blob = Vec::new();
    blob.extend(11u32.to_be_bytes());
    blob.extend(b"ssh-ed25519");
    blob.extend(32u32.to_be_bytes());
    blob.extend(rand::random::<[u8; 32]>());
    format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn id(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {ptr} in {v}"))
        .to_string()
}

/// Makes what the request targets in `target` (fresh objects), and returns the path, the
/// body, and a bearer to use instead of the caller's (for logout, which ends it).
async fn prepare(
    h: &Harness,
    op: &str,
    path: &str,
    target: &OrgCtx,
    caller: &OrgCtx,
    who: Who,
) -> (String, Value, Option<String>) {
    let admin = &target.users.admin.1;
    let member = &target.users.member.1;
    let new_env = || async {
        id(
            &h.ok(
                "POST",
                "/api/v1/environments",
                member,
                Some(json!({"project_id": target.project_id})),
                201,
            )
            .await,
            "/id",
        )
    };
    let (target_id, body): (String, Value) = match op {
        "startSso" | "finishSso" | "startDeviceLogin" => ("corp".into(), json!({})),
        "pollDeviceLogin" => (String::new(), json!({"login_id": "alk_dev_made_up"})),
        "refreshSession" => (String::new(), json!({"refresh_token": "alk_rfr_made_up"})),
        "login" => (
            String::new(),
            json!({"email": format!("member@{}", caller.domain), "password": "correct horse battery"}),
        ),
        "runnerExchange" => {
            let r = h
                .ok(
                    "POST",
                    "/api/v1/runners",
                    &caller.users.admin.1,
                    Some(json!({"name": unique("r"), "capacity": 1})),
                    201,
                )
                .await;
            (
                String::new(),
                json!({"exchange_token": r["exchange_token"]}),
            )
        }
        "createUser" => (
            String::new(),
            json!({"email": format!("{}@x.internal", unique("u")), "role": "member", "password": "correct horse battery"}),
        ),
        "getUser" | "updateUser" | "deleteUser" | "setPassword" => {
            let u = h.ok("POST", "/api/v1/users", admin, Some(json!({"email": format!("{}@x.internal", unique("t")), "role": "member", "password": "correct horse battery"})), 201).await;
            (
                id(&u, "/id"),
                if op == "updateUser" {
                    json!({"name": "Renamed"})
                } else {
                    json!({"new_password": "a new passphrase here"})
                },
            )
        }
        "createToken" => (String::new(), json!({"name": unique("t")})),
        "revokeToken" => {
            // The caller's own token when same-org; a token of the target org's member otherwise.
            let owner_token = match (who, std::ptr::eq(target, caller)) {
                (Who::Role(role), true) => caller.users.get(role).1.clone(),
                _ => member.clone(),
            };
            let t = h
                .ok(
                    "POST",
                    "/api/v1/tokens",
                    &owner_token,
                    Some(json!({"name": unique("t")})),
                    201,
                )
                .await;
            (id(&t, "/info/id"), Value::Null)
        }
        "addSshKey" => (
            String::new(),
            json!({"name": unique("k"), "public_key": fresh_ssh_key()}),
        ),
        "deleteSshKey" => (
            id(
                &h.ok(
                    "POST",
                    "/api/v1/ssh-keys",
                    member,
                    Some(json!({"name": unique("k"), "public_key": fresh_ssh_key()})),
                    201,
                )
                .await,
                "/id",
            ),
            Value::Null,
        ),
        "createOrg" => (
            String::new(),
            json!({"name": unique("o"), "owner_email": format!("{}@x.internal", unique("o")), "owner_password": "correct horse battery"}),
        ),
        "getOrg" | "updateOrg" => (
            target.users.org_id.clone(),
            json!({"policy": {"idle_timeout_minutes": 60}}),
        ),
        "createClass" => (
            String::new(),
            json!({"name": unique("c"), "resources": {"cpu_millis": 1000, "memory_mib": 1024, "disk_gib": 5, "pids": 512}}),
        ),
        "getClass" | "updateClass" | "deleteClass" => {
            let c = h.ok("POST", "/api/v1/classes", admin, Some(json!({"name": unique("c"), "resources": {"cpu_millis": 1000, "memory_mib": 1024, "disk_gib": 5, "pids": 512}})), 201).await;
            (id(&c, "/id"), json!({"name": unique("c")}))
        }
        "createProject" => (
            String::new(),
            json!({"name": unique("p"), "repository_url": "https://git.internal/p.git", "image": "mirror.internal/p:1", "class_id": caller.class_id}),
        ),
        "getProject" | "updateProject" | "deleteProject" => {
            let p = h.ok("POST", "/api/v1/projects", admin, Some(json!({"name": unique("p"), "repository_url": "https://git.internal/p.git", "image": "mirror.internal/p:1", "class_id": target.class_id})), 201).await;
            (id(&p, "/id"), json!({"image": "mirror.internal/p:2"}))
        }
        "createRunner" => (String::new(), json!({"name": unique("r"), "capacity": 2})),
        "getRunner" | "updateRunner" | "deleteRunner" | "issueExchangeToken" => {
            let r = h
                .ok(
                    "POST",
                    "/api/v1/runners",
                    admin,
                    Some(json!({"name": unique("r"), "capacity": 1})),
                    201,
                )
                .await;
            (id(&r, "/runner/id"), json!({"capacity": 3}))
        }
        "createEnvironment" => (String::new(), json!({"project_id": caller.project_id})),
        "getEnvironment"
        | "getEnvironmentSsh"
        | "deleteEnvironment"
        | "startEnvironment"
        | "stopEnvironment"
        | "listEnvironmentEvents"
        | "runnerGetEnvironment"
        | "runnerGetSecrets"
        | "runnerReportEvents" => (
            new_env().await,
            json!({"events": [{"kind": "progress", "message": "hello"}]}),
        ),
        "runnerReportStatus" => (new_env().await, json!({"phase": "starting"})),
        "runnerReportSshSessions" => (
            new_env().await,
            json!({"sessions": [{"event": "accepted", "peer": "127.0.0.1:40000", "key_fingerprint": "SHA256:abc"}]}),
        ),
        "runnerUploadBackup" => {
            let body = json!({"not": "really zstd"});
            let digest = sha256_of(&body);
            let path = path.replace("{id}", &new_env().await);
            return (format!("{path}?digest={digest}"), body, None);
        }
        "runnerDownloadBackup" => {
            let env = new_env().await;
            let body = json!({"a": "snapshot"});
            let upload = format!("/api/v1/runner/environments/{env}/backup?digest={}", sha256_of(&body));
            h.ok("PUT", &upload, &target.runner, Some(body), 200).await;
            (env, Value::Null)
        }
        "runnerHeartbeat" => (String::new(), json!({"status": "active"})),
        "createSecret" => (
            String::new(),
            json!({"name": unique("s"), "scope": {"kind": "org"}, "value": "v"}),
        ),
        "getSecret" | "setSecretValue" | "deleteSecret" => {
            let s = h
                .ok(
                    "POST",
                    "/api/v1/secrets",
                    admin,
                    Some(json!({"name": unique("s"), "scope": {"kind": "org"}, "value": "v"})),
                    201,
                )
                .await;
            (id(&s, "/id"), json!({"value": "v2"}))
        }
        _ => (String::new(), json!({})),
    };
    let path = path.replace("{id}", &target_id);
    let bearer = match (op, who) {
        ("logout" | "ssoLogout", Who::Role(role)) => {
            Some(h.token_for(&caller.users.org_id, &caller.users.get(role).0))
        }
        _ => None,
    };
    (path, body, bearer)
}

/// The digest of a JSON body as the harness sends it.
fn sha256_of(body: &Value) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(body.to_string().as_bytes())))
}

fn bearer_of(ctx: &OrgCtx, who: Who) -> &str {
    match who {
        Who::Role(role) => &ctx.users.get(role).1,
        Who::Runner => &ctx.runner,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_route_every_role_same_and_cross_org() {
    let h = Harness::new();
    let a = org(&h, "alpha").await;
    let b = org(&h, "bravo").await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for e in ENDPOINTS {
        let same = expected(e.operation_id());
        let has_target = e.path.contains("{id}");
        for (column, who) in WHO.iter().enumerate() {
            let mut targets = vec![(&a, same[column], "same-org")];
            if has_target {
                let cross = match (who, e.auth) {
                    // No org in it: the same answer for any target.
                    (_, AuthKind::Public) => same[column],
                    (Who::Runner, AuthKind::User) => 403,
                    (Who::Role(_), AuthKind::Runner) => 403,
                    _ => 404,
                };
                targets.push((&b, cross, "cross-org"));
            }
            for (target, want, label) in targets {
                let (path, body, bearer) =
                    prepare(&h, e.operation_id(), e.path, target, &a, *who).await;
                let token = bearer.unwrap_or_else(|| bearer_of(&a, *who).to_string());
                let (status, answer) = h.call(e.method.as_str(), &path, Some(&token), Some(body)).await;
                cells += 1;
                if status.as_u16() != want {
                    failures.push(format!(
                        "{} {} as {who:?} ({label}): want {want}, got {status} {answer}",
                        e.method.as_str(), e.path
                    ));
                }
            }
        }
        // No valid credentials: 401 on every route (routes that authenticate by body get a
        // made-up credential in it).
        let path = e.path.replace("{id}", "x");
        let body = match e.operation_id() {
            "login" => json!({"email": "member@alpha.internal", "password": "not the password"}),
            "runnerExchange" => json!({"exchange_token": "alk_rex_made_up"}),
            "pollDeviceLogin" => json!({"login_id": "alk_dev_made_up"}),
            "refreshSession" => json!({"refresh_token": "alk_rfr_made_up"}),
            _ => json!({}),
        };
        if e.auth == AuthKind::Public {
            // Public routes have no credentials to refuse; their rows above cover them.
            continue;
        }
        for bearer in [None, Some("alk_pat_not_a_real_token")] {
            let (status, answer) = h.call(e.method.as_str(), &path, bearer, Some(body.clone())).await;
            cells += 1;
            if status != 401 {
                failures.push(format!(
                    "{} {} unauthenticated ({bearer:?}): want 401, got {status} {answer}",
                    e.method.as_str(), e.path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells > 500, "only {cells} cells");
}
