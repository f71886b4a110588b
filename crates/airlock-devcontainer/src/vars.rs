//! devcontainer.json variables (`${localEnv:NAME}`, `${containerEnv:NAME:default}`,
//! `${containerWorkspaceFolder}`, ...).
//!
//! "Local" in the spec is the developer's machine running the tool. On airlock the container
//! is made by a runner on the high side, which has no such machine: `${localEnv:…}` becomes its
//! default (or empty) at parse time and is reported as ignored. The container-side variables
//! are known only when the runner makes the environment, so `parse` keeps them and the runner
//! calls [`substitute`] with what it knows.

use std::collections::BTreeMap;

/// What the runner knows when it makes an environment. A variable whose value is `None`
/// (or a `containerEnv` name not in the map, without default) is left as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// The repository checkout on the runner (the spec's `localWorkspaceFolder`).
    pub local_workspace_folder: Option<String>,
    /// Where the repository is inside the container.
    pub container_workspace_folder: Option<String>,
    pub devcontainer_id: Option<String>,
    /// The container's environment (image config + `containerEnv`), for `${containerEnv:…}`.
    pub container_env: BTreeMap<String, String>,
}

fn basename(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Replaces every variable `vars` knows in `text`; the others stay as written.
pub fn substitute(text: &str, vars: &Variables) -> String {
    replace(text, |inner| {
        let (name, arg) = inner
            .split_once(':')
            .map(|(n, a)| (n, Some(a)))
            .unwrap_or((inner, None));
        match (name, arg) {
            ("localWorkspaceFolder", None) => vars.local_workspace_folder.clone(),
            ("localWorkspaceFolderBasename", None) => {
                vars.local_workspace_folder.as_deref().map(basename)
            }
            ("containerWorkspaceFolder", None) => vars.container_workspace_folder.clone(),
            ("containerWorkspaceFolderBasename", None) => {
                vars.container_workspace_folder.as_deref().map(basename)
            }
            ("devcontainerId", None) => vars.devcontainer_id.clone(),
            ("containerEnv", Some(arg)) => {
                let (var, default) = arg
                    .split_once(':')
                    .map(|(v, d)| (v, Some(d)))
                    .unwrap_or((arg, None));
                vars.container_env
                    .get(var)
                    .cloned()
                    .or_else(|| default.map(str::to_string))
            }
            _ => None,
        }
    })
}

/// Replaces `${localEnv:NAME[:default]}` by its default (or nothing), noting each in `ignored`
/// as `property: ${localEnv:NAME}`.
pub(crate) fn drop_local_env(text: String, property: &str, ignored: &mut Vec<String>) -> String {
    if !text.contains("${localEnv:") && !text.contains("${env:") {
        return text;
    }
    replace(&text, |inner| {
        let (name, arg) = inner.split_once(':')?;
        if name != "localEnv" && name != "env" {
            return None;
        }
        let (var, default) = arg.split_once(':').unwrap_or((arg, ""));
        ignored.push(format!("{property}: ${{{name}:{var}}} (no local machine on the high side; replaced by its default `{default}`)"));
        Some(default.to_string())
    })
}

/// Calls `value` with the inside of each `${…}`; `None` keeps the variable as written.
fn replace(text: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let inner = &after[..end];
                match value(inner) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_variables_are_replaced_when_known() {
        let vars = Variables {
            container_workspace_folder: Some("/workspaces/app".into()),
            container_env: BTreeMap::from([("PATH".to_string(), "/usr/bin".to_string())]),
            ..Default::default()
        };
        assert_eq!(
            substitute("${containerWorkspaceFolder}/bin:${containerEnv:PATH} ${containerWorkspaceFolderBasename}", &vars),
            "/workspaces/app/bin:/usr/bin app"
        );
        assert_eq!(
            substitute("${containerEnv:NOPE:fallback}", &vars),
            "fallback"
        );
        // Unknown ones stay as written, as does an unclosed `${`.
        assert_eq!(
            substitute("${devcontainerId} ${containerEnv:NOPE} ${open", &vars),
            "${devcontainerId} ${containerEnv:NOPE} ${open"
        );
    }

    #[test]
    fn local_env_becomes_its_default_and_is_reported() {
        let mut ignored = Vec::new();
        let out = drop_local_env(
            "a=${localEnv:HOME}:${localEnv:X:/opt/x}".into(),
            "containerEnv.A",
            &mut ignored,
        );
        assert_eq!(out, "a=:/opt/x");
        assert_eq!(ignored.len(), 2);
        assert!(
            ignored[0].starts_with("containerEnv.A: ${localEnv:HOME}"),
            "{ignored:?}"
        );
    }
}
