//! Subcommands. Each module owns one verb's clap definition and its wiring.

use std::process::ExitCode;

use clap::Subcommand;

mod bundle;
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
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen(args) => keygen::run(args),
        Command::Bundle(command) => bundle::run(command),
        Command::Mirror(command) => mirror::run(command),
    }
}
