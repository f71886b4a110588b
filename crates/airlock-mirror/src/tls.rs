//! TLS for `mirror serve`: an internal CA and a server certificate naming every mirrored
//! upstream host plus the mirror's own names (`mirror tls issue`), and the rustls
//! configuration that serves it.
//!
//! Clients with compiled-in hosts (VS Code, JetBrains tools, container engines) reach the
//! mirror through split-horizon DNS; they accept it because the site installs the CA
//! certificate in their trust store. Issuing again in the same folder reuses the CA, so
//! adding a name never means redistributing the CA.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use crate::adapters::hosts::MIRRORED_HOSTS;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";

const CA_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable CA {what}: {message}; move it away to create a new CA")]
    BadCa { path: PathBuf, what: &'static str, message: String },
    #[error("{path} exists but {missing} does not; keep both files of the CA together, or remove both to create a new CA")]
    HalfCa { path: PathBuf, missing: PathBuf },
    #[error("`{0}` is not a valid DNS name for a certificate")]
    BadName(String),
    #[error("creating the certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot serve TLS with certificate {cert} and key {key}: {message}")]
    Load { cert: PathBuf, key: PathBuf, message: String },
}

/// What `issue` wrote.
#[derive(Debug)]
pub struct Issued {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// True when an existing CA in the folder signed the new certificate.
    pub reused_ca: bool,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// The DNS names a server certificate gets: every mirrored upstream host, then the
/// mirror's own names (deduplicated, lowercase).
pub fn certificate_names(own_names: &[String]) -> Result<Vec<String>, TlsError> {
    let mut names: Vec<String> = Vec::new();
    for name in MIRRORED_HOSTS.iter().map(|(h, _)| h.to_string()).chain(own_names.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())) {
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && (label == "*" || label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err(TlsError::BadName(name));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Creates (or reuses) the CA in `out` and issues a server certificate for every mirrored
/// host plus `own_names` and `ips`, valid for `days`.
pub fn issue(out: &Path, own_names: &[String], ips: &[IpAddr], days: u32) -> Result<Issued, TlsError> {
    let dns_names = certificate_names(own_names)?;
    fs::create_dir_all(out).map_err(|source| TlsError::Write { path: out.to_path_buf(), source })?;
    let (ca_cert_path, ca_key_path) = (out.join(CA_CERT), out.join(CA_KEY));
    let now = time::OffsetDateTime::now_utc();

    // Signing needs the issuer as a certificate object. For an existing CA, re-signing its
    // subject with its key gives one whose name and key identifier match the CA
    // certificate clients trust.
    let (ca_pem, ca_key, issuer, reused_ca) = match (ca_cert_path.exists(), ca_key_path.exists()) {
        (true, true) => {
            let read = |path: &Path| fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source });
            let (cert_pem, key_pem) = (read(&ca_cert_path)?, read(&ca_key_path)?);
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| TlsError::BadCa { path: ca_key_path.clone(), what: "key", message: e.to_string() })?;
            let params = CertificateParams::from_ca_cert_pem(&cert_pem)
                .map_err(|e| TlsError::BadCa { path: ca_cert_path.clone(), what: "certificate", message: e.to_string() })?;
            let issuer = params.self_signed(&key)?;
            (cert_pem, key, issuer, true)
        }
        (false, false) => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, "airlock mirror internal CA");
            params.distinguished_name.push(DnType::OrganizationName, "airlock");
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(CA_DAYS);
            let cert = params.self_signed(&key)?;
            write_file(&ca_key_path, key.serialize_pem().as_bytes(), true)?;
            write_file(&ca_cert_path, cert.pem().as_bytes(), false)?;
            (cert.pem(), key, cert, false)
        }
        (true, false) => return Err(TlsError::HalfCa { path: ca_cert_path, missing: ca_key_path }),
        (false, true) => return Err(TlsError::HalfCa { path: ca_key_path, missing: ca_cert_path }),
    };
    let mut params = CertificateParams::new(dns_names.clone())?;
    params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let common_name = own_names.first().cloned().unwrap_or_else(|| "airlock mirror".to_string());
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "airlock");
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer, &ca_key)?;

    let (server_cert, server_key) = (out.join(SERVER_CERT), out.join(SERVER_KEY));
    write_file(&server_key, key.serialize_pem().as_bytes(), true)?;
    // The chain: the server certificate, then the CA.
    write_file(&server_cert, format!("{}{}", cert.pem(), ca_pem).as_bytes(), false)?;
    Ok(Issued { ca_cert: ca_cert_path, server_cert, server_key, reused_ca, dns_names, ips: ips.to_vec() })
}

/// Writes a file atomically (temp file + rename); keys are readable by the owner only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".tls-").tempfile_in(dir).map_err(err)?;
    if !secret {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    temp.write_all(bytes).map_err(err)?;
    temp.as_file().sync_all().map_err(err)?;
    temp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The rustls configuration for `serve --tls-cert C --tls-key K` (ring provider, as the
/// control plane uses).
pub async fn server_config(cert: &Path, key: &Path) -> Result<axum_server::tls_rustls::RustlsConfig, TlsError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.map_err(|e| TlsError::Load {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: e.to_string(),
    })
}

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then drains
/// connections for up to ten seconds.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: axum_server::tls_rustls::RustlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    axum_server::from_tcp_rustls(listener, config).handle(handle).serve(app.into_make_service()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_every_mirrored_host_and_reject_bad_ones() {
        let names = certificate_names(&["Mirror.Internal.".into(), "mirror.internal".into()]).unwrap();
        assert!(names.contains(&"update.code.visualstudio.com".to_string()));
        assert!(names.contains(&"mcr.microsoft.com".to_string()));
        assert_eq!(names.iter().filter(|n| *n == "mirror.internal").count(), 1);
        assert!(matches!(certificate_names(&["bad name".into()]), Err(TlsError::BadName(_))));
        assert!(matches!(certificate_names(&["-x.org".into()]), Err(TlsError::BadName(_))));
    }

    #[test]
    fn issuing_again_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = issue(dir.path(), &["mirror.internal".into()], &[], 30).unwrap();
        assert!(!first.reused_ca);
        let ca = fs::read(&first.ca_cert).unwrap();
        let second = issue(dir.path(), &["mirror.internal".into(), "mirror2.internal".into()], &["10.0.0.5".parse().unwrap()], 30).unwrap();
        assert!(second.reused_ca);
        assert_eq!(fs::read(&second.ca_cert).unwrap(), ca, "the CA stays the same");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(dir.path().join(CA_KEY)).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        assert!(matches!(issue(dir.path(), &[], &[], 30), Err(TlsError::HalfCa { .. })));
    }
}
