//! `mirror serve`: one HTTP(S) listener for every protocol, plus the admin socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use airlock_oci::Digest;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::registry::{PushLimits, Uploads};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing --allow-push over plain HTTP on {listen}: push tokens would cross the network in clear. \
             Serve HTTPS (`mirror serve --tls-cert C --tls-key K`, or mirror.tls_cert and mirror.tls_key in airlock.toml; \
             `airlock mirror tls issue` makes them), listen on a loopback address behind a TLS proxy, or leave pushes off")]
    PlainPushOffLoopback { listen: SocketAddr },
    #[error("cannot create the admin socket {path}: {source}")]
    AdminSocket { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot listen on {listen}: {source}; another process may hold it (`ss -ltnp 'sport = :{}'` shows which), \
         or choose another address with --listen (mirror.listen in airlock.toml)", listen.port()
    )]
    Bind { listen: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct AppState {
    pub store: Store,
    pub uploads: Uploads,
    pub allow_push: bool,
    pub push: PushLimits,
    pub metrics: Metrics,
    /// Facts the protocol adapters derive from stored content, cached by digest.
    pub adapters: crate::adapters::Cache,
}

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub allow_push: bool,
    /// What pushes may write, and how much (`mirror.push_*`).
    pub push: PushLimits,
    /// Certificate chain and key (PEM) to serve HTTPS with, from `mirror tls issue`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    response
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body): (_, Body) = request.into_parts();
    // By Host (mirrored upstreams) and path: the OCI API, or a protocol adapter.
    crate::adapters::route(state, parts, body).await
}

/// The bytes `start..start + len` of a stored blob as a response body, from one mapping of
/// the file (see `mapped`), counted as served.
pub async fn blob_body(state: &Arc<AppState>, digest: &Digest, start: u64, len: u64) -> std::io::Result<Body> {
    let serving = state.clone();
    let digest = *digest;
    let contents = tokio::task::spawn_blocking(move || serving.store.blobs.contents(&digest))
        .await
        .map_err(std::io::Error::other)??;
    let end = start.checked_add(len).filter(|end| *end <= contents.len() as u64).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("blob {digest} is shorter than its recorded size"))
    })?;
    state.metrics.add_bytes_served(len);
    Ok(Body::from(contents.slice(start as usize..end as usize)))
}

/// One structured log line per request, and the request metrics.
async fn access_log(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // HTTP/2 carries the host in the URI's authority rather than a Host header.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let family = crate::adapters::family(&host, &path);
    state.metrics.observe(family, response.status().as_u16(), elapsed);
    tracing::info!(
        target: "airlock::access",
        %method, %path, %host,
        status = response.status().as_u16(),
        micros = (elapsed * 1e6) as u64,
        "request"
    );
    response
}

/// Push tokens travel in every push request: over plain HTTP only on loopback.
pub fn check_push_transport(options: &ServeOptions) -> Result<(), ServeError> {
    if options.allow_push && options.tls.is_none() && !options.listen.ip().is_loopback() {
        return Err(ServeError::PlainPushOffLoopback { listen: options.listen });
    }
    Ok(())
}

/// Serves until the process is interrupted (SIGINT or SIGTERM).
pub async fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    check_push_transport(&options)?;
    // A bad certificate or key fails before anything else starts.
    let tls = match &options.tls {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key).await.map_err(std::io::Error::other)?),
        None => None,
    };
    let store = Store::open(&options.data_dir)?;
    let cleared = store.blobs.clear_staging()?;
    if cleared > 0 {
        tracing::info!(files = cleared, "removed staging files left by an interrupted import");
    }
    let state = Arc::new(AppState {
        store,
        uploads: Uploads::default(),
        allow_push: options.allow_push,
        push: options.push.clone(),
        metrics: Metrics::default(),
        adapters: Default::default(),
    });
    let socket = crate::admin::socket_path(&options.data_dir);
    let admin_listener = crate::admin::bind_socket(&socket).map_err(|source| ServeError::AdminSocket { path: socket.clone(), source })?;
    let admin = tokio::spawn(crate::admin::serve_socket(admin_listener, state.clone()));
    // Abandoned upload sessions end even when no other upload comes to notice them.
    let sweeper = tokio::spawn(crate::registry::expire_uploads(state.clone()));
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Bind { listen: options.listen, source })?;
    ready(listener.local_addr()?);
    let result = match tls {
        Some(config) => {
            let app = router(state).layer(axum::Extension(crate::adapters::Https));
            crate::tls::serve_https(listener, app, config, shutdown_signal()).await
        }
        None => axum::serve(crate::zero_copy::ZeroCopyListener::new(listener), router(state)).with_graceful_shutdown(shutdown_signal()).await,
    };
    admin.abort();
    sweeper.abort();
    let _ = std::fs::remove_file(&socket);
    result.map_err(Into::into)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
