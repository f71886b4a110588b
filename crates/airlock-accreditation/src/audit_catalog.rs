//! The events airlock records: every control plane audit action and every kind of mirror
//! history record. The lists are checked against the source code by the tests below, so an
//! action added to the control plane or the mirror without a line here fails the build's
//! tests instead of going undocumented.

/// A control plane audit action: name, what it records, and the outcomes it is written with.
pub struct Action {
    pub name: &'static str,
    pub records: &'static str,
    pub outcomes: &'static str,
}

const MANAGED: &str = "success, denied";
const READ: &str = "denied (successful reads are not recorded)";

/// Every `action` the control plane writes, sorted.
pub const CONTROL_PLANE: &[Action] = &[
    Action { name: "audit.read", records: "the audit log was read through the API (filters in detail)", outcomes: MANAGED },
    Action { name: "audit.verify", records: "a refused attempt to verify the audit chain through the API", outcomes: READ },
    Action { name: "auth.login", records: "a login with email and password (failures include unknown accounts, wrong passwords and rate limiting)", outcomes: "success, failure" },
    Action { name: "auth.logout", records: "a session token was ended by its holder", outcomes: "success" },
    Action { name: "auth.refresh", records: "a CLI traded its single-use refresh token for a new short-lived session token (refusals: unknown, used, expired, disabled account)", outcomes: "success, denied" },
    Action { name: "auth.sso_login", records: "a single sign-on through an OpenID Connect provider: the decision (org, role, group) or the refusal (invalid ID token, no mapped group, no MFA, disabled account) with the claims that drove it (provider, sub, email, groups, acr, amr)", outcomes: "success, denied, failure" },
    Action { name: "auth.sso_logout", records: "a browser or CLI session ended through the SSO logout route", outcomes: "success" },
    Action { name: "class.create", records: "an environment class (resource limits) was created", outcomes: MANAGED },
    Action { name: "class.delete", records: "an environment class was deleted", outcomes: MANAGED },
    Action { name: "class.get", records: "a refused read of an environment class", outcomes: READ },
    Action { name: "class.list", records: "a refused listing of environment classes", outcomes: READ },
    Action { name: "class.update", records: "an environment class was changed", outcomes: MANAGED },
    Action { name: "environment.backup", records: "a runner recorded a workspace snapshot of an environment", outcomes: "success" },
    Action { name: "environment.create", records: "an environment was created, on a runner or queued for one", outcomes: MANAGED },
    Action { name: "environment.delete", records: "an environment was asked to be deleted", outcomes: MANAGED },
    Action { name: "environment.idle_stop", records: "the server stopped an idle environment (actor: system)", outcomes: "success" },
    Action { name: "environment.list", records: "a refused listing of other users' environments", outcomes: READ },
    Action { name: "environment.phase", records: "a runner reported an environment's new phase", outcomes: "success" },
    Action { name: "environment.place", records: "the server placed a queued environment on a runner that had room (actor: system)", outcomes: "success" },
    Action { name: "environment.ssh", records: "an SSH session to an environment reported by the runner's gateway (opened, closed or refused, with key fingerprint and peer)", outcomes: "success, denied" },
    Action { name: "environment.start", records: "an environment was asked to start", outcomes: MANAGED },
    Action { name: "environment.stop", records: "an environment was asked to stop", outcomes: MANAGED },
    Action { name: "metrics.read", records: "a refused scrape of /metrics", outcomes: READ },
    Action { name: "org.create", records: "an org was created (site administration)", outcomes: MANAGED },
    Action { name: "org.list", records: "a refused listing of orgs", outcomes: READ },
    Action { name: "org.update", records: "an org's name or policy was changed", outcomes: MANAGED },
    Action { name: "project.create", records: "a project (repository, image, class, tasks) was created", outcomes: MANAGED },
    Action { name: "project.delete", records: "a project was deleted (with its project secrets)", outcomes: MANAGED },
    Action { name: "project.get", records: "a refused read of a project", outcomes: READ },
    Action { name: "project.list", records: "a refused listing of projects", outcomes: READ },
    Action { name: "project.update", records: "a project was changed", outcomes: MANAGED },
    Action { name: "runner.create", records: "a runner was registered and its one-time exchange token issued", outcomes: MANAGED },
    Action { name: "runner.delete", records: "a runner was deleted", outcomes: MANAGED },
    Action { name: "runner.exchange", records: "a runner exchanged its one-time token for its credential", outcomes: "success, failure" },
    Action { name: "runner.exchange_token", records: "a new exchange token was issued for a runner (its credential is revoked)", outcomes: MANAGED },
    Action { name: "runner.get", records: "a refused read of a runner", outcomes: READ },
    Action { name: "runner.list", records: "a refused listing of runners", outcomes: READ },
    Action { name: "runner.phase", records: "a runner's phase changed with a heartbeat (active, degraded)", outcomes: "success" },
    Action { name: "runner.update", records: "a runner's name or capacity was changed", outcomes: MANAGED },
    Action { name: "secret.create", records: "a secret was created (the value is never recorded)", outcomes: MANAGED },
    Action { name: "secret.delete", records: "a secret was deleted", outcomes: MANAGED },
    Action { name: "secret.get", records: "a refused read of secret metadata", outcomes: READ },
    Action { name: "secret.list", records: "a refused listing of secret metadata", outcomes: READ },
    Action { name: "secret.read", records: "a runner read a secret value for an environment (one record per secret)", outcomes: "success" },
    Action { name: "secret.rotate_kek", records: "every data key was re-wrapped under the current key-encryption key", outcomes: MANAGED },
    Action { name: "secret.update", records: "a secret's value or delivery was changed", outcomes: MANAGED },
    Action { name: "site.backup", records: "a site admin took a snapshot of the control plane's store for `airlock admin backup` (recorded before the copy is taken), or was refused one", outcomes: MANAGED },
    Action { name: "site.init", records: "`airlock admin init` created the site org and its owner (actor: system)", outcomes: "success" },
    Action { name: "site.recover", records: "`airlock admin recover` issued a new token to a site owner (actor: system; detail: who ran it)", outcomes: "success" },
    Action { name: "ssh_key.create", records: "a user registered an SSH public key", outcomes: MANAGED },
    Action { name: "ssh_key.delete", records: "an SSH public key was removed", outcomes: MANAGED },
    Action { name: "ssh_key.list", records: "a refused listing of SSH keys", outcomes: READ },
    Action { name: "token.create", records: "a personal access token was created", outcomes: MANAGED },
    Action { name: "token.list", records: "a refused listing of tokens", outcomes: READ },
    Action { name: "token.revoke", records: "a token was revoked", outcomes: "success" },
    Action { name: "user.create", records: "a user was created with a role", outcomes: MANAGED },
    Action { name: "user.delete", records: "a user was deleted", outcomes: MANAGED },
    Action { name: "user.get", records: "a refused read of another user", outcomes: READ },
    Action { name: "user.list", records: "a refused listing of users", outcomes: READ },
    Action { name: "user.provision", records: "a user was created just in time at their first single sign-on (email, role, provider)", outcomes: "success" },
    Action { name: "user.set_password", records: "a password was set or changed (never the password itself)", outcomes: "success, failure, denied" },
    Action { name: "user.update", records: "a user's name, role or disabled flag was changed", outcomes: MANAGED },
];

/// Mirror history: the one kind of record (`import`) and the results it is written with.
pub const MIRROR_RESULTS: &[(&str, &str)] = &[
    ("already-imported", "the bundle was imported before; nothing changed (replay)"),
    ("failed", "the bundle's content failed a check while streaming (digest, size, unlisted entry, hostile name); nothing was committed"),
    ("imported", "the bundle was verified and its artifacts committed atomically; signers and overrides are listed"),
    ("refused", "the bundle was refused before its content was read: signatures below threshold, expired, older sequence (rollback), missing delta base, no space"),
];

/// The mirror's history action.
pub const MIRROR_ACTION: &str = "import";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// String literals shaped like an action (`word.word`), skipping field names handed to
    /// `ApiError::invalid(…)` and constants, which share the shape.
    fn dotted_literals(source: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while let Some(start) = source[i..].find('"').map(|p| p + i) {
            let Some(len) = source[start + 1..].find('"') else { break };
            let literal = &source[start + 1..start + 1 + len];
            i = start + len + 2;
            let shaped = {
                let mut parts = literal.split('.');
                let ok = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
                ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
            };
            if !shaped {
                continue;
            }
            let before: String = String::from_utf8_lossy(&bytes[..start]).chars().rev().filter(|c| !c.is_whitespace()).take(40).collect::<Vec<_>>().into_iter().rev().collect();
            if before.ends_with("invalid(") || before.ends_with(":&str=") {
                continue;
            }
            found.insert(literal.to_string());
        }
        found
    }

    #[test]
    fn the_catalog_is_sorted_and_unique() {
        let names: Vec<&str> = CONTROL_PLANE.iter().map(|a| a.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn every_control_plane_action_in_the_source_is_catalogued_and_back() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../airlock-control-plane/src");
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        let mut in_source = BTreeSet::new();
        for file in &files {
            in_source.extend(dotted_literals(&std::fs::read_to_string(file).unwrap()));
        }
        let catalogued: BTreeSet<String> = CONTROL_PLANE.iter().map(|a| a.name.to_string()).collect();
        let missing: Vec<_> = in_source.difference(&catalogued).collect();
        let stale: Vec<_> = catalogued.difference(&in_source).collect();
        assert!(missing.is_empty(), "audit actions in control-plane/src missing from the catalog: {missing:?}");
        assert!(stale.is_empty(), "catalogued actions no longer in control-plane/src: {stale:?}");
    }

    #[test]
    fn the_scanner_finds_actions_and_skips_field_names() {
        let source = r#"
            tx.audit(caller.success("project.update", &s));
            return Err(ApiError::invalid(
                "policy.idle_timeout_minutes",
                "use 0",
            ));
            pub const HOST_SUFFIX: &str = "airlock.environment";
            let x = "not an action"; let y = "Path.Thing";
            UserAction::Start => "environment.start",
        "#;
        let found: Vec<String> = dotted_literals(source).into_iter().collect();
        assert_eq!(found, ["environment.start", "project.update"]);
    }

    #[test]
    fn mirror_history_kinds_match_the_source() {
        let import = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../airlock-mirror/src/import.rs")).unwrap();
        let mut actions = BTreeSet::new();
        let mut results = BTreeSet::new();
        for line in import.lines() {
            let value = |prefix: &str| line.trim().strip_prefix(prefix).and_then(|rest| rest.split('"').nth(1)).map(String::from);
            if let Some(a) = value("action:") {
                actions.insert(a);
            }
            if let Some(r) = value("result:").or_else(|| value("record.result =")) {
                results.insert(r);
            }
        }
        assert_eq!(actions, BTreeSet::from([MIRROR_ACTION.to_string()]));
        let catalogued: BTreeSet<String> = MIRROR_RESULTS.iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(results, catalogued);
    }
}
