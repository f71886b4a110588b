//! A user's own git credentials (secrets of scope `user`): created by that user only, seen and
//! deleted by that user only, delivered to that user's environments only, audited, and gone
//! at the next runner request once deleted.

mod common;

use common::{items, Harness};
use serde_json::{json, Value};

const TOKEN: &str = "tok-ada-91c2e5";
const HOST_KEY: &str = "git.site.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHLsNi6edQQ/hM0oqVME9cMFy8ucKYuiHhGjKDBsYmDK";

fn https(user_id: &str) -> Value {
    json!({"name": "git-https-git.site.internal", "scope": {"kind": "user", "user_id": user_id},
           "delivery": {"kind": "git-https", "host": "git.site.internal", "username": "ada"}, "value": TOKEN})
}

#[tokio::test]
async fn a_users_git_credential_reaches_only_their_own_environments_until_deleted() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (_, project_id, _, runner) = h.inventory(&org.admin.1, 4).await;
    let (member_id, member) = org.member.clone();
    let admin = org.admin.1.clone();

    let created = h.ok("POST", "/api/v1/secrets", &member, Some(https(&member_id)), 201).await;
    let secret_id = created["id"].as_str().unwrap().to_string();
    assert!(!created.to_string().contains(TOKEN));
    let ssh = json!({"name": "git-ssh-git.site.internal", "scope": {"kind": "user", "user_id": member_id},
                     "delivery": {"kind": "git-ssh", "host": "git.site.internal", "known_hosts": HOST_KEY},
                     "value": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"});
    h.ok("POST", "/api/v1/secrets", &member, Some(ssh), 201).await;

    // Listed to the owner without values; invisible to others, admins included.
    let mine = h.ok("GET", "/api/v1/secrets", &member, None, 200).await;
    assert_eq!(items(&mine).len(), 2, "{mine}");
    assert!(!mine.to_string().contains(TOKEN));
    let theirs = h.ok("GET", "/api/v1/secrets", &admin, None, 200).await;
    assert!(items(&theirs).is_empty(), "{theirs}");
    h.ok("GET", &format!("/api/v1/secrets/{secret_id}"), &admin, None, 404).await;
    h.ok("DELETE", &format!("/api/v1/secrets/{secret_id}"), &admin, None, 404).await;

    // The member's environment gets it (the runner sees its delivery, then its value); the
    // admin's environment on the same runner does not.
    let mut envs = Vec::new();
    for token in [&member, &admin] {
        let env = h.ok("POST", "/api/v1/environments", token, Some(json!({"project_id": project_id})), 201).await;
        envs.push(env["id"].as_str().unwrap().to_string());
    }
    let (member_env, admin_env) = (&envs[0], &envs[1]);
    let view = h.ok("GET", &format!("/api/v1/runner/environments/{member_env}"), &runner, None, 200).await;
    assert_eq!(view["owner"]["email"], "member@acme.internal");
    assert!(view["secrets"].to_string().contains("git-https") && view["secrets"].to_string().contains(HOST_KEY), "{view}");
    let values = h.ok("GET", &format!("/api/v1/runner/environments/{member_env}/secrets"), &runner, None, 200).await;
    assert!(items(&values).iter().any(|s| s["value"] == TOKEN && s["delivery"]["username"] == "ada"), "{values}");
    let other = h.ok("GET", &format!("/api/v1/runner/environments/{admin_env}/secrets"), &runner, None, 200).await;
    assert!(!other.to_string().contains(TOKEN), "another user's environment got the token: {other}");

    // Deleted: the very next request from the runner no longer carries it; all audited.
    h.ok("DELETE", &format!("/api/v1/secrets/{secret_id}"), &member, None, 204).await;
    let after = h.ok("GET", &format!("/api/v1/runner/environments/{member_env}/secrets"), &runner, None, 200).await;
    assert!(!after.to_string().contains(TOKEN), "{after}");
    let audit = h.ok("GET", "/api/v1/audit?limit=500", &org.owner.1, None, 200).await.to_string();
    for action in ["secret.create", "secret.read", "secret.delete"] {
        assert!(audit.contains(action), "{action} not audited");
    }
    assert!(!audit.contains(TOKEN), "the audit log holds the token");
}

#[tokio::test]
async fn git_credentials_are_personal_and_checked() {
    let h = Harness::new();
    let org = h.org_with_users("acme").await;
    let (member_id, member) = org.member.clone();
    let (admin_id, admin) = org.admin.clone();
    let message = |v: &Value| v["error"]["message"].as_str().unwrap_or_default().to_string();

    // Not for someone else, not shared with the org or a project.
    let (status, body) = h.call("POST", "/api/v1/secrets", Some(&admin), Some(https(&member_id))).await;
    assert_eq!(status.as_u16(), 400, "{body}");
    assert!(message(&body).contains(&admin_id), "{body}");
    let mut org_wide = https(&member_id);
    org_wide["scope"] = json!({"kind": "org"});
    let (status, body) = h.call("POST", "/api/v1/secrets", Some(&admin), Some(org_wide)).await;
    assert_eq!(status.as_u16(), 400, "{body}");
    assert!(message(&body).contains("git credentials are personal"), "{body}");

    // Bad shapes are named.
    for (delivery, value, says) in [
        (json!({"kind": "git-https", "host": "git.site.internal/path", "username": "ada"}), TOKEN, "must be a host name"),
        (json!({"kind": "git-https", "host": "git.site.internal", "username": ""}), TOKEN, "username"),
        (json!({"kind": "git-https", "host": "git.site.internal", "username": "ada"}), "two\nlines", "one line"),
        (json!({"kind": "git-ssh", "host": "git.site.internal", "known_hosts": ""}), "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "known_hosts"),
        (json!({"kind": "git-ssh", "host": "git.site.internal", "known_hosts": "git.site.internal not-a-key"}), "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "HOST KEYTYPE BASE64"),
        (json!({"kind": "git-ssh", "host": "git.site.internal", "known_hosts": HOST_KEY}), "-----BEGIN RSA PRIVATE KEY-----\nx\n", "OpenSSH private key"),
    ] {
        let body = json!({"name": "git-x", "scope": {"kind": "user", "user_id": member_id}, "delivery": delivery, "value": value});
        let (status, answer) = h.call("POST", "/api/v1/secrets", Some(&member), Some(body)).await;
        assert_eq!(status.as_u16(), 400, "{delivery}: {answer}");
        assert!(message(&answer).contains(says), "{delivery}: {answer}");
    }

    // The user's secrets go with the user.
    h.ok("POST", "/api/v1/secrets", &member, Some(https(&member_id)), 201).await;
    h.ok("DELETE", &format!("/api/v1/users/{member_id}"), &org.owner.1, None, 204).await;
    let left = h.ok("GET", "/api/v1/secrets", &org.owner.1, None, 200).await;
    assert!(items(&left).is_empty(), "{left}");
    assert!(h.app.store.scan_all::<Value>("sealed/").unwrap().is_empty(), "the sealed value stayed");
}
