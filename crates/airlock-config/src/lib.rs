//! The site configuration: one TOML file (`airlock.toml`) read by `airlock server` and by the
//! tools that describe the running system (`airlock egress check`, `airlock docs
//! accreditation`). Every key has a default that keeps everything on loopback and reaches
//! nothing outside; every key can be overridden by an environment variable
//! `AIRLOCK_<SECTION>_<KEY>` (`AIRLOCK_DATA_DIR` for the top-level key). The keys and their
//! defaults are documented in docs/configuration.md.

mod env;
mod site;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use env::{variable_name, variable_names, ENV_PREFIX};
pub use site::{Component, LayoutError, SiteDir};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is not valid: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
    #[error("configuration is not valid: {0}")]
    Invalid(String),
}

/// The whole site configuration. Unknown keys are refused, so a typo is an error rather than
/// a silently ignored setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder holding every component's state: `mirror/`, `control-plane/`, `runner/`.
    pub data_dir: PathBuf,
    pub site: Site,
    pub mirror: Mirror,
    pub control_plane: ControlPlane,
    pub runner: Runner,
    pub egress: Egress,
    pub sso: Sso,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Site {
    /// Name used in generated documents and in the demo's org.
    pub name: String,
    /// minisign secret key that signs generated documents (MANIFEST.sha256 of the
    /// accreditation package). Empty: documents are written unsigned, and say so.
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mirror {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// URL runners and users reach the mirror at; default `http://<listen>`.
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_push: bool,
    /// Repository name prefixes pushes may write to (e.g. `scratch/`). Empty: any name that
    /// no signed bundle uses (imported repositories are always read-only to push).
    pub push_namespaces: Vec<String>,
    /// Largest blob one push upload may write.
    pub push_max_blob_bytes: u64,
    /// An upload session that receives no bytes for this long ends; its partial file is
    /// removed.
    pub push_session_expiry_seconds: u64,
    /// Uploads are refused, or stopped, when the store's free space would fall below this.
    pub push_free_space_reserve_bytes: u64,
    /// Upload sessions one push token may hold open at once.
    pub push_max_sessions_per_token: usize,
    /// minisign public keys whose bundle signatures count at import.
    pub trusted_keys: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed a bundle.
    pub threshold: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlane {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// URL runners and the CLI reach the control plane at; default `http(s)://<listen>`.
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Key-encryption key files; the first wraps new secrets. `airlock server` refuses to
    /// start without one, and refuses one inside `data_dir` (`--kek-file` overrides this).
    pub kek_files: Vec<PathBuf>,
    pub inactive_after_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runner {
    /// Run the built-in runner inside `airlock server`.
    pub enabled: bool,
    pub name: String,
    /// Environments this runner holds at once.
    pub capacity: u32,
    /// The SSH gateway users reach their environments through.
    pub ssh_listen: SocketAddr,
    /// Host name or address written into users' ssh-config for this runner; default the
    /// address of `ssh_listen`.
    pub ssh_public_host: Option<String>,
    /// Where the runner serves its Prometheus metrics (`GET /metrics`); none: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// First host uid of the ranges environments' users are mapped to (65536 per environment).
    pub uid_base: u32,
    pub runc: PathBuf,
    /// Environments' own network under the site's policy (docs/environments.md#network).
    pub network: RunnerNetwork,
}

/// `[runner.network]`: each environment gets an interface on a bridge of the runner, and
/// reaches only what is allowed here; everything else is refused, counted and logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerNetwork {
    /// Off: environments have only their loopback.
    pub enabled: bool,
    /// The runner's bridge, also the name of its nftables tables (one per runner on a host).
    pub bridge: String,
    /// IPv4 network of the environments (the bridge takes the first address).
    pub subnet: String,
    /// Destinations environments may reach: `host:port`, `address:port` or `cidr:port`
    /// (TCP; `…/udp` for UDP). Names are resolved by the runner when an environment starts.
    pub allow: Vec<String>,
    /// The site's DNS servers (IPv4): written to environments' /etc/resolv.conf and allowed
    /// on 53/udp and 53/tcp. Empty: no resolver, names come from `hosts` only.
    pub dns: Vec<String>,
    /// /etc/hosts entries of environments: name = address (or a name the runner resolves),
    /// e.g. `"registry-1.docker.io" = "10.0.0.5"` to have the mirror answer for an upstream.
    pub hosts: std::collections::BTreeMap<String, String>,
    /// Allow the mirror and the control plane the runner uses.
    pub allow_mirror: bool,
}

impl Default for RunnerNetwork {
    fn default() -> Self {
        RunnerNetwork {
            enabled: false,
            bridge: "airlock0".into(),
            subnet: "10.213.0.0/16".into(),
            allow: Vec::new(),
            dns: Vec::new(),
            hosts: Default::default(),
            allow_mirror: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Egress {
    /// Internal destinations high-side components may connect to: host names (exact, or
    /// `*.suffix`) and CIDR blocks. Loopback is always allowed. Everything else is refused
    /// before a socket opens.
    pub allow: Vec<String>,
}

/// Single sign-on with the site's OpenID Connect identity providers (docs/sso.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sso {
    /// Whether email + password logins are accepted. `false` once SSO works: everyone signs in
    /// through a provider, and `airlock admin recover` on the host is the break-glass way in.
    pub local_passwords: bool,
    /// A browser session unused for this long ends.
    pub session_idle_seconds: u64,
    /// A browser or CLI sign-in lasts at most this long, used or not.
    pub session_absolute_seconds: u64,
    /// The providers users may sign in with (only in the file: no `AIRLOCK_*` variables).
    pub providers: Vec<OidcProvider>,
}

/// One OpenID Connect provider (Keycloak realm, ADFS, Entra ID, Okta, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Short name used in URLs (`/api/v1/auth/sso/<id>/start`) and audit records.
    pub id: String,
    /// What the sign-in page calls it; default the id.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The issuer URL exactly as the provider's ID tokens carry it in `iss`; discovery is
    /// read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret (kept out of airlock.toml, which is hashed into the
    /// accreditation baseline). None: a public client (PKCE only).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// PEM CA certificate(s) the provider's TLS certificate chains to; default the host's
    /// trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The ID token claim listing the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Group -> org and role. A user whose groups match no entry cannot sign in.
    #[serde(default)]
    pub mappings: Vec<GroupMapping>,
    /// If not empty, the token's `acr` must be one of these.
    #[serde(default)]
    pub required_acr: Vec<String>,
    /// If not empty, the token's `amr` must contain at least one of these (e.g. "mfa", "otp",
    /// "hwk", "sc").
    #[serde(default)]
    pub required_amr: Vec<String>,
}

/// Members of `group` belong to org `org` (its name) with `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub group: String,
    pub org: String,
    pub role: String,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "groups"].map(String::from).to_vec()
}

fn default_groups_claim() -> String {
    "groups".into()
}

impl Default for Sso {
    fn default() -> Self {
        Sso {
            local_passwords: true,
            session_idle_seconds: 3600,
            session_absolute_seconds: 12 * 3600,
            providers: Vec::new(),
        }
    }
}

impl Sso {
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.session_idle_seconds == 0 || self.session_absolute_seconds == 0 {
            return invalid("sso.session_idle_seconds and sso.session_absolute_seconds must be at least 1".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in &self.providers {
            let at = format!("sso.providers (id {:?})", p.id);
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !id_ok {
                return invalid(format!("{at}: id must be 1-32 lowercase letters, digits or `-`"));
            }
            if !ids.insert(p.id.as_str()) {
                return invalid(format!("{at}: two providers have this id"));
            }
            let loopback = ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|prefix| p.issuer.starts_with(prefix));
            if !p.issuer.starts_with("https://") && !loopback {
                return invalid(format!("{at}: issuer {:?} must be an https:// URL (plain http only on loopback)", p.issuer));
            }
            if p.client_id.is_empty() {
                return invalid(format!("{at}: client_id is empty"));
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                return invalid(format!("{at}: scopes must include \"openid\""));
            }
            if p.mappings.is_empty() {
                return invalid(format!("{at}: no mappings; add [[sso.providers.mappings]] with group, org and role, or nobody can sign in"));
            }
            for m in &p.mappings {
                if !["owner", "admin", "member", "auditor"].contains(&m.role.as_str()) {
                    return invalid(format!("{at}: mapping of group {:?} has role {:?}; use owner, admin, member or auditor", m.group, m.role));
                }
            }
        }
        if !self.local_passwords && self.providers.is_empty() {
            return invalid("sso.local_passwords = false needs at least one [[sso.providers]]; otherwise nobody could sign in".into());
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./airlock-data"),
            site: Site::default(),
            mirror: Mirror::default(),
            control_plane: ControlPlane::default(),
            runner: Runner::default(),
            egress: Egress::default(),
            sso: Sso::default(),
        }
    }
}

impl Default for Site {
    fn default() -> Self {
        Site {
            name: "airlock".into(),
            signing_key: None,
        }
    }
}

impl Default for Mirror {
    fn default() -> Self {
        Mirror {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            allow_push: false,
            push_namespaces: Vec::new(),
            push_max_blob_bytes: 10 << 30,
            push_session_expiry_seconds: 300,
            push_free_space_reserve_bytes: 1 << 30,
            push_max_sessions_per_token: 64,
            trusted_keys: Vec::new(),
            threshold: 1,
        }
    }
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            kek_files: Vec::new(),
            inactive_after_seconds: 90,
        }
    }
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            enabled: true,
            name: "builtin".into(),
            capacity: 10,
            ssh_listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            ssh_public_host: None,
            metrics_listen: None,
            uid_base: 1_000_000,
            runc: PathBuf::from("runc"),
            network: RunnerNetwork::default(),
        }
    }
}

impl Config {
    /// Reads `path` (when given) over the defaults, then applies `AIRLOCK_*` variables from
    /// `vars` (pass `std::env::vars()`), then checks the result.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::parse_file(path)?,
            None => Config::default(),
        };
        env::apply(&mut config, vars)?;
        config.check()?;
        Ok(config)
    }

    pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.mirror.threshold == 0 {
            return Err(ConfigError::Invalid(
                "mirror.threshold must be at least 1".into(),
            ));
        }
        for namespace in &self.mirror.push_namespaces {
            let valid = !namespace.is_empty()
                && !namespace.starts_with('/')
                && namespace
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c));
            if !valid {
                return Err(ConfigError::Invalid(format!(
                    "mirror.push_namespaces: `{namespace}` is not a repository name prefix \
                     (lowercase letters, digits, `._-/`, e.g. \"scratch/\")"
                )));
            }
        }
        if self.mirror.push_max_blob_bytes == 0
            || self.mirror.push_session_expiry_seconds == 0
            || self.mirror.push_max_sessions_per_token == 0
        {
            return Err(ConfigError::Invalid(
                "mirror.push_max_blob_bytes, mirror.push_session_expiry_seconds and mirror.push_max_sessions_per_token must be at least 1".into(),
            ));
        }
        if self.mirror.tls_cert.is_some() != self.mirror.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "mirror.tls_cert and mirror.tls_key go together: set both or neither".into(),
            ));
        }
        if self.control_plane.tls_cert.is_some() != self.control_plane.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "control_plane.tls_cert and control_plane.tls_key go together: set both or neither"
                    .into(),
            ));
        }
        if self.runner.enabled && self.runner.capacity == 0 {
            return Err(ConfigError::Invalid(
                "runner.capacity must be at least 1 (or set runner.enabled = false)".into(),
            ));
        }
        self.sso.check()
    }

    pub fn site(&self) -> SiteDir {
        SiteDir::new(&self.data_dir)
    }

    pub fn mirror_dir(&self) -> PathBuf {
        self.data_dir.join(Component::Mirror.folder())
    }

    pub fn control_plane_dir(&self) -> PathBuf {
        self.data_dir.join(Component::ControlPlane.folder())
    }

    pub fn runner_dir(&self) -> PathBuf {
        self.data_dir.join(Component::Runner.folder())
    }

    pub fn mirror_url(&self) -> String {
        self.mirror.public_url.clone().unwrap_or_else(|| {
            let scheme = if self.mirror.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", self.mirror.listen)
        })
    }

    pub fn control_plane_url(&self) -> String {
        self.control_plane.public_url.clone().unwrap_or_else(|| {
            let scheme = if self.control_plane.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", self.control_plane.listen)
        })
    }

    /// The configuration as canonical JSON (sorted keys): what the accreditation baseline
    /// hashes, so the same settings always give the same hash.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).expect("configuration serializes");
        serde_json::to_string_pretty(&value).expect("json value serializes")
    }
}

#[cfg(test)]
mod sso_tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    const PROVIDER: &str = r#"
[[sso.providers]]
id = "corp"
issuer = "https://idp.acme.internal/realms/acme"
client_id = "airlock"
client_secret_file = "/etc/airlock/oidc-secret"
required_amr = ["mfa"]
[[sso.providers.mappings]]
group = "airlock-admins"
org = "acme"
role = "admin"
"#;

    #[test]
    fn providers_are_read_with_their_defaults() {
        let config = parse(PROVIDER).unwrap();
        let p = &config.sso.providers[0];
        assert_eq!(p.scopes, ["openid", "profile", "email", "groups"]);
        assert_eq!(p.groups_claim, "groups");
        assert_eq!(p.mappings[0].role, "admin");
        assert!(config.sso.local_passwords);
    }

    #[test]
    fn bad_providers_are_refused_saying_what_to_fix() {
        let plain = PROVIDER.replace("https://idp", "http://idp");
        assert!(parse(&plain).unwrap_err().to_string().contains("must be an https:// URL"));
        let role = PROVIDER.replace("\"admin\"", "\"root\"");
        assert!(parse(&role).unwrap_err().to_string().contains("use owner, admin, member or auditor"));
        let twice = format!("{PROVIDER}{PROVIDER}");
        assert!(parse(&twice).unwrap_err().to_string().contains("two providers have this id"));
        let off = "[sso]\nlocal_passwords = false\n";
        assert!(parse(off).unwrap_err().to_string().contains("at least one [[sso.providers]]"));
    }
}
