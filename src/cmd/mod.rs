//! Subcommands. Each module owns one verb's clap definition and its wiring.

use std::process::ExitCode;

use clap::Subcommand;

mod admin;
mod bundle;
mod control_plane;
mod demo;
mod docs;
mod egress;
mod keygen;
mod listen;
mod login;
mod manuals;
mod mirror;
mod open;
mod output;
mod progress;
mod runner;
mod server;
mod site;
mod ssh_config;

#[derive(Subcommand)]
pub enum Command {
    /// Create a minisign key pair for signing bundles.
    Keygen(keygen::Args),
    /// Create, verify and inspect signed bundles (the connected side's job).
    #[command(subcommand)]
    Bundle(bundle::Command),
    /// Import bundles and serve their content inside the enclave (the air-gapped side).
    #[command(subcommand)]
    Mirror(mirror::Command),
    /// Run the control plane: users, RBAC, projects, runners, environments, secrets, audit.
    #[command(subcommand, name = "control-plane")]
    ControlPlane(control_plane::Command),
    /// Administer a control plane: `init` a data directory, then drive the API.
    Admin(admin::Args),
    /// Run a runner: environments from mirror images, isolated with runc, reachable over SSH.
    Runner(runner::Args),
    /// Mirror, control plane and a built-in runner in one process (the all-in-one mode).
    Server(server::Args),
    /// The whole chain on this machine: bundle, import, server, project, environment, SSH.
    Demo(demo::Args),
    /// Sign in through the site's identity provider (device authorization grant); the
    /// short-lived token is kept in a 0600 file and refreshed by `airlock admin`.
    Login(login::Args),
    /// Write ssh_config entries so `ssh <env-id>.airlock.environment` reaches your environments.
    #[command(name = "ssh-config")]
    SshConfig(ssh_config::Args),
    /// Print (or --launch) the link that opens an environment in VS Code, the browser, JetBrains Gateway or ssh.
    Open(open::Args),
    /// Generate documents from the live system (`docs accreditation`: the ATO package).
    #[command(subcommand)]
    Docs(docs::Command),
    /// Check what the configuration listens on and connects to against egress.allow.
    #[command(subcommand)]
    Egress(egress::Command),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(manuals::CompletionsArgs),
    /// Write manual pages for every command.
    Man(manuals::ManArgs),
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen(args) => keygen::run(args),
        Command::Bundle(command) => bundle::run(command),
        Command::Mirror(command) => mirror::run(command),
        Command::ControlPlane(command) => control_plane::run(command),
        Command::Admin(args) => admin::run(args),
        Command::Runner(args) => runner::run(args),
        Command::Server(args) => server::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Login(args) => login::run(args),
        Command::SshConfig(args) => ssh_config::run(args),
        Command::Open(args) => open::run(args),
        Command::Docs(command) => docs::run(command),
        Command::Egress(command) => egress::run(command),
        Command::Completions(args) => manuals::completions(args),
        Command::Man(args) => manuals::man(args),
    }
}
