//! `airlock keygen`: a minisign key pair for signing bundles.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use airlock_bundle::{with_suffix, write_key_pair};

#[derive(clap::Args)]
#[command(after_help = "Example:\n  airlock keygen --out keys/release\n  \
    # writes keys/release.key (secret, stays on the connected side) and keys/release.pub\n  \
    # (copy it to the mirror and pass it as --trusted-key). The stock `minisign` tool reads both.")]
pub struct Args {
    /// Base path: writes PATH.key and PATH.pub.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Protect the secret key with a password (asked on the terminal, or taken from
    /// AIRLOCK_KEY_PASSWORD). Without it the key is unencrypted, for automation.
    #[arg(long)]
    password: bool,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let password = if args.password { Some(new_password()?) } else { None };
    let public = write_key_pair(&args.out, password, args.force)?;
    println!(
        "wrote {} (secret: keep it on the connected side) and {} (key id {})",
        with_suffix(&args.out, ".key").display(),
        with_suffix(&args.out, ".pub").display(),
        public.id
    );
    Ok(ExitCode::SUCCESS)
}

fn new_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("AIRLOCK_KEY_PASSWORD") {
        if password.is_empty() {
            bail!("AIRLOCK_KEY_PASSWORD is set but empty");
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password("Password for the new secret key: ")
        .context("cannot read a password from the terminal (set AIRLOCK_KEY_PASSWORD in scripts)")?;
    let second = rpassword::prompt_password("Password (again): ").context("cannot read the password")?;
    if first != second {
        bail!("the two passwords differ");
    }
    if first.is_empty() {
        bail!("an empty password protects nothing: leave out --password for an unencrypted key");
    }
    Ok(first)
}

/// Password for loading a secret key: AIRLOCK_KEY_PASSWORD, else `None` (the key loader
/// asks on the terminal if the key turns out to be encrypted).
pub fn existing_password() -> Option<String> {
    std::env::var("AIRLOCK_KEY_PASSWORD").ok().filter(|p| !p.is_empty())
}
