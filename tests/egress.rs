//! `airlock egress check` driven like a user: configuration files in, a report and an exit
//! status out.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// Runs `airlock egress check` on `toml` with `args`, without any AIRLOCK_* variable from
/// the test's own environment.
fn check(dir: &Path, toml: &str, args: &[&str]) -> Output {
    let path = dir.join("airlock.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["egress", "check", "--config"]).arg(&path).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("AIRLOCK_") {
            cmd.env_remove(name);
        }
    }
    cmd.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn the_default_configuration_passes_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(dir.path(), "", &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("egress.allow: empty: only loopback is allowed"), "{text}");
    for listener in ["127.0.0.1:5000", "127.0.0.1:8443", "127.0.0.1:2222", "admin.sock"] {
        assert!(text.contains(listener), "{listener} missing:\n{text}");
    }
    assert!(text.contains("http://127.0.0.1:8443"), "{text}");
    assert!(text.contains("project repository hosts are checked at clone time against egress.allow"), "{text}");
    assert!(text.ends_with("every outbound destination is inside the allow-list\n"), "{text}");
    assert!(!text.contains("OUTSIDE"), "{text}");
    assert!(!text.contains("reachable from the network"), "{text}");
}

#[test]
fn an_external_public_url_fails_until_it_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = "[mirror]\npublic_url = \"https://mirror.example.com\"\n";

    let output = check(dir.path(), mirror, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let flagged = text.split("OUTSIDE THE ALLOW-LIST\n").nth(1).unwrap_or_else(|| panic!("no flag section:\n{text}"));
    assert!(
        flagged.contains("runner -> mirror https://mirror.example.com: mirror.example.com (from mirror.public_url): not in egress.allow"),
        "{text}"
    );
    assert!(flagged.contains("1 outbound destination(s) outside the allow-list"), "{text}");
    assert!(!text.contains("every outbound destination is inside"), "{text}");

    let output = check(dir.path(), &format!("{mirror}[egress]\nallow = [\"mirror.example.com\"]\n"), &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("allowed by mirror.example.com"), "{text}");
    assert!(text.ends_with("every outbound destination is inside the allow-list\n"), "{text}");
}

#[test]
fn json_output_lists_listeners_destinations_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let toml = |url: &str, allow: &str| {
        format!("[control_plane]\nlisten = \"10.20.0.5:8443\"\npublic_url = \"{url}\"\n[egress]\nallow = [{allow}]\n")
    };
    // A name no entry covers, and no address entry that could: refused without a lookup.
    let output = check(dir.path(), &toml("https://cp.acme.internal", "\"git.acme.internal\""), &["--output", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["config"].as_str().unwrap().ends_with("airlock.toml"));
    let cp = report["listeners"].as_array().unwrap().iter().find(|l| l["address"] == "10.20.0.5:8443").unwrap();
    assert_eq!(cp["network_reachable"], true);
    assert_eq!(cp["exposure"], "reachable from the network at 10.20.0.5");
    let outside = report["outside"].as_array().unwrap();
    assert_eq!(outside.len(), 1);
    assert_eq!(outside[0]["host"], "cp.acme.internal");
    assert_eq!(outside[0]["status"], "outside");
    assert!(
        outside[0]["detail"].as_str().unwrap().contains("not in egress.allow (allowed: git.acme.internal)"),
        "{}",
        outside[0]
    );

    // An address inside an address entry.
    let output = check(
        dir.path(),
        &toml("https://10.20.0.5:8443", "\"git.acme.internal\", \"10.20.0.0/16\""),
        &["--output", "json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["ok"], true);
    let entries: Vec<&str> = report["allow"].as_array().unwrap().iter().map(|a| a["entry"].as_str().unwrap()).collect();
    assert_eq!(entries, ["git.acme.internal", "10.20.0.0/16"]);
    let destinations = report["destinations"].as_array().unwrap();
    let cp = destinations.iter().find(|d| d["target"] == "https://10.20.0.5:8443").unwrap();
    assert_eq!((&cp["status"], &cp["detail"]), (&Value::from("allowed"), &Value::from("allowed by 10.20.0.0/16")));
    assert!(destinations.iter().any(|d| d["status"] == "checked_at_use"));

    // A name under a wildcard entry.
    let output = check(dir.path(), &toml("https://cp.acme.internal", "\"*.acme.internal\""), &["--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let cp = report["destinations"].as_array().unwrap().iter().find(|d| d["target"] == "https://cp.acme.internal").unwrap();
    assert_eq!(cp["detail"], "allowed by *.acme.internal");
}

#[test]
fn an_invalid_allow_entry_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(dir.path(), "[egress]\nallow = [\"10.20.0.5/16\"]\n", &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("egress.allow entry \"10.20.0.5/16\" is not valid: the address has bits set beyond the /16 prefix; did you mean 10.20.0.0/16?"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
