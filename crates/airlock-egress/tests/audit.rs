//! The refusal log: one JSON object per line, appended across restarts.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airlock_egress::config::Config;
use airlock_egress::{EgressGuard, EgressRecord, JsonLinesAudit, AUDIT_FILE_NAME};

fn records(path: &std::path::Path) -> Vec<EgressRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

#[test]
fn each_refusal_is_one_json_line_in_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("not-yet-created"),
        egress: airlock_egress::config::Egress { allow: vec!["git.acme.internal".into()] },
        ..Config::default()
    };

    let audit = Arc::new(JsonLinesAudit::in_data_dir(&config.data_dir).unwrap());
    let path = audit.path().to_path_buf();
    assert_eq!(path, config.data_dir.join(AUDIT_FILE_NAME));
    let guard = EgressGuard::from_config(&config, audit).unwrap();

    guard.with_component("runner").check("example.com", 443).unwrap_err();
    guard.with_component("mirror").check_socket_addr("192.0.2.7:5000".parse().unwrap()).unwrap_err();
    guard.check("git.acme.internal", 443).unwrap();
    guard.check("127.0.0.1", 8443).unwrap();

    let written = records(&path);
    assert_eq!(written.len(), 2);
    assert_eq!((written[0].component.as_str(), written[0].destination.as_str()), ("runner", "example.com:443"));
    assert_eq!((written[1].component.as_str(), written[1].destination.as_str()), ("mirror", "192.0.2.7:5000"));
    for record in &written {
        assert!(record.reason.contains("not in egress.allow (allowed: git.acme.internal)"), "{}", record.reason);
        let time = humantime::parse_rfc3339(&record.time).unwrap();
        let age = SystemTime::now().duration_since(time).unwrap();
        assert!(age < Duration::from_secs(300), "{}", record.time);
    }
    // The raw lines carry exactly these fields, for tools reading the file.
    let first: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().lines().next().unwrap()).unwrap();
    let mut keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["component", "destination", "reason", "time"]);

    // A restarted component appends to the same file.
    drop(guard);
    let guard = EgressGuard::from_config(&config, Arc::new(JsonLinesAudit::open(&path).unwrap())).unwrap();
    guard.check_git_url("git@github.com:owner/repo.git").unwrap_err();
    let written = records(&path);
    assert_eq!(written.len(), 3);
    assert_eq!(written[2].destination, "github.com:22");
    assert_eq!(written[2].component, EgressGuard::DEFAULT_COMPONENT);
}

#[test]
fn an_unwritable_log_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let err = JsonLinesAudit::in_data_dir(&blocker).unwrap_err().to_string();
    assert!(err.starts_with("cannot open the egress audit log "), "{err}");
    assert!(err.contains("egress-audit.jsonl"), "{err}");
}

#[test]
fn an_observed_sink_records_the_refusal_and_then_calls_its_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(JsonLinesAudit::in_data_dir(dir.path()).unwrap());
    let path = file.path().to_path_buf();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let observed = airlock_egress::ObservedAudit::new(file, move |record| {
        // The record is on disk before the hook runs.
        assert_eq!(records(&path).last(), Some(record));
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let guard = EgressGuard::from_allow_list(&["git.acme.internal"], Arc::new(observed)).unwrap();
    guard.check("example.com", 443).unwrap_err();
    guard.check("git.acme.internal", 443).unwrap();
    guard.check("127.0.0.1", 80).unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 1, "one refusal, one call");
}
