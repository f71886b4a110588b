//! `airlock open ENV`: the link that opens an environment in an IDE (docs/ide.md).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use airlock_api::ide::{is_commit, vscode_manifest_lines, CODE_SERVER_PORT};
use airlock_api::{Environment, SshAccess};
use airlock_control_plane::client::{Client, Method};
use anyhow::{bail, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  airlock open backend-dev --vscode --launch\n  airlock open env_0123abcd --jetbrains\n\n\
    Prints the link for the IDE you choose (default --ssh). ENV is an environment id or the\n\
    name of one of your environments. Run `airlock ssh-config --install` once first: every\n\
    link goes through the *.airlock.environment entry it writes."
)]
pub struct Args {
    /// Environment id or name.
    env: String,
    /// VS Code Desktop over Remote-SSH (`vscode://vscode-remote/ssh-remote+HOST/workspace`).
    #[arg(long, group = "ide")]
    vscode: bool,
    /// The browser IDE (code-server) URL.
    #[arg(long, group = "ide")]
    browser: bool,
    /// JetBrains Gateway (`jetbrains-gateway://connect#…`).
    #[arg(long, group = "ide")]
    jetbrains: bool,
    /// The `ssh` command line (the default).
    #[arg(long, group = "ide")]
    ssh: bool,
    /// With --vscode: your VS Code's commit (second line of `code --version`); read from
    /// `code --version` when `code` is on PATH.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// Open the link with xdg-open (needs a desktop session).
    #[arg(long)]
    launch: bool,
    /// The site's IDE domain for --browser links.
    #[arg(
        long,
        env = "AIRLOCK_IDE_DOMAIN",
        default_value = "ide.airlock.internal"
    )]
    ide_domain: String,
    #[arg(long, env = "AIRLOCK_URL", value_name = "URL")]
    url: String,
    #[arg(
        long,
        env = "AIRLOCK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: String,
    #[arg(long, env = "AIRLOCK_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.url, Some(args.token.clone()), args.ca_cert.as_deref())?;
    let env = find(&client, &args.env)?;
    if env.phase != airlock_api::EnvPhase::Running {
        bail!("environment {} ({}) is {}, not running: start it with `airlock admin environments start {}`", env.name, env.id, env.phase.as_str(), env.id);
    }
    let host = format!("{}.airlock.environment", env.id);
    let link = if args.vscode {
        check_vscode_commit(&env, args.commit)?;
        vscode_link(&host)
    } else if args.browser {
        if env.spec.ide.code_server.is_none() {
            bail!("project of {} starts no code-server: an admin sets it with `airlock admin projects update PROJECT --code-server VERSION`", env.name);
        }
        eprintln!(
            "note: the authenticated HTTPS proxy that serves this URL is not built yet (issue #16 §3); until then:\n  \
             ssh -N -L {CODE_SERVER_PORT}:127.0.0.1:{CODE_SERVER_PORT} {host}   and open http://127.0.0.1:{CODE_SERVER_PORT}/"
        );
        browser_url(&env.id, &args.ide_domain)
    } else if args.jetbrains {
        let Some(backend) = env.spec.ide.jetbrains.as_deref() else {
            bail!("project of {} names no JetBrains backend: an admin sets it with `airlock admin projects update PROJECT --jetbrains NAME@VERSION`", env.name);
        };
        let access: SshAccess = serde_json::from_value(client.call(
            Method::GET,
            &format!("/api/v1/environments/{}/ssh", env.id),
            &[],
            None,
        )?)?;
        gateway_link(&access, &env.id, backend)
    } else {
        format!("ssh {host}")
    };
    println!("{link}");
    if args.launch {
        if args.ssh || !(args.vscode || args.browser || args.jetbrains) {
            bail!("--launch opens links; run the ssh line yourself");
        }
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            bail!("--launch needs a desktop session (DISPLAY or WAYLAND_DISPLAY is not set): open the link above yourself");
        }
        let status = Command::new("xdg-open")
            .arg(&link)
            .status()
            .context("cannot run xdg-open (install xdg-utils)")?;
        if !status.success() {
            bail!("xdg-open {link} failed ({status})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// By id, or by name among the caller's environments.
fn find(client: &Client, wanted: &str) -> anyhow::Result<Environment> {
    if wanted.starts_with("env_") {
        let value = client.call(
            Method::GET,
            &format!("/api/v1/environments/{wanted}"),
            &[],
            None,
        )?;
        return Ok(serde_json::from_value(value)?);
    }
    let me = client.call(Method::GET, "/api/v1/auth/whoami", &[], None)?;
    let my_id = me["user"]["id"].as_str().unwrap_or_default().to_string();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "500".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = client.call(Method::GET, "/api/v1/environments", &query, None)?;
        for item in page["items"].as_array().into_iter().flatten() {
            if item["name"] == wanted
                && item["owner_id"] == my_id.as_str()
                && item["phase"] != "deleted"
            {
                return Ok(serde_json::from_value(item.clone())?);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => bail!("you have no environment named `{wanted}` (list them with `airlock admin environments list`)"),
        }
    }
}

/// The client's commit must be one the environment has mounted, or VS Code would try to
/// download its server from the internet.
fn check_vscode_commit(env: &Environment, given: Option<String>) -> anyhow::Result<()> {
    let commit = match given {
        Some(c) => Some(c),
        None => Command::new("code")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|text| text.lines().nth(1).map(str::to_string)),
    };
    let Some(commit) = commit else {
        eprintln!("note: `code` is not on PATH; pass --commit to check your VS Code against the environment's servers");
        return Ok(());
    };
    if !is_commit(&commit) {
        bail!("`{commit}` is not a VS Code commit (40 hex, the second line of `code --version`)");
    }
    if env.spec.ide.vscode_commits.contains(&commit) {
        return Ok(());
    }
    let carried = if env.spec.ide.vscode_commits.is_empty() {
        "none".to_string()
    } else {
        env.spec.ide.vscode_commits.join(", ")
    };
    bail!(
        "your VS Code (commit {commit}) has no server in {}: it carries {carried}. Use a VS Code of a carried commit, \
         or ask the release officer to add to the offline manifest:\n{}\nand an admin to add `--vscode-commit {commit}` to the project",
        env.name,
        vscode_manifest_lines(&commit, "server-linux-x64")
    )
}

fn vscode_link(host: &str) -> String {
    format!("vscode://vscode-remote/ssh-remote+{host}/workspace")
}

/// The form the authenticated proxy (issue #16 §3) will serve: `<port>--<env>.<domain>`.
fn browser_url(env_id: &str, domain: &str) -> String {
    format!(
        "https://{CODE_SERVER_PORT}--{}.{domain}/",
        env_id.replace('_', "-")
    )
}

fn gateway_link(access: &SshAccess, env_id: &str, backend: &str) -> String {
    let (name, version) = backend.split_once('@').unwrap_or((backend, ""));
    format!(
        "jetbrains-gateway://connect#type=ssh&deploy=false&host={}&port={}&user={env_id}&projectPath=%2Fworkspace&idePath=%2Fopt%2Fairlock%2Fide%2Fjetbrains-{name}-{version}",
        access.host, access.port
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_the_environment_host_and_the_workspace() {
        assert_eq!(
            vscode_link("env_a.airlock.environment"),
            "vscode://vscode-remote/ssh-remote+env_a.airlock.environment/workspace"
        );
        assert_eq!(
            browser_url("env_a1", "ide.acme.internal"),
            "https://13337--env-a1.ide.acme.internal/"
        );
    }
}
