//! Metrics Prometheus accepts: a running `airlock server` (mirror, control plane, built-in
//! runner) is scraped on every component's endpoint after real work, and Debian's `promtool
//! check metrics` must report no problem in any of them; the Grafana dashboard and the alert
//! rules in deploy/ only use metrics the components export, and the rules pass `promtool
//! check rules` and their unit tests.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_control_plane::client::{Client, Method};
use airlock_testkit::wait_for;
use common::{airlock, ok, Sample};
use serde_json::{json, Value};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn promtool() -> Command {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool is missing: run scripts/install-deps.sh (Debian package `prometheus`)"
    );
    Command::new("promtool")
}

/// `promtool check metrics` on `text`: its complaints (empty when it accepts the text).
fn promtool_problems(text: &str) -> String {
    let mut child = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said
    } else {
        format!("exit {:?}: {said}", out.status.code())
    }
}

/// Names of the metrics an exposition declares (with `_bucket`, `_sum` and `_count` for
/// histograms), whether or not they have samples yet.
fn declared_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for declaration in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = declaration.split_once(' ').unwrap();
        names.insert(name.to_string());
        if kind == "histogram" {
            names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
        }
    }
    names
}

/// The value of the sample written exactly as `series` (name and labels as exposed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Every `airlock_…` metric name a PromQL expression uses.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("airlock_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

struct Server {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

#[test]
fn every_component_serves_metrics_that_promtool_accepts() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(airlock()
        .args(["mirror", "import"])
        .arg(&bundle)
        .arg("--trusted-key")
        .arg(sample.path("key.pub"))
        .arg("--data-dir")
        .arg(&data));
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mirror]\nlisten = \"127.0.0.1:0\"\n[control_plane]\nlisten = \"127.0.0.1:0\"\nkek_files = [\"{}\"]\n\
             [runner]\nssh_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nuid_base = 4100000\n[egress]\nallow = [\"git.acme.internal\"]\n",
            data.display(),
            dir.path().join("kek").display()
        ),
    )
    .unwrap();
    let mut child = airlock()
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server { child, dir };
    let (mut cp, mut mirror, mut runner) = (String::new(), String::new(), String::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("control plane listening on ") {
            cp = u.to_string();
        }
        if let Some(u) = line.strip_prefix("mirror listening on http://") {
            mirror = u.to_string();
        }
        if let Some(u) = line.strip_prefix("runner metrics listening on ") {
            runner = u.to_string();
        }
        if line == "airlock server ready" {
            break;
        }
    }
    let log = || std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
    assert!(
        !cp.is_empty() && !mirror.is_empty() && !runner.is_empty(),
        "{}",
        log()
    );

    // Real work for every component: two environments that run (the second from the image
    // cache), one whose repository is outside egress.allow (refused by the runner's guard).
    let token = std::fs::read_to_string(data.join("control-plane/owner-token")).unwrap();
    let api = Client::new(&cp, Some(token.trim().to_string()), None).unwrap();
    let call = |m: Method, p: &str, b: Option<&Value>| {
        api.call(m, p, &[], b)
            .unwrap_or_else(|e| panic!("{p}: {e}\n{}", log()))
    };
    let class = call(
        Method::POST,
        "/api/v1/classes",
        Some(
            &json!({"name": "small", "resources": {"cpu_millis": 500, "memory_mib": 128, "disk_gib": 1, "pids": 64}}),
        ),
    );
    let project = |name: &str, repository: &str| {
        call(
            Method::POST,
            "/api/v1/projects",
            Some(&json!({
                "name": name, "repository_url": repository,
                "image": format!("{mirror}/devcontainers/base:tiny"), "class_id": class["id"],
            })),
        )["id"]
            .clone()
    };
    let empty = project("empty", "");
    let outside = project("outside", "https://github.com/example/repo.git");
    let mut ids = Vec::new();
    for (project, phase) in [
        (&empty, "running"),
        (&empty, "running"),
        (&outside, "failed"),
    ] {
        let env = call(
            Method::POST,
            "/api/v1/environments",
            Some(&json!({"project_id": project})),
        );
        let id = env["id"].as_str().unwrap().to_string();
        wait_for(
            &format!("environment {id} {phase}"),
            Duration::from_secs(120),
            || {
                let v = call(Method::GET, &format!("/api/v1/environments/{id}"), None);
                if v["phase"] == phase {
                    Ok(())
                } else {
                    Err(v.to_string())
                }
            },
        );
        ids.push(id);
    }

    let http = reqwest::blocking::Client::new();
    let scrape = |url: &str| {
        let response = http.get(url).send().unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{url}: {content_type}"
        );
        response.text().unwrap()
    };
    let mirror_text = scrape(&format!("http://{mirror}/metrics"));
    let runner_text = wait_for(
        "the runner's view of its two running environments",
        Duration::from_secs(30),
        || {
            let text = scrape(&runner);
            if value(&text, "airlock_runner_environments_running") == 2.0 {
                Ok(text)
            } else {
                Err(text)
            }
        },
    );
    let cp_text = api.call_text(Method::GET, "/metrics", &[], None).unwrap();

    for (component, text) in [
        ("mirror", &mirror_text),
        ("control plane", &cp_text),
        ("runner", &runner_text),
    ] {
        let problems = promtool_problems(text);
        assert_eq!(
            problems, "",
            "promtool check metrics on the {component}'s metrics:\n{problems}\n{text}"
        );
    }

    // The numbers say what happened.
    assert_eq!(
        value(&cp_text, r#"airlock_environments{phase="running"}"#),
        2.0
    );
    assert_eq!(
        value(&cp_text, r#"airlock_environments{phase="failed"}"#),
        1.0
    );
    assert_eq!(value(&cp_text, r#"airlock_runners{phase="active"}"#), 1.0);
    assert_eq!(
        value(
            &cp_text,
            r#"airlock_environment_start_duration_seconds_count{trigger="create"}"#
        ),
        2.0
    );
    assert!(
        value(
            &cp_text,
            r#"airlock_http_requests_total{method="POST",route="/api/v1/environments",status="201"}"#
        ) >= 3.0
    );
    assert_eq!(value(&runner_text, "airlock_runner_capacity"), 10.0);
    assert_eq!(
        value(
            &runner_text,
            r#"airlock_runner_image_pulls_total{cache="miss"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &runner_text,
            r#"airlock_runner_image_pulls_total{cache="hit"}"#
        ),
        // The second environment; the refused one fails at its clone, before any pull
        // (the repository's devcontainer.json may choose the image).
        1.0
    );
    assert!(value(&runner_text, "airlock_runner_image_downloaded_bytes_total") > 0.0);
    assert_eq!(
        value(&runner_text, "airlock_runner_egress_refusals_total"),
        1.0
    );
    assert!(
        value(
            &mirror_text,
            r#"airlock_mirror_requests_total{family="oci",status="2xx"}"#
        ) >= 1.0
    );
    assert!(value(&mirror_text, "airlock_mirror_bytes_served_total") > 0.0);

    // Every expression of the dashboard and the alert rules uses metrics that exist.
    let exported: BTreeSet<String> = [&mirror_text, &cp_text, &runner_text]
        .into_iter()
        .flat_map(|t| declared_names(t))
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("deploy/grafana/airlock.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for panel in panels {
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel without targets: {panel}"));
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let used = metrics_in(expr);
            assert!(!used.is_empty(), "{expr}");
            for name in used {
                assert!(
                    exported.contains(&name),
                    "dashboard panel {:?} uses {name}, which no component exports",
                    panel["title"]
                );
            }
        }
    }
    let rules = std::fs::read_to_string(repo_file("deploy/prometheus/airlock-rules.yml")).unwrap();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        for name in metrics_in(line) {
            assert!(
                exported.contains(&name),
                "alert rule `{}` uses {name}, which no component exports",
                line.trim()
            );
        }
    }

    for id in ids {
        call(Method::DELETE, &format!("/api/v1/environments/{id}"), None);
        wait_for(
            &format!("environment {id} deleted"),
            Duration::from_secs(60),
            || {
                let v = call(Method::GET, &format!("/api/v1/environments/{id}"), None);
                if v["phase"] == "deleted" {
                    Ok(())
                } else {
                    Err(v.to_string())
                }
            },
        );
    }
    let mut server = server;
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert!(
        server.child.wait().unwrap().success(),
        "server stops cleanly on SIGTERM"
    );
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let out = promtool()
        .args(["check", "rules"])
        .arg(repo_file("deploy/prometheus/airlock-rules.yml"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.contains("SUCCESS"), "{said}");
    let out = promtool()
        .args(["test", "rules"])
        .arg(repo_file("deploy/prometheus/airlock-rules.test.yml"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.contains("SUCCESS"), "{said}");
}
