//! `airlock egress check`: every listener and outbound destination of a configuration,
//! checked against `egress.allow`.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_egress::config::Config;
use airlock_egress::report::Report;
use anyhow::Context;

use super::output::{OutputFormat, Table};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the listeners and outbound destinations a configuration gives the high side, and
    /// flag any destination outside egress.allow (exit status 1).
    #[command(after_help = "Example:\n  airlock egress check --config /etc/airlock/airlock.toml\n  \
        airlock egress check --config airlock.toml --output json\n\n\
        Exit status: 0 when every outbound destination is loopback or inside egress.allow, 1 \
        otherwise (or when the configuration cannot be read).")]
    Check(CheckArgs),
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// airlock.toml to read; without it, the defaults. AIRLOCK_* variables apply either way.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    let report = Report::of(&config)?;
    let source = args.config.as_ref().map(|p| p.display().to_string());
    match args.output {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(&report).context("cannot encode the report")?;
            value["config"] = serde_json::json!(source);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Text => print!("{}", text(&report, source.as_deref())),
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn text(report: &Report, source: Option<&str>) -> String {
    let mut out = String::new();
    let allow = if report.allow.is_empty() {
        "empty: only loopback is allowed".to_string()
    } else {
        report.allow.iter().map(|a| a.entry.as_str()).collect::<Vec<_>>().join(", ")
    };
    out.push_str(&format!(
        "configuration: {}\negress.allow: {allow}\n\n",
        source.unwrap_or("defaults (no --config)")
    ));

    out.push_str("Listeners\n");
    if report.listeners.is_empty() {
        out.push_str("  none: every component is disabled\n");
    } else {
        let mut table = Table::new(["COMPONENT", "LISTENER", "ADDRESS", "PROTOCOL", "EXPOSURE"]);
        for l in &report.listeners {
            table.row([l.component.clone(), l.name.clone(), l.address.clone(), l.protocol.clone(), l.exposure.clone()]);
        }
        out.push_str(&table.render("  "));
    }
    let reachable = report.listeners.iter().filter(|l| l.network_reachable).count();
    if reachable > 0 {
        out.push_str(&format!(
            "  note: {reachable} listener(s) reachable from the network (informational: inbound, not egress)\n"
        ));
    }

    out.push_str("\nOutbound destinations\n");
    if report.destinations.is_empty() {
        out.push_str("  none: no enabled component connects out\n");
    } else {
        let mut table = Table::new(["FROM", "DESTINATION", "TARGET", "STATUS", "DETAIL"]);
        for d in &report.destinations {
            table.row([d.from.clone(), d.name.clone(), d.target.clone(), d.status.as_str().to_string(), d.detail.clone()]);
        }
        out.push_str(&table.render("  "));
    }

    if report.ok {
        out.push_str("\nevery outbound destination is inside the allow-list\n");
    } else {
        out.push_str("\nOUTSIDE THE ALLOW-LIST\n");
        for d in &report.outside {
            out.push_str(&format!("  {} -> {} {}: {}\n", d.from, d.name, d.target, d.detail));
        }
        out.push_str(&format!(
            "\n{} outbound destination(s) outside the allow-list: the guard refuses them. Add each to egress.allow in airlock.toml if it is internal, or correct the setting.\n",
            report.outside.len()
        ));
    }
    out
}
