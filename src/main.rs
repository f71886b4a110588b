//! The `airlock` command: one multi-call binary for every component.
//!
//! This crate holds only the command-line surface (clap definitions, output formatting and
//! wiring); every behaviour lives in the component crates.

mod cmd;
mod logging;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "Cloud development environments for networks with no route to the internet",
    long_about = "airlock carries every artifact a development platform needs across an air gap \
                  in signed bundles, serves them inside the enclave, and runs isolated \
                  development environments from them.",
    propagate_version = true
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, env = "AIRLOCK_LOG_FORMAT")]
    log_format: logging::LogFormat,

    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cmd::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
