//! Login, tokens, users, SSH keys, org isolation, paging, error bodies and the OpenAPI
//! document.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use airlock_control_plane::api::endpoints::ENDPOINTS;
use common::{items, Harness, KEY};
use serde_json::{json, Value};

#[tokio::test]
async fn login_sessions_and_rate_limited_audited_failures() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let login = |password: &str| json!({"email": "Member@acme.internal", "password": password});

    let (status, session) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(login("correct horse battery")),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("alk_ses_"));
    let me = h.ok("GET", "/api/v1/auth/whoami", &token, None, 200).await;
    assert_eq!(
        (me["user"]["role"].as_str(), me["site_admin"].as_bool()),
        (Some("member"), Some(false))
    );

    // Five wrong passwords, then even the right one is refused for the window.
    for _ in 0..5 {
        let (status, body) = h
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(login("wrong password!!")),
            )
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["message"], "wrong email or password");
    }
    let (status, body) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(login("correct horse battery")),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    h.clock.advance(Duration::from_secs(15 * 60 + 1));
    let (status, _) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(login("correct horse battery")),
        )
        .await;
    assert_eq!(status, 200);
    // Unknown accounts get the same answer as wrong passwords.
    let (status, body) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@acme.internal", "password": "whatever-123456"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["message"].as_str()),
        (401, Some("wrong email or password"))
    );

    let log = h
        .ok(
            "GET",
            "/api/v1/audit?action=auth.login",
            &org.auditor.1,
            None,
            200,
        )
        .await;
    let outcomes: Vec<_> = items(&log)
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["success", "failure", "failure", "failure", "failure", "failure", "denied", "success"]
    );
    assert_eq!(items(&log)[1]["actor"]["name"], "member@acme.internal");

    // Logout revokes the session.
    h.ok("POST", "/api/v1/auth/logout", &token, None, 204).await;
    let (status, body) = h
        .call("GET", "/api/v1/auth/whoami", Some(&token), None)
        .await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
}

/// Finding 1: failed logins lock an account only from the address they came from (an IPv6
/// client by its /64), so nobody can lock a user out from elsewhere.
#[tokio::test]
async fn failed_logins_lock_the_account_only_from_that_address() {
    let h = Harness::new();
    h.org_with_users("acme").await;
    let login = |password: &str| json!({"email": "member@acme.internal", "password": password});
    let attempt = |from: &'static str, password: &'static str| {
        let h = &h;
        let body = login(password);
        async move {
            h.call_from(Some(from), "POST", "/api/v1/auth/login", None, Some(body))
                .await
        }
    };
    for from in ["10.0.0.66", "2001:db8:0:0::66"] {
        for _ in 0..5 {
            assert_eq!(attempt(from, "wrong password!!").await.0, 401);
        }
    }
    let (status, body) = attempt("10.0.0.66", "correct horse battery").await;
    assert_eq!(status, 429, "the guessing address is locked out: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("try again in"), "{body}");
    // Same /64: the same client.
    assert_eq!(attempt("2001:db8::77", "correct horse battery").await.0, 429);
    // The user, elsewhere, still gets in.
    let (status, body) = attempt("10.0.0.7", "correct horse battery").await;
    assert_eq!(status, 200, "another address is not locked out: {body}");
    assert_eq!(attempt("2001:db8:0:1::7", "correct horse battery").await.0, 200);
}

/// Finding 1: refused (rate-limited) attempts are audited as one record when the lockout
/// starts and one counted summary when it ends, not one record each.
#[tokio::test]
async fn rate_limited_logins_are_audited_as_one_counted_summary() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let login = |password: &str| json!({"email": "member@acme.internal", "password": password});
    let from = Some("192.0.2.9");
    for _ in 0..5 {
        let (status, _) = h.call_from(from, "POST", "/api/v1/auth/login", None, Some(login("wrong password!!"))).await;
        assert_eq!(status, 401);
    }
    let records = |h: &Harness| h.app.store.scan_raw("audit/").unwrap().len();
    let before = records(&h);
    for _ in 0..40 {
        let (status, body) = h.call_from(from, "POST", "/api/v1/auth/login", None, Some(login("correct horse battery"))).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limited");
    }
    assert_eq!(records(&h) - before, 1, "only the first refusal has its own record");

    h.clock.advance(Duration::from_secs(15 * 60 + 1));
    let (status, _) = h.call_from(from, "POST", "/api/v1/auth/login", None, Some(login("correct horse battery"))).await;
    assert_eq!(status, 200);
    let log = h.ok("GET", "/api/v1/audit?action=auth.login", &org.auditor.1, None, 200).await;
    let denied: Vec<&Value> = items(&log).iter().filter(|r| r["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 2, "{log}");
    assert!(denied[0]["detail"].as_str().unwrap().contains("counted"), "{}", denied[0]);
    let summary = denied[1]["detail"].as_str().unwrap();
    assert!(summary.starts_with("39 more login attempt(s) for member@acme.internal from 192.0.2.9 refused"), "{summary}");
    assert_eq!(denied[1]["org_id"], org.org_id);
}

/// Finding 1: oversized login fields are refused (400, field named) before any lookup or
/// audit record; an oversized body is refused with 413.
#[tokio::test]
async fn oversized_login_fields_are_refused_before_anything_is_recorded() {
    let h = Harness::new();
    h.org_with_users("acme").await;
    let records = |h: &Harness| h.app.store.scan_raw("audit/").unwrap().len();
    let before = records(&h);
    let long_email = format!("{}@acme.internal", "m".repeat(300));
    let (status, body) = h.call("POST", "/api/v1/auth/login", None, Some(json!({"email": long_email, "password": "x"}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "email");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 254 bytes"), "{body}");
    let (status, body) = h.call("POST", "/api/v1/auth/login", None, Some(json!({"email": "member@acme.internal", "password": "p".repeat(2000)}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "password");
    let (status, body) = h.call("POST", "/api/v1/auth/login", None, Some(json!({"email": "m".repeat(2 << 20), "password": "x"}))).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("8192 bytes"), "{body}");
    let (status, body) = h.call("POST", "/api/v1/runner/exchange", None, Some(json!({"exchange_token": "t".repeat(500)}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "exchange_token");
    assert_eq!(records(&h), before, "nothing was recorded");
}

#[tokio::test]
async fn personal_access_tokens_expire_and_revoke() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let created = h
        .ok(
            "POST",
            "/api/v1/tokens",
            &org.member.1,
            Some(json!({"name": "ci", "expires_in_days": 1})),
            201,
        )
        .await;
    let pat = created["token"].as_str().unwrap().to_string();
    assert!(pat.starts_with("alk_pat_"));
    h.ok("GET", "/api/v1/projects", &pat, None, 200).await;
    let listed = h
        .ok("GET", "/api/v1/tokens", &org.member.1, None, 200)
        .await;
    assert!(items(&listed).iter().any(|t| t["name"] == "ci"));
    assert!(
        !listed.to_string().contains(&pat),
        "token values are never listed"
    );
    h.ok(
        "POST",
        "/api/v1/tokens",
        &org.member.1,
        Some(json!({"name": "forever", "expires_in_days": 400})),
        400,
    )
    .await;

    h.clock.advance(Duration::from_secs(86_400));
    let (status, body) = h.call("GET", "/api/v1/projects", Some(&pat), None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    let second = h
        .ok(
            "POST",
            "/api/v1/tokens",
            &org.member.1,
            Some(json!({"name": "ci2"})),
            201,
        )
        .await;
    let id = second["info"]["id"].as_str().unwrap();
    // Someone else's token id is not found, even for an admin.
    h.ok(
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        &org.admin.1,
        None,
        404,
    )
    .await;
    h.ok(
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        &org.member.1,
        None,
        204,
    )
    .await;
    let (status, _) = h
        .call("GET", "/api/v1/projects", second["token"].as_str(), None)
        .await;
    assert_eq!(status, 401);
    let revoked = h
        .ok(
            "GET",
            "/api/v1/audit?action=token.*",
            &org.admin.1,
            None,
            200,
        )
        .await;
    let actions: Vec<_> = items(&revoked)
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.create", "token.create", "token.revoke"]);
}

#[tokio::test]
async fn user_management_rules() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let new_user = |role: &str| json!({"email": format!("new-{role}@acme.internal"), "role": role, "password": "correct horse battery"});
    // Admins cannot create or touch owners; owners can.
    let denied = h
        .ok(
            "POST",
            "/api/v1/users",
            &org.admin.1,
            Some(new_user("owner")),
            403,
        )
        .await;
    assert_eq!(denied["error"]["code"], "forbidden");
    h.ok(
        "POST",
        "/api/v1/users",
        &org.admin.1,
        Some(new_user("member")),
        201,
    )
    .await;
    h.ok(
        "PATCH",
        &format!("/api/v1/users/{}", org.owner.0),
        &org.admin.1,
        Some(json!({"disabled": true})),
        403,
    )
    .await;
    // The last owner cannot be demoted.
    let last = h
        .ok(
            "PATCH",
            &format!("/api/v1/users/{}", org.owner.0),
            &org.owner.1,
            Some(json!({"role": "admin"})),
            409,
        )
        .await;
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("last owner"));
    // Duplicate email, weak password, unknown field, bad role: clear 4xx.
    h.ok(
        "POST",
        "/api/v1/users",
        &org.owner.1,
        Some(new_user("member")),
        409,
    )
    .await;
    let weak = h
        .ok(
            "POST",
            "/api/v1/users",
            &org.owner.1,
            Some(json!({"email": "x@acme.internal", "role": "member", "password": "short"})),
            400,
        )
        .await;
    assert_eq!(weak["error"]["field"], "password");
    let odd = h.ok("POST", "/api/v1/users", &org.owner.1, Some(json!({"email": "x@acme.internal", "role": "root", "password": "correct horse battery"})), 400).await;
    assert!(
        odd["error"]["message"].as_str().unwrap().contains("root"),
        "{odd}"
    );
    assert!(!odd["error"]["request_id"].as_str().unwrap().is_empty());

    // Disabling ends access; password reset by an admin lets the user log in.
    h.ok(
        "PATCH",
        &format!("/api/v1/users/{}", org.member.0),
        &org.admin.1,
        Some(json!({"disabled": true})),
        200,
    )
    .await;
    let (status, _) = h
        .call("GET", "/api/v1/projects", Some(&org.member.1), None)
        .await;
    assert_eq!(status, 401);
    h.ok(
        "PATCH",
        &format!("/api/v1/users/{}", org.member.0),
        &org.admin.1,
        Some(json!({"disabled": false})),
        200,
    )
    .await;
    h.ok(
        "PUT",
        &format!("/api/v1/users/{}/password", org.member.0),
        &org.admin.1,
        Some(json!({"new_password": "a brand new passphrase"})),
        204,
    )
    .await;
    // Changing one's own password needs the current one.
    h.ok(
        "PUT",
        &format!("/api/v1/users/{}/password", org.member.0),
        &org.member.1,
        Some(json!({"current_password": "nope", "new_password": "another new passphrase"})),
        403,
    )
    .await;
    h.ok("PUT", &format!("/api/v1/users/{}/password", org.member.0), &org.member.1, Some(json!({"current_password": "a brand new passphrase", "new_password": "another new passphrase"})), 204).await;
    let (status, _) = h
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "member@acme.internal", "password": "another new passphrase"})),
        )
        .await;
    assert_eq!(status, 200);

    // Deleting a user revokes their tokens.
    h.ok(
        "DELETE",
        &format!("/api/v1/users/{}", org.member.0),
        &org.admin.1,
        None,
        204,
    )
    .await;
    let (status, _) = h
        .call("GET", "/api/v1/projects", Some(&org.member.1), None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn ssh_keys_are_validated_and_private_to_their_owner() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let added = h
        .ok(
            "POST",
            "/api/v1/ssh-keys",
            &org.member.1,
            Some(json!({"name": "laptop", "public_key": KEY})),
            201,
        )
        .await;
    assert_eq!(
        added["fingerprint"],
        "SHA256:73C2gbyrFCFpIFi9M5Vr8wDEzSKyMTkePRwehuq2QdM"
    );
    h.ok(
        "POST",
        "/api/v1/ssh-keys",
        &org.member.1,
        Some(json!({"name": "again", "public_key": KEY})),
        409,
    )
    .await;
    let bad = h
        .ok(
            "POST",
            "/api/v1/ssh-keys",
            &org.member.1,
            Some(json!({"name": "bad", "public_key": "ssh-ed25519 not-base64!"})),
            400,
        )
        .await;
    assert_eq!(bad["error"]["field"], "public_key");
    assert!(items(
        &h.ok("GET", "/api/v1/ssh-keys", &org.admin.1, None, 200)
            .await
    )
    .is_empty());
    let id = added["id"].as_str().unwrap();
    h.ok(
        "DELETE",
        &format!("/api/v1/ssh-keys/{id}"),
        &org.admin.1,
        None,
        404,
    )
    .await;
    h.ok(
        "DELETE",
        &format!("/api/v1/ssh-keys/{id}"),
        &org.member.1,
        None,
        204,
    )
    .await;
}

#[tokio::test]
async fn orgs_are_isolated_from_each_other() {
    let h = Harness::new();
    let a = h.org_with_users("alpha").await;
    let b = h.org_with_users("bravo").await;
    let (_, project_b, runner_b, _) = h.inventory(&b.admin.1, 5).await;
    h.ok(
        "POST",
        "/api/v1/environments",
        &b.member.1,
        Some(json!({"project_id": project_b})),
        201,
    )
    .await;
    h.ok(
        "POST",
        "/api/v1/secrets",
        &b.admin.1,
        Some(json!({"name": "k", "scope": {"kind": "org"}, "value": "v"})),
        201,
    )
    .await;
    for path in [
        "/api/v1/projects",
        "/api/v1/classes",
        "/api/v1/runners",
        "/api/v1/environments",
        "/api/v1/secrets",
    ] {
        let page = h.ok("GET", path, &a.owner.1, None, 200).await;
        assert!(items(&page).is_empty(), "{path} leaks: {page}");
    }
    let users = h.ok("GET", "/api/v1/users", &a.owner.1, None, 200).await;
    assert!(items(&users)
        .iter()
        .all(|u| u["org_id"] == a.org_id.as_str()));
    let audit = h
        .ok("GET", "/api/v1/audit?limit=500", &a.auditor.1, None, 200)
        .await;
    assert!(items(&audit)
        .iter()
        .all(|r| r["org_id"] == a.org_id.as_str()));
    let orgs = h.ok("GET", "/api/v1/orgs", &a.owner.1, None, 200).await;
    assert_eq!(items(&orgs).len(), 1);
    h.ok(
        "GET",
        &format!("/api/v1/orgs/{}", b.org_id),
        &a.owner.1,
        None,
        404,
    )
    .await;
    h.ok(
        "GET",
        &format!("/api/v1/runners/{runner_b}"),
        &a.owner.1,
        None,
        404,
    )
    .await;
    // Referencing another org's project in a body is refused too.
    let cross = h
        .ok(
            "POST",
            "/api/v1/environments",
            &a.owner.1,
            Some(json!({"project_id": project_b})),
            400,
        )
        .await;
    assert_eq!(cross["error"]["field"], "project_id");
    // The site owner sees every org, but not their contents.
    let all = h.ok("GET", "/api/v1/orgs", &h.site_token, None, 200).await;
    assert_eq!(items(&all).len(), 3);
    assert!(items(
        &h.ok("GET", "/api/v1/projects", &h.site_token, None, 200)
            .await
    )
    .is_empty());
}

#[tokio::test]
async fn lists_page_with_cursors() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let class = h.ok("POST", "/api/v1/classes", &org.admin.1, Some(json!({"name": "c", "resources": {"cpu_millis": 1000, "memory_mib": 1024, "disk_gib": 5, "pids": 512}})), 201).await;
    for i in 0..7 {
        h.ok("POST", "/api/v1/projects", &org.admin.1, Some(json!({"name": format!("p{i}"), "repository_url": "git@git.internal:team/p.git", "image": "mirror.internal/p:1", "class_id": class["id"]})), 201).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/projects?limit=3&cursor={c}"),
            None => "/api/v1/projects?limit=3".into(),
        };
        let page = h.ok("GET", &path, &org.member.1, None, 200).await;
        pages += 1;
        seen.extend(
            items(&page)
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    let bad = h
        .ok("GET", "/api/v1/projects?limit=0", &org.member.1, None, 400)
        .await;
    assert_eq!(bad["error"]["field"], "limit");
    h.ok(
        "GET",
        "/api/v1/projects?cursor=../../x",
        &org.member.1,
        None,
        400,
    )
    .await;
    let audit = h
        .ok("GET", "/api/v1/audit?limit=2", &org.admin.1, None, 200)
        .await;
    let next = audit["next_cursor"].as_str().unwrap();
    let after = h
        .ok(
            "GET",
            &format!("/api/v1/audit?limit=2&cursor={next}"),
            &org.admin.1,
            None,
            200,
        )
        .await;
    assert!(items(&after)[0]["seq"].as_u64() > items(&audit)[1]["seq"].as_u64());
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (status, body) = h.call("GET", "/api/v1/projects", None, None).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let cases = [
        (
            json!({"name": "p", "repository_url": "ftp://x", "image": "mirror.internal/p:1", "class_id": "cls_x"}),
            "repository_url",
        ),
        (
            json!({"name": "p", "repository_url": "https://git.internal/p.git", "image": "ubuntu:22.04", "class_id": "cls_x"}),
            "image",
        ),
        (
            json!({"name": "bad name!", "repository_url": "https://git.internal/p.git", "image": "mirror.internal/p:1", "class_id": "cls_x"}),
            "name",
        ),
        (
            json!({"name": "p", "repository_url": "https://git.internal/p.git", "image": "mirror.internal/p:1", "class_id": "cls_x"}),
            "class_id",
        ),
        (json!({"name": "p"}), "body"),
    ];
    for (body, field) in cases {
        let err = h
            .ok("POST", "/api/v1/projects", &org.admin.1, Some(body), 400)
            .await;
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    // Nothing was created by any of them.
    assert!(items(
        &h.ok("GET", "/api/v1/projects", &org.admin.1, None, 200)
            .await
    )
    .is_empty());
    let no_route = h.ok("GET", "/api/v1/nope", &org.admin.1, None, 404).await;
    assert_eq!(no_route["error"]["code"], "no_route");
}

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.insert(r.trim_start_matches("#/components/schemas/").to_string());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The document lists exactly the routes the router serves, and every schema it refers to
/// exists.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let h = Harness::new();
    let doc = h
        .ok("GET", "/api/v1/openapi.json", &h.site_token, None, 200)
        .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, ENDPOINTS.len());
    for e in ENDPOINTS {
        let op = &doc["paths"][e.path][e.method.as_str().to_lowercase()];
        assert_eq!(op["operationId"], e.operation_id());
        // The router serves this method on this path (an unknown id gives a 404 from the
        // handler, never the router's no_route or a 405).
        let path = e.path.replace("{id}", "zz_nonexistent");
        let (status, body) = h
            .call(e.method.as_str(), &path, Some(&h.site_token), Some(json!({})))
            .await;
        assert_ne!(status, 405, "{} {} is not routed", e.method.as_str(), e.path);
        assert_ne!(
            body["error"]["code"], "no_route",
            "{} {} is not routed",
            e.method.as_str(), e.path
        );
    }
    let mut used = BTreeSet::new();
    refs(&doc, &mut used);
    let defined: BTreeSet<String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let missing: Vec<_> = used.difference(&defined).collect();
    assert!(missing.is_empty(), "undefined schemas: {missing:?}");
    let (status, _) = h.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 401);
}

/// Responses carry every field their schema marks required.
#[tokio::test]
async fn responses_have_the_documented_fields() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (_, project_id, _, runner) = h.inventory(&org.admin.1, 3).await;
    let doc = airlock_control_plane::openapi::document();
    let schemas = &doc["components"]["schemas"];
    let check = |name: &str, value: &Value| {
        for field in schemas[name]["required"].as_array().unwrap() {
            assert!(
                value.get(field.as_str().unwrap()).is_some(),
                "{name} lacks `{field}`: {value}"
            );
        }
        for key in value.as_object().unwrap().keys() {
            assert!(
                schemas[name]["properties"].get(key).is_some(),
                "{name} has undocumented `{key}`"
            );
        }
    };
    let env = h
        .ok(
            "POST",
            "/api/v1/environments",
            &org.member.1,
            Some(json!({"project_id": project_id})),
            201,
        )
        .await;
    check("Environment", &env);
    check(
        "Project",
        &h.ok(
            "GET",
            &format!("/api/v1/projects/{project_id}"),
            &org.member.1,
            None,
            200,
        )
        .await,
    );
    check(
        "Runner",
        &items(
            &h.ok("GET", "/api/v1/runners", &org.admin.1, None, 200)
                .await,
        )[0],
    );
    check(
        "RunnerEnvironment",
        &items(
            &h.ok("GET", "/api/v1/runner/environments", &runner, None, 200)
                .await,
        )[0],
    );
    check(
        "Whoami",
        &h.ok("GET", "/api/v1/auth/whoami", &org.member.1, None, 200)
            .await,
    );
    check(
        "AuditRecord",
        &items(&h.ok("GET", "/api/v1/audit", &org.admin.1, None, 200).await)[0],
    );
    check(
        "VerifyReport",
        &h.ok("GET", "/api/v1/audit/verify", &org.admin.1, None, 200)
            .await,
    );
    check(
        "User",
        &items(&h.ok("GET", "/api/v1/users", &org.admin.1, None, 200).await)[0],
    );
    check(
        "Org",
        &items(&h.ok("GET", "/api/v1/orgs", &org.admin.1, None, 200).await)[0],
    );
    check(
        "HeartbeatResponse",
        &h.ok(
            "POST",
            "/api/v1/runner/heartbeat",
            &runner,
            Some(json!({})),
            200,
        )
        .await,
    );
    let err = h
        .ok(
            "GET",
            "/api/v1/projects/prj_missing",
            &org.member.1,
            None,
            404,
        )
        .await;
    check("Error", &err);
}

#[tokio::test]
async fn metrics_are_served_to_site_operators_only() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    h.ok("GET", "/api/v1/projects", &org.member.1, None, 200)
        .await;
    let (status, body) = h.call("GET", "/metrics", Some(&h.site_token), None).await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    assert!(text.contains("airlock_http_requests_total{method=\"GET\",route=\"/api/v1/projects\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("airlock_audit_records "));
    h.ok("GET", "/metrics", &org.owner.1, None, 403).await;
}
