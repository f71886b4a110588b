//! `control-plane serve`: opens the data directory, loads the key-encryption keys and
//! serves the API over TLS, or plain HTTP on loopback only.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::{self, App, Config};
use crate::model::SealedValue;
use crate::secrets::{Kek, Keyring, SecretsError};
use crate::store::{keys, Store, StoreError};
use crate::time::Clock;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve plain HTTP on {0}: only loopback addresses may go without TLS; \
         give --tls-cert and --tls-key, or listen on 127.0.0.1"
    )]
    PlainHttpOffLoopback(SocketAddr),
    #[error("give both --tls-cert and --tls-key, or neither")]
    HalfTls,
    #[error("at least one --kek-file is needed (the first is the current key)")]
    NoKek,
    #[error(
        "the key-encryption key {kek} is inside the data directory {data_dir} whose secrets it \
         protects, so every copy or backup of that directory would carry the key too; move it \
         elsewhere (e.g. /etc/airlock/kek, mode 0600) and give that path with --kek-file"
    )]
    KekInDataDir { kek: String, data_dir: String },
    #[error(transparent)]
    Kek(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the data directory {0} is not initialized; run `airlock admin init --data-dir {0} --org NAME --owner EMAIL` first")]
    NotInitialized(String),
    #[error(
        "stored secrets are wrapped by key-encryption key(s) {missing:?} that were not given; \
         add their files as extra --kek-file arguments (then run `airlock admin secrets rotate-kek`)"
    )]
    MissingKeks { missing: Vec<String> },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate {cert} and key {key}: {source}")]
    Tls {
        cert: String,
        key: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The first wraps new data keys; the others are kept to unwrap until rotated away.
    pub kek_files: Vec<PathBuf>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub config: Config,
}

/// Checks the options and opens everything; nothing listens yet.
pub fn prepare(opts: &ServeOptions) -> Result<App, ServeError> {
    if opts.tls.is_none() && !opts.listen.ip().is_loopback() {
        return Err(ServeError::PlainHttpOffLoopback(opts.listen));
    }
    for kek in &opts.kek_files {
        if path_inside(kek, &opts.data_dir) {
            return Err(ServeError::KekInDataDir {
                kek: kek.display().to_string(),
                data_dir: opts.data_dir.display().to_string(),
            });
        }
    }
    let mut keks = opts
        .kek_files
        .iter()
        .map(|p| Kek::from_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    if keks.is_empty() {
        return Err(ServeError::NoKek);
    }
    let current = keks.remove(0);
    let keyring = Keyring::new(current, keks);
    let store = Store::open(&opts.data_dir)?;
    if store.get::<String>(keys::INITIALIZED)?.is_none() {
        return Err(ServeError::NotInitialized(
            opts.data_dir.display().to_string(),
        ));
    }
    let known: Vec<String> = opts
        .kek_files
        .iter()
        .filter_map(|p| Kek::from_file(p).ok())
        .map(|k| k.id().to_string())
        .collect();
    let mut missing: Vec<String> = store
        .scan_all::<SealedValue>("sealed/")?
        .into_iter()
        .map(|(_, s)| s.kek_id)
        .filter(|id| !known.contains(id))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return Err(ServeError::MissingKeks { missing });
    }
    let mut config = opts.config.clone();
    config
        .backup_dir
        .get_or_insert_with(|| opts.data_dir.join("backups"));
    Ok(App::new(store, keyring, Clock::system(), config))
}

/// Whether `path` is `dir` or lies under it, symbolic links and `..` resolved as far as the
/// path exists (the rest need not exist yet).
pub fn path_inside(path: &Path, dir: &Path) -> bool {
    fn resolved(p: &Path) -> PathBuf {
        let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut existing = absolute.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut out = existing
            .canonicalize()
            .unwrap_or_else(|_| existing.to_path_buf());
        for name in rest.iter().rev() {
            out.push(name);
        }
        out
    }
    resolved(path).starts_with(resolved(dir))
}

/// Serves until `shutdown` resolves. `ready` gets the bound address (useful with port 0).
pub async fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if opts
        .tls
        .as_ref()
        .is_some_and(|(c, k)| c.as_os_str().is_empty() || k.as_os_str().is_empty())
    {
        return Err(ServeError::HalfTls);
    }
    let app = prepare(&opts)?;
    let listener = std::net::TcpListener::bind(opts.listen).map_err(|source| ServeError::Bind {
        addr: opts.listen,
        source,
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let sweeper = tokio::spawn(sweep_idle_forever(app.clone()));
    let service = api::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    ready(addr);
    let result = match &opts.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|source| ServeError::Tls {
                    cert: cert.display().to_string(),
                    key: key.display().to_string(),
                    source,
                })?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    sweeper.abort();
    app.store.flush().await?;
    result.map_err(ServeError::Io)
}

async fn sweep_idle_forever(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        // Refused logins of lockouts that ended without another attempt get their summary.
        if let Err(e) = crate::api::audit_refused_logins(&app).await {
            tracing::error!(error = %e, "recording refused logins failed");
        }
        match crate::store::blocking(|| crate::environments::sweep_idle(&app.store, app.now())) {
            Ok(0) => {}
            Ok(n) => {
                if let Err(e) = app.store.flush().await {
                    tracing::error!(error = %e, "flushing after the idle sweep failed");
                }
                tracing::info!(stopped = n, "stopped idle environments");
            }
            Err(e) => tracing::error!(error = %e, "idle sweep failed"),
        }
        if let Some(sso) = &app.config.sso {
            match crate::store::blocking(|| crate::sso::sweep_expired(&app.store, sso.idle, app.now())) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "removed expired single sign-on records"),
                Err(e) => tracing::error!(error = %e, "sweeping expired single sign-on records failed"),
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, for a graceful stop.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
