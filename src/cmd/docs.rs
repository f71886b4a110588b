//! `airlock docs`: documents generated from the live system.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Generate the accreditation package (OSCAL component definition and SSP draft,
    /// CycloneDX and SPDX SBOMs, tables, evidence, README) from the configuration and the
    /// mirror's and control plane's data, and sign its MANIFEST.sha256 with the site key.
    #[command(after_help = "Examples:\n  \
        airlock docs accreditation --config /etc/airlock/airlock.toml --out /srv/ato/2030-01\n  \
        airlock docs accreditation --data-dir /var/lib/airlock --signing-key site.key --out ato\n\n\
        Check a package with the site's public key:\n  \
        cd ato && minisign -Vm MANIFEST.sha256 -p site.pub && sha256sum -c MANIFEST.sha256\n\n\
        The same state and configuration give byte-identical files; the time in the documents is\n\
        that of the newest import or audit record (or SOURCE_DATE_EPOCH). The control plane must\n\
        not be running (its database allows one process); a running mirror is read through its\n\
        admin socket. OUT is replaced as a whole; it must be new, empty or an earlier package.")]
    Accreditation(AccreditationArgs),
}

#[derive(clap::Args)]
pub struct AccreditationArgs {
    /// Folder to write the package into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Configuration file (airlock.toml); AIRLOCK_* variables apply as for `airlock server`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State folder holding mirror/ and control-plane/ (overrides data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// minisign secret key that signs MANIFEST.sha256 (overrides site.signing_key). A
    /// password-protected key takes AIRLOCK_KEY_PASSWORD or asks on the terminal.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Accreditation(args) => accreditation(args),
    }
}

fn accreditation(args: AccreditationArgs) -> anyhow::Result<ExitCode> {
    if let Some(site) = &args.data_dir {
        airlock_config::SiteDir::new(site).check()?;
    }
    let options = airlock_accreditation::Options {
        config_path: args.config,
        vars: std::env::vars().collect(),
        data_dir: args.data_dir,
        signing_key: args.signing_key,
        key_password: super::keygen::existing_password(),
        out: args.out.clone(),
    };
    let report = airlock_accreditation::generate(&options)
        .with_context(|| format!("cannot generate the accreditation package in {}", args.out.display()))?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if !report.svg_rendered {
        eprintln!("note: Graphviz `dot` is not installed: diagrams/boundary.dot was written without its SVG rendering");
    }
    match &report.signed_by {
        Some(key_id) => println!(
            "wrote {} files to {}; MANIFEST.sha256 signed with key {key_id}",
            report.files.len(),
            report.out.display()
        ),
        None => println!(
            "wrote {} files to {}; MANIFEST.sha256 is NOT signed (no site signing key)",
            report.files.len(),
            report.out.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
