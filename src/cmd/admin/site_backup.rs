//! `airlock admin backup` and `airlock admin restore`: wiring only; the format, encryption
//! and restore live in airlock_control_plane::site_backup.

use std::path::{Path, PathBuf};

use airlock_bundle::{with_suffix, PublicKey, SecretKey, SignatureFile};
use airlock_control_plane::client::{Client, Method};
use airlock_control_plane::site_backup::{self, SiteBackup};
use anyhow::Context;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The encrypted backup to write; its signature goes to FILE.minisig.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The site's backup key: an age X25519 recipient (`age1…`, from `age-keygen -y IDENTITY`).
    #[arg(long, value_name = "AGE_RECIPIENT", env = "AIRLOCK_BACKUP_RECIPIENT")]
    recipient: String,
    /// minisign secret key that signs the backup (the site signing key).
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// airlock.toml to keep in the backup.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file (its signature is read from FILE.minisig).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// age identity file holding the backup key's private half (`age-keygen -o FILE`).
    #[arg(long, value_name = "FILE")]
    identity: PathBuf,
    /// minisign public key of the site signing key the backup must be signed with.
    #[arg(long, value_name = "FILE")]
    trusted_key: PathBuf,
    /// The new site's data folder (its `control-plane/` must be missing or empty).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

pub fn backup(client: &Client, args: BackupArgs) -> anyhow::Result<()> {
    let signer = SecretKey::from_file(&args.signing_key, None)
        .with_context(|| format!("cannot read the signing key {}", args.signing_key.display()))?;
    let config = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let snapshot = client.call(Method::GET, "/api/v1/site/store-snapshot", &[], None)?;
    let snapshot = serde_json::from_value(snapshot)
        .context("the control plane's snapshot does not match this CLI's contract")?;
    let backup = SiteBackup {
        format: site_backup::FORMAT.into(),
        control_plane: snapshot,
        config,
    };
    let (sealed, signature) = site_backup::seal(&backup, &args.recipient, &signer)?;
    write_new(&args.out, &sealed)?;
    write_new(
        &with_suffix(&args.out, ".minisig"),
        signature.text.as_bytes(),
    )?;
    eprintln!(
        "backed up {} store entries (audit chain {} records, head {}) to {}, encrypted to {} and signed by key {}",
        backup.control_plane.entries.len(),
        backup.control_plane.audit_seq,
        backup.control_plane.audit_head,
        args.out.display(),
        args.recipient.trim(),
        signer.id
    );
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let sealed = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let signature_path = with_suffix(&args.input, ".minisig");
    let signature = SignatureFile::from_file(&signature_path).with_context(|| {
        format!(
            "cannot read the backup's signature {}",
            signature_path.display()
        )
    })?;
    let trusted = PublicKey::from_file(&args.trusted_key)
        .with_context(|| format!("cannot read the trusted key {}", args.trusted_key.display()))?;
    let identity = site_backup::read_identity(&args.identity)?;
    let backup = site_backup::open(&sealed, &signature, &trusted, &identity, &args.identity)?;
    let target = super::super::site::component_folder(&args.data_dir, airlock_config::Component::ControlPlane)?;
    let restored = site_backup::restore_control_plane(&backup, &target)?;
    if let Some(config) = &backup.config {
        let path = args.data_dir.join("airlock.toml.restored");
        write_new(&path, config.as_bytes())?;
        eprintln!(
            "the site's configuration is in {}: review data_dir and paths, then use it",
            path.display()
        );
    }
    eprintln!(
        "restored {} store entries into {}; the audit chain verifies ({} records). Start the control plane with the site's KEK files.",
        restored.entries,
        target.display(),
        restored.audit_records
    );
    Ok(())
}

/// Writes a file that must not exist yet (a backup never overwrites another).
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
