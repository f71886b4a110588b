//! The guarded HTTP clients.
//!
//! Three checks, so that no path reaches a socket unchecked:
//! 1. a DNS hook ([`reqwest::dns::Resolve`]) that refuses names outside `egress.allow` before
//!    any lookup and hands the connector only checked addresses;
//! 2. a check of each request's URL before it is sent ([`GuardedClient`]), because reqwest
//!    does not consult the resolver for URLs whose host is an IP address;
//! 3. a redirect policy that checks every hop the same way.
//!
//! Proxies are off (`no_proxy()`: the high side has no proxy, and `HTTPS_PROXY` in the
//! environment must not turn into a path out), and no built-in root certificates are trusted:
//! a component adds its site CA with [`GuardedClientBuilder::configure`].

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use reqwest::{Method, Url};

use crate::{EgressError, EgressGuard};

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn StdError + Send + Sync>;

/// The host's trust store on Debian and most distributions; a site installs its own CA there
/// (`update-ca-certificates`).
pub const HOST_TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The certificates a high-side client trusts: every one in `ca_files` (PEM bundles), or, when
/// none is named, those of the host's trust store if it exists. Built-in (public) roots are
/// never added: nothing public is reachable from the high side.
pub fn trust_roots(ca_files: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, EgressError> {
    let host = [PathBuf::from(HOST_TRUST_STORE)];
    let files: &[PathBuf] = if ca_files.is_empty() { &host } else { ca_files };
    let mut roots = Vec::new();
    for path in files {
        if ca_files.is_empty() && !path.exists() {
            continue;
        }
        roots.extend(read_ca_file(path)?);
    }
    Ok(roots)
}

/// The CA certificates in one PEM file. A file with none in it is refused, saying what it is
/// instead when that is recognisable (a private key, a minisign key), because passing the wrong
/// file of a set is the usual mistake.
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, EgressError> {
    let failed = |message: String| EgressError::Certificates { path: path.to_path_buf(), message };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        let what = if text.contains("PRIVATE KEY-----") {
            "it is a private key, not a certificate"
        } else if text.starts_with("untrusted comment:") {
            "it is a minisign key (a bundle signer's), not a TLS certificate"
        } else if text.contains("-----BEGIN ") {
            "it holds PEM blocks, but no CERTIFICATE"
        } else {
            "it is not a PEM certificate file"
        };
        return Err(failed(format!("{what}; pass the CA certificate that signed the server's (e.g. the ca.crt `airlock mirror tls issue` wrote)")));
    }
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(format!("not a PEM bundle: {e}")))?;
    if certs.is_empty() {
        return Err(failed("no certificate in it".into()));
    }
    Ok(certs)
}

/// The DNS hook: the guard decides, and the connector gets only checked addresses.
struct GuardResolver {
    guard: EgressGuard,
}

impl Resolve for GuardResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Lookups (and audit writes) block: keep them off the runtime's worker threads.
            let addrs = tokio::task::spawn_blocking(move || guard.resolve(&host, 0))
                .await
                .map_err(|e| Box::new(e) as BoxError)??;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn redirect_policy(guard: EgressGuard) -> Policy {
    Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let error = format!("more than {MAX_REDIRECTS} redirects");
            return attempt.error(error);
        }
        match guard.precheck_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

fn user_agent(component: &str) -> String {
    format!("airlock-{component}/{}", env!("CARGO_PKG_VERSION"))
}

/// A reqwest blocking builder with the DNS hook, the redirect policy and no proxy. It checks
/// names, not IP-literal URLs: prefer [`blocking_client`], which checks every URL too. Settings
/// made on the returned builder after this call can undo the guard (`proxy`, `redirect`,
/// `dns_resolver`, `resolve`): don't.
pub fn client_builder(guard: &EgressGuard) -> reqwest::blocking::ClientBuilder {
    guard_blocking(reqwest::blocking::Client::builder().tls_built_in_root_certs(false), guard.clone())
}

/// The async twin of [`client_builder`], with the same caveat: prefer [`async_client`].
pub fn async_client_builder(guard: &EgressGuard) -> reqwest::ClientBuilder {
    guard_async(reqwest::Client::builder().tls_built_in_root_certs(false), guard.clone())
}

fn guard_blocking(builder: reqwest::blocking::ClientBuilder, guard: EgressGuard) -> reqwest::blocking::ClientBuilder {
    builder
        .no_proxy()
        .redirect(redirect_policy(guard.clone()))
        .dns_resolver(Arc::new(GuardResolver { guard }))
}

fn guard_async(builder: reqwest::ClientBuilder, guard: EgressGuard) -> reqwest::ClientBuilder {
    builder
        .no_proxy()
        .redirect(redirect_policy(guard.clone()))
        .dns_resolver(Arc::new(GuardResolver { guard }))
}

fn http_url(url: &str) -> Result<Url, EgressError> {
    let parsed = Url::parse(url).map_err(|e| EgressError::InvalidUrl { url: url.to_string(), reason: e.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(EgressError::InvalidUrl {
            url: url.to_string(),
            reason: "only http:// and https:// URLs can be requested".into(),
        });
    }
    Ok(parsed)
}

type BlockingStep = Box<dyn FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder>;
type AsyncStep = Box<dyn FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder>;

/// Builds a [`GuardedClient`] for one component. Starts from: no built-in root certificates,
/// a 10 s connect timeout and the user agent `airlock-<component>/<version>`.
pub fn blocking_client(guard: &EgressGuard, component: &str) -> GuardedClientBuilder {
    GuardedClientBuilder { guard: guard.with_component(component), steps: Vec::new() }
}

/// Builds a [`GuardedAsyncClient`] for one component (same defaults as [`blocking_client`]).
pub fn async_client(guard: &EgressGuard, component: &str) -> GuardedAsyncClientBuilder {
    GuardedAsyncClientBuilder { guard: guard.with_component(component), steps: Vec::new() }
}

pub struct GuardedClientBuilder {
    guard: EgressGuard,
    steps: Vec<BlockingStep>,
}

impl GuardedClientBuilder {
    /// Adjusts the reqwest builder (root certificates, timeouts, headers). The guard's
    /// settings (DNS hook, redirect policy, no proxy) are applied after every step, so a step
    /// cannot switch them off.
    pub fn configure(
        mut self,
        step: impl FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder + 'static,
    ) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    pub fn build(self) -> Result<GuardedClient, EgressError> {
        let mut builder = reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(user_agent(self.guard.component()));
        for step in self.steps {
            builder = step(builder);
        }
        let http = guard_blocking(builder, self.guard.clone()).build().map_err(EgressError::Build)?;
        Ok(GuardedClient { http, guard: self.guard })
    }
}

pub struct GuardedAsyncClientBuilder {
    guard: EgressGuard,
    steps: Vec<AsyncStep>,
}

impl GuardedAsyncClientBuilder {
    /// As [`GuardedClientBuilder::configure`].
    pub fn configure(mut self, step: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    pub fn build(self) -> Result<GuardedAsyncClient, EgressError> {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(user_agent(self.guard.component()));
        for step in self.steps {
            builder = step(builder);
        }
        let http = guard_async(builder, self.guard.clone()).build().map_err(EgressError::Build)?;
        Ok(GuardedAsyncClient { http, guard: self.guard })
    }
}

/// A blocking HTTP client whose every request, redirect hop and name lookup is checked
/// against `egress.allow`. The request builders it returns are bound to a checked URL;
/// `send()` errors convert into [`EgressError`] with `?`, a refusal staying a refusal.
#[derive(Clone, Debug)]
pub struct GuardedClient {
    http: reqwest::blocking::Client,
    guard: EgressGuard,
}

impl GuardedClient {
    pub fn guard(&self) -> &EgressGuard {
        &self.guard
    }

    /// A request to `url`, once the URL passed the guard (refused: audited, nothing sent).
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> Result<reqwest::blocking::RequestBuilder, EgressError> {
        let url = http_url(url.as_ref())?;
        self.guard.precheck_url(&url)?;
        Ok(self.http.request(method, url))
    }

    pub fn get(&self, url: impl AsRef<str>) -> Result<reqwest::blocking::RequestBuilder, EgressError> {
        self.request(Method::GET, url)
    }

    pub fn head(&self, url: impl AsRef<str>) -> Result<reqwest::blocking::RequestBuilder, EgressError> {
        self.request(Method::HEAD, url)
    }

    pub fn post(&self, url: impl AsRef<str>) -> Result<reqwest::blocking::RequestBuilder, EgressError> {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: impl AsRef<str>) -> Result<reqwest::blocking::RequestBuilder, EgressError> {
        self.request(Method::PUT, url)
    }

    pub fn delete(&self, url: impl AsRef<str>) -> Result<reqwest::blocking::RequestBuilder, EgressError> {
        self.request(Method::DELETE, url)
    }

    /// Sends a request built elsewhere, after checking its URL.
    pub fn execute(&self, request: reqwest::blocking::Request) -> Result<reqwest::blocking::Response, EgressError> {
        self.guard.precheck_url(request.url())?;
        Ok(self.http.execute(request)?)
    }
}

/// The async twin of [`GuardedClient`]. Use it inside a Tokio runtime.
#[derive(Clone, Debug)]
pub struct GuardedAsyncClient {
    http: reqwest::Client,
    guard: EgressGuard,
}

impl GuardedAsyncClient {
    pub fn guard(&self) -> &EgressGuard {
        &self.guard
    }

    /// A request to `url`, once the URL passed the guard (refused: audited, nothing sent).
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> Result<reqwest::RequestBuilder, EgressError> {
        let url = http_url(url.as_ref())?;
        self.guard.precheck_url(&url)?;
        Ok(self.http.request(method, url))
    }

    pub fn get(&self, url: impl AsRef<str>) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(Method::GET, url)
    }

    pub fn head(&self, url: impl AsRef<str>) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(Method::HEAD, url)
    }

    pub fn post(&self, url: impl AsRef<str>) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: impl AsRef<str>) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(Method::PUT, url)
    }

    pub fn delete(&self, url: impl AsRef<str>) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(Method::DELETE, url)
    }

    /// Sends a request built elsewhere, after checking its URL.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, EgressError> {
        self.guard.precheck_url(request.url())?;
        Ok(self.http.execute(request).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::IpAddr;
    use std::sync::Mutex;

    use super::*;
    use crate::{EgressAudit, EgressRecord, HostResolver};

    struct NoLookups;

    impl HostResolver for NoLookups {
        fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            panic!("looked up {host:?}");
        }
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<EgressRecord>>);

    impl EgressAudit for Recorder {
        fn refused(&self, record: &EgressRecord) {
            self.0.lock().unwrap().push(record.clone());
        }
    }

    #[tokio::test]
    async fn the_dns_hook_refuses_names_before_looking_them_up() {
        let audit = Arc::new(Recorder::default());
        let guard = EgressGuard::from_allow_list(&["git.acme.internal"], audit.clone())
            .unwrap()
            .with_resolver(Arc::new(NoLookups))
            .with_component("mirror");
        let hook = GuardResolver { guard };
        let err = match hook.resolve("example.com".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refused = err.downcast_ref::<EgressError>().expect("an EgressError");
        assert!(refused.is_refused());
        assert!(refused.to_string().starts_with("refused outbound connection to example.com: not in egress.allow"), "{refused}");
        let addrs: Vec<_> = hook.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert_eq!(addrs, ["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()]);
        let records = audit.0.lock().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].component.as_str(), records[0].destination.as_str()), ("mirror", "example.com"));
    }

    #[test]
    fn only_http_urls_are_requested() {
        let guard = EgressGuard::from_allow_list::<&str>(&[], Arc::new(Recorder::default())).unwrap();
        let client = blocking_client(&guard, "test").build().unwrap();
        assert!(matches!(client.get("file:///etc/passwd"), Err(EgressError::InvalidUrl { .. })));
        assert!(matches!(client.get("not a url"), Err(EgressError::InvalidUrl { .. })));
    }

    #[test]
    fn trust_roots_load_named_bundles_and_name_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("airlock-trust-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not-a-certificate.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let missing = dir.join("missing.pem");
        for bad in [&not_pem, &missing] {
            let err = trust_roots(std::slice::from_ref(bad)).unwrap_err().to_string();
            assert!(err.contains(&bad.display().to_string()), "{err}");
        }
        if std::path::Path::new(HOST_TRUST_STORE).exists() {
            assert!(!trust_roots(&[]).unwrap().is_empty(), "without a named file, the host's trust store");
            assert!(!trust_roots(&[PathBuf::from(HOST_TRUST_STORE)]).unwrap().is_empty());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
