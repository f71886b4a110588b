//! Subcommands. Each module owns one verb's clap definition and its wiring.

use std::process::ExitCode;

use clap::Subcommand;

mod admin;
mod bundle;
mod control_plane;
mod keygen;
mod mirror;
mod output;

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
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen(args) => keygen::run(args),
        Command::Bundle(command) => bundle::run(command),
        Command::Mirror(command) => mirror::run(command),
        Command::ControlPlane(command) => control_plane::run(command),
        Command::Admin(args) => admin::run(args),
    }
}
