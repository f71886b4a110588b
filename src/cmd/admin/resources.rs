//! `airlock admin <resource> <verb>`: one clap enum per resource, each verb one API call.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use airlock_api::{
    AddSshKey, CreateClass, CreateEnvironment, CreateOrg, CreateProject, CreateRunner,
    CreateSecret, CreateToken, CreateUser, Delivery, EnvEvent, EnvPhase, Environment, IdeSettings, NetworkNarrowing,
    NewOrg, NewRunner, NewToken, PolicyChange,
    Resources, Role, RotateKekResult, SecretScope, SetPassword, SetSecretValue, Task, UpdateClass,
    UpdateOrg, UpdateProject, UpdateRunner, UpdateUser,
};
use airlock_control_plane::client::{Client, Method};
use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use super::names::{resolve, Kind};
use super::render::{self, Columns};
use super::{read_secret, read_stdin_value};
use crate::cmd::output::OutputFormat;

type Done = anyhow::Result<ExitCode>;

fn list(
    client: &Client,
    path: &str,
    query: &[(&str, String)],
    columns: Columns,
    output: OutputFormat,
) -> Done {
    let items = client.list_all(path, query)?;
    render::list(&items, columns, output);
    Ok(ExitCode::SUCCESS)
}

fn show(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
    columns: Columns,
    output: OutputFormat,
) -> Done {
    let value = client.call(method, path, &[], body.as_ref())?;
    render::one(&value, columns, output);
    Ok(ExitCode::SUCCESS)
}

fn delete(client: &Client, path: &str, what: &str) -> Done {
    client.call(Method::DELETE, path, &[], None)?;
    eprintln!("deleted {what}");
    Ok(ExitCode::SUCCESS)
}

/// The JSON of a request body (airlock-api's types leave out the fields not given).
fn body(request: &impl Serialize) -> anyhow::Result<Value> {
    serde_json::to_value(request).context("cannot encode the request")
}

/// An answer read as its airlock-api type, for the fields the text output names.
fn answer<T: DeserializeOwned>(value: &Value, what: &str) -> anyhow::Result<T> {
    T::deserialize(value)
        .with_context(|| format!("unexpected answer from the control plane to {what}"))
}

#[derive(clap::Subcommand)]
pub enum Users {
    /// List users.
    #[command(after_help = "Example:\n  airlock admin users list")]
    List,
    /// Show one user.
    #[command(after_help = "Example:\n  airlock admin users get usr_0190...")]
    Get { id: String },
    /// Create a user; the initial password is asked for (or read with --password-stdin).
    #[command(
        after_help = "Example:\n  airlock admin users create --email dev@acme.internal --role member"
    )]
    Create {
        #[arg(long)]
        email: String,
        /// owner, admin, member or auditor.
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change name, role, or disable/enable a user.
    #[command(
        after_help = "Example:\n  airlock admin users update usr_0190... --role admin\n  airlock admin users update usr_0190... --disabled true"
    )]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        role: Option<Role>,
        #[arg(long)]
        disabled: Option<bool>,
    },
    /// Delete a user (their tokens are revoked).
    #[command(after_help = "Example:\n  airlock admin users delete usr_0190...")]
    Delete { id: String },
    /// Set a password: your own (current one asked if set) or, as an admin, reset someone's.
    #[command(
        after_help = "Example:\n  airlock admin users set-password usr_0190...\n  printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | airlock admin users set-password usr_0190... --password-stdin --current"
    )]
    SetPassword {
        id: String,
        /// Also ask for (read) the current password first; needed for your own when one is set.
        #[arg(long)]
        current: bool,
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn users(client: Client, c: Users, out: OutputFormat) -> Done {
    match c {
        Users::List => list(&client, "/api/v1/users", &[], render::USERS, out),
        Users::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/users/{}", resolve(&client, Kind::User, &id)?),
            None,
            render::USERS,
            out,
        ),
        Users::Create {
            email,
            role,
            name,
            password_stdin,
        } => {
            let password = read_secret(password_stdin, "Initial password: ")?;
            let request = CreateUser {
                email,
                name,
                role,
                password,
            };
            show(
                &client,
                Method::POST,
                "/api/v1/users",
                Some(body(&request)?),
                render::USERS,
                out,
            )
        }
        Users::Update {
            id,
            name,
            role,
            disabled,
        } => {
            let request = UpdateUser {
                name,
                role,
                disabled,
            };
            show(
                &client,
                Method::PATCH,
                &format!("/api/v1/users/{}", resolve(&client, Kind::User, &id)?),
                Some(body(&request)?),
                render::USERS,
                out,
            )
        }
        Users::Delete { id } => delete(&client, &format!("/api/v1/users/{}", resolve(&client, Kind::User, &id)?), &id),
        Users::SetPassword {
            id,
            current,
            password_stdin,
        } => {
            let current = if current {
                Some(read_secret(password_stdin, "Current password: ")?)
            } else {
                None
            };
            let new = read_secret(password_stdin, "New password: ")?;
            let request = SetPassword {
                current_password: current,
                new_password: new,
            };
            client.call(
                Method::PUT,
                &format!("/api/v1/users/{}/password", resolve(&client, Kind::User, &id)?),
                &[],
                Some(&body(&request)?),
            )?;
            eprintln!("password set; other sessions of this user were ended");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Tokens {
    /// List your tokens (never their values).
    #[command(after_help = "Example:\n  airlock admin tokens list")]
    List,
    /// Create a personal access token; prints the token alone on standard output, once.
    #[command(
        after_help = "Example:\n  CI_TOKEN=$(airlock admin tokens create --name ci --expires-in-days 90)"
    )]
    Create {
        #[arg(long)]
        name: String,
        /// 1 to 365; default 30.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke one of your tokens.
    #[command(after_help = "Example:\n  airlock admin tokens revoke tok_0190...")]
    Revoke { id: String },
}

pub fn tokens(client: Client, c: Tokens, out: OutputFormat) -> Done {
    match c {
        Tokens::List => list(&client, "/api/v1/tokens", &[], render::TOKENS, out),
        Tokens::Create {
            name,
            expires_in_days,
        } => {
            let request = CreateToken {
                name,
                expires_in_days,
            };
            let created =
                client.call(Method::POST, "/api/v1/tokens", &[], Some(&body(&request)?))?;
            match out {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&created)?),
                OutputFormat::Text => {
                    let created: NewToken = answer(&created, "the new token")?;
                    let expires = created.info.expires_at.map(|t| t.to_string());
                    eprintln!(
                        "token {} expires {}",
                        created.info.id,
                        expires.unwrap_or_default()
                    );
                    println!("{}", created.token);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Tokens::Revoke { id } => {
            client.call(Method::DELETE, &format!("/api/v1/tokens/{}", resolve(&client, Kind::Token, &id)?), &[], None)?;
            eprintln!("revoked {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(clap::Subcommand)]
pub enum SshKeys {
    /// List your SSH keys.
    #[command(after_help = "Example:\n  airlock admin ssh-keys list")]
    List,
    /// Register a public key (runners put it in your environments' authorized_keys).
    #[command(
        after_help = "Example:\n  airlock admin ssh-keys add --name laptop --key-file ~/.ssh/id_ed25519.pub"
    )]
    Add {
        #[arg(long)]
        name: String,
        /// The `.pub` file.
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
    /// Remove one of your keys.
    #[command(after_help = "Example:\n  airlock admin ssh-keys delete key_0190...")]
    Delete { id: String },
}

pub fn ssh_keys(client: Client, c: SshKeys, out: OutputFormat) -> Done {
    match c {
        SshKeys::List => list(&client, "/api/v1/ssh-keys", &[], render::SSH_KEYS, out),
        SshKeys::Add { name, key_file } => {
            let key = std::fs::read_to_string(&key_file)
                .with_context(|| format!("cannot read {}", key_file.display()))?;
            show(
                &client,
                Method::POST,
                "/api/v1/ssh-keys",
                Some(body(&AddSshKey {
                    name,
                    public_key: key.trim().to_string(),
                })?),
                render::SSH_KEYS,
                out,
            )
        }
        SshKeys::Delete { id } => delete(&client, &format!("/api/v1/ssh-keys/{}", resolve(&client, Kind::SshKey, &id)?), &id),
    }
}

#[derive(clap::Subcommand)]
pub enum GitCredentials {
    /// List your git credentials (hosts and kinds; values are never shown).
    #[command(visible_alias = "ls", after_help = "Example:\n  airlock admin git-credentials list")]
    List,
    /// Store your credential for a git server. Your environments use it for clone, fetch and
    /// push (HTTPS through git's credential-cache socket, SSH through an ssh-agent socket);
    /// it is never written into an environment or onto a runner's disk. The token or private
    /// key comes from --value-file or standard input, never the command line.
    #[command(after_help = "Examples:\n  \
        printf %s \"$GIT_TOKEN\" | airlock admin git-credentials add --host git.site.internal --username ada\n  \
        ssh-keyscan git.site.internal > git.hostkey   # check it against the server's fingerprint\n  \
        airlock admin git-credentials add --host git.site.internal --ssh --known-hosts-file git.hostkey --value-file ~/.ssh/id_ed25519")]
    Add {
        /// The git server as it appears in repository URLs: NAME or NAME:PORT.
        #[arg(long)]
        host: String,
        /// HTTPS: the user name sent with the token.
        #[arg(long, required_unless_present = "ssh", conflicts_with = "ssh")]
        username: Option<String>,
        /// SSH: the value is an OpenSSH private key (ed25519 or ECDSA, no passphrase).
        #[arg(long, requires = "known_hosts_file")]
        ssh: bool,
        /// SSH: the server's host key line(s), as in ~/.ssh/known_hosts; checked strictly.
        #[arg(long, value_name = "FILE")]
        known_hosts_file: Option<PathBuf>,
        #[command(flatten)]
        value: SecretValue,
    },
    /// Delete one of your git credentials; the next git operation in your environments no
    /// longer gets it.
    #[command(visible_alias = "rm", after_help = "Example:\n  airlock admin git-credentials delete git-https-git.site.internal")]
    Delete {
        /// The credential's id or name (from `list`).
        id: String,
    },
}

/// One credential per user, host and kind: its secret name says which.
fn git_credential_name(host: &str, ssh: bool) -> String {
    let kind = if ssh { "ssh" } else { "https" };
    format!("git-{kind}-{}", host.replace(':', "."))
}

fn my_user_id(client: &Client) -> anyhow::Result<String> {
    let me = client.call(Method::GET, "/api/v1/auth/whoami", &[], None)?;
    me["user"]["id"]
        .as_str()
        .map(str::to_string)
        .context("git credentials belong to a user: sign in as yourself (a runner or service token cannot hold them)")
}

pub fn git_credentials(client: Client, c: GitCredentials, out: OutputFormat) -> Done {
    let mine = |client: &Client| -> anyhow::Result<Vec<Value>> {
        Ok(client
            .list_all("/api/v1/secrets", &[])?
            .into_iter()
            .filter(|s| s["scope"]["kind"] == "user" && s["delivery"]["host"].is_string())
            .collect())
    };
    match c {
        GitCredentials::List => {
            render::list(&mine(&client)?, render::GIT_CREDENTIALS, out);
            Ok(ExitCode::SUCCESS)
        }
        GitCredentials::Add { host, username, ssh, known_hosts_file, value } => {
            let delivery = match (ssh, username, known_hosts_file) {
                (true, _, Some(file)) => Delivery::GitSsh {
                    host: host.clone(),
                    known_hosts: std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                },
                (false, Some(username), _) => Delivery::GitHttps { host: host.clone(), username },
                _ => bail!("give --username USER for an HTTPS token, or --ssh --known-hosts-file FILE for an SSH key"),
            };
            let mut value = value.read()?;
            if !ssh {
                // A token file usually ends with a newline that is not part of the token.
                value = value.trim_end_matches(['\r', '\n']).to_string();
            }
            let request = CreateSecret {
                name: git_credential_name(&host, ssh),
                scope: SecretScope::User { user_id: my_user_id(&client)? },
                delivery: Some(delivery),
                value,
            };
            show(&client, Method::POST, "/api/v1/secrets", Some(body(&request)?), render::GIT_CREDENTIALS, out)
        }
        GitCredentials::Delete { id } => {
            let items = mine(&client)?;
            let found = items
                .iter()
                .find(|s| s["id"] == id.as_str() || s["name"] == id.as_str())
                .and_then(|s| s["id"].as_str())
                .with_context(|| format!("you have no git credential `{id}`; `airlock admin git-credentials list` shows yours"))?;
            delete(&client, &format!("/api/v1/secrets/{found}"), &id)
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Orgs {
    /// List orgs (site admins see all).
    #[command(after_help = "Example:\n  airlock admin orgs list")]
    List,
    /// Show one org and its policy.
    #[command(after_help = "Example:\n  airlock admin orgs get org_0190...")]
    Get { id: String },
    /// Create an org with its first owner (site admins); the owner's password is asked for.
    #[command(
        after_help = "Example:\n  airlock admin orgs create --name research --owner-email lead@research.internal"
    )]
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Rename an org or change its policy.
    #[command(
        after_help = "Example:\n  airlock admin orgs update org_0190... --max-running-per-user 3 --idle-timeout-minutes 60"
    )]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Environments a user may have creating, starting or running at once.
        #[arg(long)]
        max_running_per_user: Option<u32>,
        /// Stop running environments idle this long (0: never).
        #[arg(long)]
        idle_timeout_minutes: Option<u32>,
        /// Any --network-allow replaces the org's list as a whole; projects narrow within it.
        #[command(flatten)]
        network: NetworkArgs,
    },
}

pub fn orgs(client: Client, c: Orgs, out: OutputFormat) -> Done {
    match c {
        Orgs::List => list(&client, "/api/v1/orgs", &[], render::ORGS, out),
        Orgs::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/orgs/{}", resolve(&client, Kind::Org, &id)?),
            None,
            render::ORGS,
            out,
        ),
        Orgs::Create {
            name,
            owner_email,
            password_stdin,
        } => {
            let password = read_secret(password_stdin, "Owner's initial password: ")?;
            let request = CreateOrg {
                name,
                owner_email,
                owner_password: password,
                policy: None,
            };
            let created = client.call(Method::POST, "/api/v1/orgs", &[], Some(&body(&request)?))?;
            let created: NewOrg = answer(&created, "the new org")?;
            render::one(&body(&created.org)?, render::ORGS, out);
            Ok(ExitCode::SUCCESS)
        }
        Orgs::Update {
            id,
            name,
            max_running_per_user,
            idle_timeout_minutes,
            network,
        } => {
            let policy = PolicyChange {
                max_running_environments_per_user: max_running_per_user,
                idle_timeout_minutes,
                network: network.setting(),
            };
            let request = UpdateOrg {
                name,
                policy: (policy != PolicyChange::default()).then_some(policy),
            };
            show(
                &client,
                Method::PATCH,
                &format!("/api/v1/orgs/{}", resolve(&client, Kind::Org, &id)?),
                Some(body(&request)?),
                render::ORGS,
                out,
            )
        }
    }
}

#[derive(clap::Args)]
pub struct ClassFields {
    /// CPU in thousandths of a core (2000 = 2 cores).
    #[arg(long)]
    cpu_millis: Option<u32>,
    #[arg(long)]
    memory_mib: Option<u32>,
    #[arg(long)]
    disk_gib: Option<u32>,
    /// Maximum processes.
    #[arg(long)]
    pids: Option<u32>,
}

impl ClassFields {
    /// All four, or none.
    fn resources(&self) -> Option<Resources> {
        Some(Resources {
            cpu_millis: self.cpu_millis?,
            memory_mib: self.memory_mib?,
            disk_gib: self.disk_gib?,
            pids: self.pids?,
        })
    }
}

#[derive(clap::Subcommand)]
pub enum Classes {
    /// List environment classes.
    #[command(after_help = "Example:\n  airlock admin classes list")]
    List,
    /// Show one class.
    #[command(after_help = "Example:\n  airlock admin classes get cls_0190...")]
    Get { id: String },
    /// Create a class (all four resources are required).
    #[command(
        after_help = "Example:\n  airlock admin classes create --name large --cpu-millis 8000 --memory-mib 32768 --disk-gib 100 --pids 4096"
    )]
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        resources: ClassFields,
    },
    /// Rename a class or replace its resources (give all four).
    #[command(
        after_help = "Example:\n  airlock admin classes update cls_0190... --cpu-millis 4000 --memory-mib 8192 --disk-gib 50 --pids 2048"
    )]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        resources: ClassFields,
    },
    /// Delete a class no project uses.
    #[command(after_help = "Example:\n  airlock admin classes delete cls_0190...")]
    Delete { id: String },
}

pub fn classes(client: Client, c: Classes, out: OutputFormat) -> Done {
    match c {
        Classes::List => list(&client, "/api/v1/classes", &[], render::CLASSES, out),
        Classes::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/classes/{}", resolve(&client, Kind::Class, &id)?),
            None,
            render::CLASSES,
            out,
        ),
        Classes::Create { name, resources } => {
            let resources = resources
                .resources()
                .context("give --cpu-millis, --memory-mib, --disk-gib and --pids")?;
            show(
                &client,
                Method::POST,
                "/api/v1/classes",
                Some(body(&CreateClass { name, resources })?),
                render::CLASSES,
                out,
            )
        }
        Classes::Update {
            id,
            name,
            resources,
        } => {
            let request = UpdateClass {
                name,
                resources: resources.resources(),
            };
            show(
                &client,
                Method::PATCH,
                &format!("/api/v1/classes/{}", resolve(&client, Kind::Class, &id)?),
                Some(body(&request)?),
                render::CLASSES,
                out,
            )
        }
        Classes::Delete { id } => delete(&client, &format!("/api/v1/classes/{}", resolve(&client, Kind::Class, &id)?), &id),
    }
}

/// `NAME=COMMAND` for a project task.
fn task(text: &str) -> Result<Task, String> {
    let (name, command) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=COMMAND"))?;
    Ok(Task {
        name: name.to_string(),
        command: command.to_string(),
    })
}

/// The IDEs of a project's environments, from the mirror (docs/ide.md).
#[derive(clap::Args)]
pub struct IdeArgs {
    /// VS Code commit (second line of `code --version`) mounted for Remote-SSH; repeat for more.
    #[arg(long = "vscode-commit")]
    vscode_commits: Vec<String>,
    /// Extension installed before `running`: publisher.name[@version]; repeat for more.
    #[arg(long = "extension")]
    extensions: Vec<String>,
    /// code-server version started on the environment's loopback (browser IDE).
    #[arg(long)]
    code_server: Option<String>,
    /// JetBrains backend for Gateway: name@version as the mirror carries it (goland@2024.3).
    #[arg(long)]
    jetbrains: Option<String>,
}

impl IdeArgs {
    fn settings(self) -> IdeSettings {
        IdeSettings {
            vscode_commits: self.vscode_commits,
            extensions: self.extensions,
            code_server: self.code_server,
            jetbrains: self.jetbrains,
        }
    }
}

/// What an org's or a project's environments may reach on the runner's network
/// (docs/environments.md).
#[derive(clap::Args)]
pub struct NetworkArgs {
    /// Narrow the wider allow-list (the site's, or for a project its org's) to this
    /// destination (host:port, address:port or cidr:port, `/udp` for UDP); repeat for more.
    #[arg(long = "network-allow", value_name = "DESTINATION")]
    allow: Vec<String>,
    /// Drop the narrowing: back to the wider list.
    #[arg(long, conflicts_with = "allow")]
    network_site: bool,
}

impl NetworkArgs {
    /// The setting to send: None when no network option was given.
    fn setting(self) -> Option<NetworkNarrowing> {
        if self.network_site {
            Some(NetworkNarrowing::default())
        } else {
            (!self.allow.is_empty()).then_some(NetworkNarrowing { allow: Some(self.allow) })
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Projects {
    /// List projects.
    #[command(after_help = "Example:\n  airlock admin projects list")]
    List,
    /// Show one project.
    #[command(after_help = "Example:\n  airlock admin projects get prj_0190...")]
    Get { id: String },
    /// Create a project.
    #[command(
        after_help = "Example:\n  airlock admin projects create --name backend \\\n    \
        --repository-url https://git.acme.internal/team/backend.git \\\n    \
        --image mirror.acme.internal:5000/devcontainers/rust:1 --class-id cls_0190... \\\n    \
        --task 'build=cargo build' --task 'test=cargo test' \\\n    \
        --vscode-commit 0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2 --extension rust-lang.rust-analyzer"
    )]
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        repository_url: String,
        /// Devcontainer image on the mirror.
        #[arg(long)]
        image: String,
        #[arg(long)]
        class_id: String,
        /// NAME=COMMAND, run after start; repeat for more.
        #[arg(long = "task", value_parser = task)]
        tasks: Vec<Task>,
        #[command(flatten)]
        ide: IdeArgs,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Change a project (existing environments keep their spec). --task replaces all tasks.
    #[command(
        after_help = "Example:\n  airlock admin projects update prj_0190... --image mirror.acme.internal:5000/devcontainers/rust:2"
    )]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        repository_url: Option<String>,
        #[arg(long)]
        image: Option<String>,
        #[arg(long)]
        class_id: Option<String>,
        #[arg(long = "task", value_parser = task)]
        tasks: Vec<Task>,
        /// Any IDE option replaces the project's IDE settings as a whole.
        #[command(flatten)]
        ide: IdeArgs,
        /// Any --network-allow replaces the project's list as a whole.
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Delete a project with no environments left (its secrets go with it).
    #[command(after_help = "Example:\n  airlock admin projects delete prj_0190...")]
    Delete { id: String },
}

pub fn projects(client: Client, c: Projects, out: OutputFormat) -> Done {
    match c {
        Projects::List => list(&client, "/api/v1/projects", &[], render::PROJECTS, out),
        Projects::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/projects/{}", resolve(&client, Kind::Project, &id)?),
            None,
            render::PROJECTS,
            out,
        ),
        Projects::Create {
            name,
            repository_url,
            image,
            class_id,
            tasks,
            ide,
            network,
        } => {
            let request = CreateProject {
                name,
                repository_url,
                image,
                class_id: resolve(&client, Kind::Class, &class_id)?,
                tasks,
                ide: ide.settings(),
                network: network.setting().unwrap_or_default(),
            };
            show(
                &client,
                Method::POST,
                "/api/v1/projects",
                Some(body(&request)?),
                render::PROJECTS,
                out,
            )
        }
        Projects::Update {
            id,
            name,
            repository_url,
            image,
            class_id,
            tasks,
            ide,
            network,
        } => {
            let ide = ide.settings();
            let request = UpdateProject {
                name,
                repository_url,
                image,
                class_id: class_id.map(|c| resolve(&client, Kind::Class, &c)).transpose()?,
                tasks: (!tasks.is_empty()).then_some(tasks),
                ide: (!ide.is_empty()).then_some(ide),
                network: network.setting(),
            };
            show(
                &client,
                Method::PATCH,
                &format!("/api/v1/projects/{}", resolve(&client, Kind::Project, &id)?),
                Some(body(&request)?),
                render::PROJECTS,
                out,
            )
        }
        Projects::Delete { id } => delete(&client, &format!("/api/v1/projects/{}", resolve(&client, Kind::Project, &id)?), &id),
    }
}

#[derive(clap::Subcommand)]
pub enum Runners {
    /// List runners with phase and load.
    #[command(after_help = "Example:\n  airlock admin runners list")]
    List,
    /// Show one runner.
    #[command(after_help = "Example:\n  airlock admin runners get run_0190...")]
    Get { id: String },
    /// Create a runner; prints its one-time exchange token (valid 24 h) alone on standard
    /// output, for the runner's registration.
    #[command(
        after_help = "Example:\n  EXCHANGE=$(airlock admin runners create --name rack-1 --capacity 10)"
    )]
    Create {
        #[arg(long)]
        name: String,
        /// Most environments it hosts at once.
        #[arg(long)]
        capacity: u32,
    },
    /// Rename a runner or change its capacity.
    #[command(after_help = "Example:\n  airlock admin runners update run_0190... --capacity 20")]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        capacity: Option<u32>,
    },
    /// Delete a runner hosting no environments.
    #[command(after_help = "Example:\n  airlock admin runners delete run_0190...")]
    Delete { id: String },
    /// Issue a new exchange token (the runner's current credential stops working).
    #[command(
        after_help = "Example:\n  EXCHANGE=$(airlock admin runners exchange-token run_0190...)"
    )]
    ExchangeToken { id: String },
}

fn print_exchange(created: &Value, out: OutputFormat) -> Done {
    match out {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(created)?),
        OutputFormat::Text => {
            let created: NewRunner = answer(created, "the exchange token")?;
            eprintln!(
                "runner {} ({}); exchange token valid until {}:",
                created.runner.name, created.runner.id, created.exchange_expires_at
            );
            println!("{}", created.exchange_token);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn runners(client: Client, c: Runners, out: OutputFormat) -> Done {
    match c {
        Runners::List => list(&client, "/api/v1/runners", &[], render::RUNNERS, out),
        Runners::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/runners/{}", resolve(&client, Kind::Runner, &id)?),
            None,
            render::RUNNERS,
            out,
        ),
        Runners::Create { name, capacity } => print_exchange(
            &client.call(
                Method::POST,
                "/api/v1/runners",
                &[],
                Some(&body(&CreateRunner { name, capacity })?),
            )?,
            out,
        ),
        Runners::Update { id, name, capacity } => show(
            &client,
            Method::PATCH,
            &format!("/api/v1/runners/{}", resolve(&client, Kind::Runner, &id)?),
            Some(body(&UpdateRunner { name, capacity })?),
            render::RUNNERS,
            out,
        ),
        Runners::Delete { id } => delete(&client, &format!("/api/v1/runners/{}", resolve(&client, Kind::Runner, &id)?), &id),
        Runners::ExchangeToken { id } => print_exchange(
            &client.call(
                Method::POST,
                &format!("/api/v1/runners/{}/exchange-token", resolve(&client, Kind::Runner, &id)?),
                &[],
                None,
            )?,
            out,
        ),
    }
}

#[derive(clap::Subcommand)]
pub enum Environments {
    /// List environments (members: their own).
    #[command(after_help = "Example:\n  airlock admin environments list --project-id backend")]
    List {
        /// Project id or name.
        #[arg(long)]
        project_id: Option<String>,
        /// Include deleted environments.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Show one environment.
    #[command(after_help = "Example:\n  airlock admin environments get my-backend")]
    Get { id: String },
    /// Create (and start) an environment from a project.
    #[command(
        after_help = "Example:\n  airlock admin environments create --project-id backend --name my-backend --wait"
    )]
    Create {
        /// Project id or name.
        #[arg(long)]
        project_id: String,
        #[arg(long)]
        name: Option<String>,
        /// Use this class (id or name) instead of the project's.
        #[arg(long)]
        class_id: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Start a stopped environment.
    #[command(after_help = "Example:\n  airlock admin environments start my-backend --wait")]
    Start {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Stop an environment.
    #[command(after_help = "Example:\n  airlock admin environments stop my-backend --wait --timeout 5m")]
    Stop {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Delete an environment.
    #[command(after_help = "Example:\n  airlock admin environments delete my-backend --wait")]
    Delete {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Events the runner reported for an environment.
    #[command(after_help = "Example:\n  airlock admin environments events my-backend")]
    Events { id: String },
}

pub fn environments(client: Client, c: Environments, out: OutputFormat) -> Done {
    let env_id = |given: &str| resolve(&client, Kind::Environment, given);
    // One request, then (with --wait) follow the environment to the phase it was asked for.
    let act = |method, path: String, target, wait: Wait| -> Done {
        let answer = client.call(method, &path, &[], None)?;
        finish(&client, answer, target, wait, out)
    };
    match c {
        Environments::List {
            project_id,
            include_deleted,
        } => {
            let project_id = project_id.map(|p| resolve(&client, Kind::Project, &p)).transpose()?;
            let mut query: Vec<(&str, String)> =
                project_id.map(|p| ("project_id", p)).into_iter().collect();
            if include_deleted {
                query.push(("include_deleted", "true".into()));
            }
            list(
                &client,
                "/api/v1/environments",
                &query,
                render::ENVIRONMENTS,
                out,
            )
        }
        Environments::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/environments/{}", env_id(&id)?),
            None,
            render::ENVIRONMENTS,
            out,
        ),
        Environments::Create {
            project_id,
            name,
            class_id,
            wait,
        } => {
            let request = CreateEnvironment {
                project_id: resolve(&client, Kind::Project, &project_id)?,
                name,
                class_id: class_id.map(|c| resolve(&client, Kind::Class, &c)).transpose()?,
            };
            let answer = client.call(
                Method::POST,
                "/api/v1/environments",
                &[],
                Some(&body(&request)?),
            )?;
            finish(&client, answer, EnvPhase::Running, wait, out)
        }
        Environments::Start { id, wait } => act(
            Method::POST,
            format!("/api/v1/environments/{}/start", env_id(&id)?),
            EnvPhase::Running,
            wait,
        ),
        Environments::Stop { id, wait } => act(
            Method::POST,
            format!("/api/v1/environments/{}/stop", env_id(&id)?),
            EnvPhase::Stopped,
            wait,
        ),
        Environments::Delete { id, wait } => act(
            Method::DELETE,
            format!("/api/v1/environments/{}", env_id(&id)?),
            EnvPhase::Deleted,
            wait,
        ),
        Environments::Events { id } => list(
            &client,
            &format!("/api/v1/environments/{}/events", env_id(&id)?),
            &[],
            render::EVENTS,
            out,
        ),
    }
}

#[derive(clap::Args, Clone, Copy)]
pub struct Wait {
    /// Wait until the environment reaches the state asked for, printing its events; exit
    /// non-zero if it fails or the timeout passes.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits: seconds, or a number with s, m or h.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration, requires = "wait")]
    timeout: Duration,
}

/// `90`, `90s`, `5m`, `1h`.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 90, 90s, 5m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Prints the environment an action answered with, after following it to `target` when
/// asked to wait.
fn finish(client: &Client, answer: Value, target: EnvPhase, wait: Wait, out: OutputFormat) -> Done {
    if !wait.wait {
        render::one(&answer, render::ENVIRONMENTS, out);
        return Ok(ExitCode::SUCCESS);
    }
    let env: Environment = self::answer(&answer, "the environment request")?;
    let path = format!("/api/v1/environments/{}", env.id);
    let deadline = Instant::now() + wait.timeout;
    let mut events_seen = 0;
    loop {
        let current = client.call(Method::GET, &path, &[], None)?;
        let state: Environment = self::answer(&current, "the environment")?;
        // Events first, so the last lines before the verdict say what happened.
        let events = client.list_all(&format!("{path}/events"), &[])?;
        for event in events.iter().skip(events_seen) {
            if let Ok(event) = EnvEvent::deserialize(event) {
                eprintln!("{}  {:<10} {}", event.time, event.kind, event.message);
            }
        }
        events_seen = events_seen.max(events.len());
        if state.phase == target {
            render::one(&current, render::ENVIRONMENTS, out);
            return Ok(ExitCode::SUCCESS);
        }
        if state.phase == EnvPhase::Failed {
            render::one(&current, render::ENVIRONMENTS, out);
            bail!(
                "environment {} failed: {}",
                state.id,
                state.failure_reason.as_deref().unwrap_or("no reason given")
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "environment {} is still {} after {}s (waiting for {}); it carries on without \
                 you: `airlock admin environments get {}` shows where it is",
                state.id,
                state.phase.as_str(),
                wait.timeout.as_secs(),
                target.as_str(),
                state.id
            );
        }
        std::thread::sleep(Duration::from_millis(500).min(deadline - Instant::now()));
    }
}

#[derive(clap::Args)]
pub struct SecretValue {
    /// Read the value from this file (default: standard input). Never on the command line.
    #[arg(long, value_name = "FILE")]
    value_file: Option<PathBuf>,
}

impl SecretValue {
    fn read(&self) -> anyhow::Result<String> {
        match &self.value_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display())),
            None => read_stdin_value(),
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Secrets {
    /// List secrets (names and delivery only).
    #[command(after_help = "Example:\n  airlock admin secrets list --project-id prj_0190...")]
    List {
        #[arg(long)]
        project_id: Option<String>,
    },
    /// Show a secret's metadata.
    #[command(after_help = "Example:\n  airlock admin secrets get sec_0190...")]
    Get { id: String },
    /// Create a secret for the org, or for one project (--project-id). The value comes
    /// from --value-file or standard input.
    #[command(after_help = "Examples:\n  \
        printf %s \"$DB_PASSWORD\" | airlock admin secrets create --name db-password --project-id prj_0190... --file-path /run/secrets/db\n  \
        airlock admin secrets create --name npm-token --env-name NPM_TOKEN --value-file ./npm-token")]
    Create {
        #[arg(long)]
        name: String,
        /// Scope the secret to this project (default: the whole org).
        #[arg(long)]
        project_id: Option<String>,
        /// Deliver as a file at this absolute path (default /run/secrets/NAME).
        #[arg(long, conflicts_with = "env_name")]
        file_path: Option<String>,
        /// Deliver as this environment variable instead of a file.
        #[arg(long)]
        env_name: Option<String>,
        #[command(flatten)]
        value: SecretValue,
    },
    /// Replace a secret's value (from --value-file or standard input).
    #[command(
        after_help = "Example:\n  airlock admin secrets set-value sec_0190... --value-file ./new-password"
    )]
    SetValue {
        id: String,
        #[command(flatten)]
        value: SecretValue,
    },
    /// Delete a secret.
    #[command(after_help = "Example:\n  airlock admin secrets delete sec_0190...")]
    Delete { id: String },
    /// Re-wrap every data key with the server's current key-encryption key (site admins).
    #[command(
        after_help = "Example (server started with --kek-file NEW --kek-file OLD):\n  airlock admin secrets rotate-kek\n  \
        # then restart with --kek-file NEW only"
    )]
    RotateKek,
}

pub fn secrets(client: Client, c: Secrets, out: OutputFormat) -> Done {
    match c {
        Secrets::List { project_id } => {
            let project_id = project_id.map(|p| resolve(&client, Kind::Project, &p)).transpose()?;
            let query: Vec<(&str, String)> =
                project_id.map(|p| ("project_id", p)).into_iter().collect();
            list(&client, "/api/v1/secrets", &query, render::SECRETS, out)
        }
        Secrets::Get { id } => show(
            &client,
            Method::GET,
            &format!("/api/v1/secrets/{}", resolve(&client, Kind::Secret, &id)?),
            None,
            render::SECRETS,
            out,
        ),
        Secrets::Create {
            name,
            project_id,
            file_path,
            env_name,
            value,
        } => {
            let scope = match project_id {
                Some(project) => SecretScope::Project {
                    project_id: resolve(&client, Kind::Project, &project)?,
                },
                None => SecretScope::Org,
            };
            let delivery = match (file_path, env_name) {
                (_, Some(name)) => Some(Delivery::Env { name }),
                (Some(path), None) => Some(Delivery::File { path }),
                (None, None) => None,
            };
            let request = CreateSecret {
                name,
                scope,
                delivery,
                value: value.read()?,
            };
            show(
                &client,
                Method::POST,
                "/api/v1/secrets",
                Some(body(&request)?),
                render::SECRETS,
                out,
            )
        }
        Secrets::SetValue { id, value } => show(
            &client,
            Method::PUT,
            &format!("/api/v1/secrets/{}/value", resolve(&client, Kind::Secret, &id)?),
            Some(body(&SetSecretValue {
                value: value.read()?,
            })?),
            render::SECRETS,
            out,
        ),
        Secrets::Delete { id } => delete(&client, &format!("/api/v1/secrets/{}", resolve(&client, Kind::Secret, &id)?), &id),
        Secrets::RotateKek => {
            let r = client.call(Method::POST, "/api/v1/secrets/rotate-kek", &[], None)?;
            match out {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                OutputFormat::Text => {
                    let r: RotateKekResult = answer(&r, "the key rotation")?;
                    println!(
                        "re-wrapped {} data key(s) with {} ({} already current)",
                        r.rewrapped, r.current_kek_id, r.already_current
                    )
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
