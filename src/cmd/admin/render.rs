//! Printing API answers: a table of chosen columns for people, the JSON itself for scripts.

use serde_json::Value;

use super::super::output::OutputFormat;

/// Table columns: header and JSON pointer into each item.
pub type Columns = &'static [(&'static str, &'static str)];

pub const USERS: Columns = &[
    ("ID", "/id"),
    ("EMAIL", "/email"),
    ("NAME", "/name"),
    ("ROLE", "/role"),
    ("DISABLED", "/disabled"),
    ("PASSWORD", "/has_password"),
];
pub const TOKENS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("KIND", "/kind"),
    ("EXPIRES", "/expires_at"),
    ("REVOKED", "/revoked_at"),
];
pub const SSH_KEYS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("FINGERPRINT", "/fingerprint"),
];
pub const ORGS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("SITE", "/site"),
    (
        "MAX RUNNING/USER",
        "/policy/max_running_environments_per_user",
    ),
    ("IDLE MIN", "/policy/idle_timeout_minutes"),
];
pub const CLASSES: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("CPU (m)", "/resources/cpu_millis"),
    ("MEMORY MiB", "/resources/memory_mib"),
    ("DISK GiB", "/resources/disk_gib"),
    ("PIDS", "/resources/pids"),
];
pub const PROJECTS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("IMAGE", "/image"),
    ("REPOSITORY", "/repository_url"),
    ("CLASS", "/class_id"),
];
pub const RUNNERS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("PHASE", "/phase"),
    ("ENVS", "/environments"),
    ("CAPACITY", "/capacity"),
    ("LAST HEARTBEAT", "/last_heartbeat"),
];
pub const ENVIRONMENTS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("PHASE", "/phase"),
    ("DESIRED", "/desired_state"),
    ("OWNER", "/owner_id"),
    ("RUNNER", "/runner_id"),
    ("REASON", "/failure_reason"),
];
pub const EVENTS: Columns = &[
    ("TIME", "/time"),
    ("KIND", "/kind"),
    ("MESSAGE", "/message"),
];
pub const SECRETS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("SCOPE", "/scope/kind"),
    ("PROJECT", "/scope/project_id"),
    ("DELIVERY", "/delivery/kind"),
    ("TARGET", "/delivery"),
    ("KEK", "/kek_id"),
];
pub const GIT_CREDENTIALS: Columns = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("HOST", "/delivery/host"),
    ("KIND", "/delivery/kind"),
    ("USERNAME", "/delivery/username"),
    ("UPDATED", "/updated_at"),
];
pub const AUDIT: Columns = &[
    ("SEQ", "/seq"),
    ("TIME", "/time"),
    ("ACTOR", "/actor/name"),
    ("ACTION", "/action"),
    ("SUBJECT", "/subject"),
    ("OUTCOME", "/outcome"),
    ("SOURCE", "/source"),
];

fn cell(item: &Value, pointer: &str) -> String {
    match item.pointer(pointer) {
        // An empty string is "none" too (a queued environment's runner).
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        // A delivery target: the path or variable name.
        Some(Value::Object(o)) => o
            .get("path")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string(),
        Some(other) => other.to_string(),
    }
}

pub fn table(items: &[Value], columns: Columns) -> String {
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|(h, _)| h.to_string()).collect()];
    rows.extend(
        items
            .iter()
            .map(|item| columns.iter().map(|(_, p)| cell(item, p)).collect()),
    );
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{v:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Prints a list (as a table, or a JSON array).
pub fn list(items: &[Value], columns: Columns, format: OutputFormat) {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(items).expect("JSON values print")
        ),
        OutputFormat::Text => print!("{}", table(items, columns)),
    }
}

/// Prints one object (as a one-row table, or JSON).
pub fn one(item: &Value, columns: Columns, format: OutputFormat) {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(item).expect("JSON values print")
        ),
        OutputFormat::Text => print!("{}", table(std::slice::from_ref(item), columns)),
    }
}
