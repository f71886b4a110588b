//! The IDEs a project's environments get from the mirror (docs/ide.md), and the words shared
//! by the runner, the control plane and the CLI about them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the runner mounts into (and starts in) each environment of the project. Everything
/// named here must be on the mirror; a missing piece is named in the environment's events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdeSettings {
    /// VS Code commits (40 hex; the second line of `code --version`) whose server is mounted
    /// where Remote-SSH looks for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vscode_commits: Vec<String>,
    /// Extensions (`publisher.name` or `publisher.name@version`) installed from the mirror,
    /// with their dependencies and packs, before the environment reports `running`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// code-server version, started on the environment's loopback for the browser IDE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_server: Option<String>,
    /// JetBrains backend for Gateway, `name@version` as the mirror carries it
    /// (`goland@2024.3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetbrains: Option<String>,
}

impl IdeSettings {
    pub fn is_empty(&self) -> bool {
        self == &IdeSettings::default()
    }

    /// Checks every field's shape; the error names the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        for commit in &self.vscode_commits {
            if !is_commit(commit) {
                return Err(format!("ide.vscode_commits: `{commit}` is not a 40-hex commit (the second line of `code --version`)"));
            }
        }
        for ext in &self.extensions {
            let (id, version) = ext.split_once('@').unwrap_or((ext, ""));
            let ok_id = id
                .split_once('.')
                .is_some_and(|(p, n)| is_plain(p) && is_plain(n));
            if !ok_id || !(version.is_empty() || is_plain(version)) {
                return Err(format!(
                    "ide.extensions: `{ext}` is not `publisher.name` or `publisher.name@version`"
                ));
            }
        }
        if let Some(v) = self.code_server.as_deref().filter(|v| !is_plain(v)) {
            return Err(format!("ide.code_server: `{v}` is not a version"));
        }
        if let Some(jb) = &self.jetbrains {
            if !jb
                .split_once('@')
                .is_some_and(|(n, v)| is_plain(n) && is_plain(v))
            {
                return Err(format!(
                    "ide.jetbrains: `{jb}` is not `name@version` (e.g. goland@2024.3)"
                ));
            }
        }
        Ok(())
    }
}

/// The port code-server listens on inside the environment (loopback only).
pub const CODE_SERVER_PORT: u16 = 13337;

/// The lines an offline manifest needs to carry a VS Code server (or CLI) build.
pub fn vscode_manifest_lines(commit: &str, platform: &str) -> String {
    format!("[[vscode_server]]\nquality = \"stable\"\ncommit = \"{commit}\"\nplatforms = [\"{platform}\"]")
}

pub fn is_commit(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        && !s.starts_with(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_field_by_field() {
        let good = IdeSettings {
            vscode_commits: vec!["0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2".into()],
            extensions: vec!["ms-python.python".into(), "golang.go@0.41.0".into()],
            code_server: Some("4.96.4".into()),
            jetbrains: Some("goland@2024.3".into()),
        };
        assert!(good.validate().is_ok());
        let cases = [
            (
                IdeSettings {
                    vscode_commits: vec!["main".into()],
                    ..good.clone()
                },
                "vscode_commits",
            ),
            (
                IdeSettings {
                    extensions: vec!["python".into()],
                    ..good.clone()
                },
                "extensions",
            ),
            (
                IdeSettings {
                    extensions: vec!["a.b@1 ; rm".into()],
                    ..good.clone()
                },
                "extensions",
            ),
            (
                IdeSettings {
                    code_server: Some("../x".into()),
                    ..good.clone()
                },
                "code_server",
            ),
            (
                IdeSettings {
                    jetbrains: Some("goland".into()),
                    ..good.clone()
                },
                "jetbrains",
            ),
        ];
        for (bad, field) in cases {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        assert!(IdeSettings::default().is_empty());
    }
}
