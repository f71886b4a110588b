//! The `airlock` command: one multi-call binary for every component.
//!
//! This crate holds only the command-line surface (clap definitions, output formatting and
//! wiring); every behaviour lives in the component crates.

mod cmd;
mod environment;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

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

/// The whole command-line definition, for completions and manual pages.
pub fn cli() -> clap::Command {
    Cli::command()
}

fn main() -> ExitCode {
    let args = Cli::parse();
    logging::init(args.log_format);
    environment::warn_unknown_variables(&cli(), std::env::vars());
    match cmd::run(args.command) {
        Ok(code) => code,
        Err(err) => {
            eprint!("{}", describe(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, one per line. A cause whose text the line above already quotes
/// (errors that format their source into their own message) is left out, so nothing is said twice.
fn describe(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}\n");
    let mut said = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !said.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        said = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the bundle: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(Quoting(io)).context("import failed");
        assert_eq!(describe(&err), "error: import failed\n  caused by: cannot read the bundle: no such file\n");
    }

    #[test]
    fn distinct_causes_are_all_shown() {
        let err = anyhow::anyhow!("disk full").context("cannot write the lock").context("bundle lock failed");
        assert_eq!(
            describe(&err),
            "error: bundle lock failed\n  caused by: cannot write the lock\n  caused by: disk full\n"
        );
    }
}
