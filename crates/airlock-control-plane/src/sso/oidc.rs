//! One OpenID Connect provider as a relying party sees it: discovery and keys fetched through
//! the egress guard, the authorization code and device grants, and full ID token checks.
//!
//! Signatures are checked by `jsonwebtoken` (ring underneath); this module only decides which
//! key and which algorithms may be used, and checks the claims against airlock's clock.

use std::collections::HashMap;
use std::time::Duration;

use airlock_egress::config::OidcProvider as ProviderConfig;
use airlock_egress::{EgressGuard, GuardedAsyncClient};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use tokio::sync::{Mutex, RwLock};

use crate::time::Timestamp;

/// Clock difference tolerated between the provider and this server.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Asymmetric signatures only: `none` and the HMAC algorithms (whose "key" would be the
/// client secret, or worse a public key misused as one) are never accepted.
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the identity provider {issuer} ({what}): {message}")]
    Unreachable {
        issuer: String,
        what: &'static str,
        message: String,
    },
    #[error("the identity provider {issuer} answered {what} with something unexpected: {message}")]
    BadAnswer {
        issuer: String,
        what: &'static str,
        message: String,
    },
    #[error("the identity provider refused: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
    #[error("the identity provider does not offer the device authorization grant; sign in with the browser (loopback) flow instead")]
    NoDeviceFlow,
    #[error("cannot set up the identity provider {id}: {message}")]
    Setup { id: String, message: String },
}

/// The parts of the discovery document airlock uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

/// What polling the device grant gave.
pub enum DevicePoll {
    Pending { slow_down: bool },
    IdToken(String),
}

/// The checked claims of an ID token.
#[derive(Clone, Debug)]
pub struct Claims {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    /// Every claim, for the groups claim and the audit record.
    pub all: serde_json::Map<String, Value>,
}

pub struct OidcClient {
    pub config: ProviderConfig,
    client_secret: Option<String>,
    redirect_uri: String,
    http: GuardedAsyncClient,
    discovery: Mutex<Option<Discovery>>,
    keys: RwLock<Vec<Jwk>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("id", &self.config.id)
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = b64url(&rand::random::<[u8; 32]>());
    let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn random_text() -> String {
    b64url(&rand::random::<[u8; 32]>())
}

impl OidcClient {
    /// Builds the guarded HTTP client; nothing is fetched yet (discovery happens on first use,
    /// so a provider that is down does not stop the server from starting).
    pub fn new(
        config: ProviderConfig,
        public_url: &str,
        guard: &EgressGuard,
    ) -> Result<OidcClient, OidcError> {
        let setup = |message: String| OidcError::Setup {
            id: config.id.clone(),
            message,
        };
        let client_secret = match &config.client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        setup(format!(
                            "cannot read client_secret_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let roots = airlock_egress::trust_roots(config.ca_file.as_slice())
            .map_err(|e| setup(e.to_string()))?;
        let http = airlock_egress::async_client(guard, "control-plane-sso")
            .configure(move |mut b| {
                for root in roots {
                    b = b.add_root_certificate(root);
                }
                b.timeout(Duration::from_secs(15))
            })
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let redirect_uri = format!(
            "{}/api/v1/auth/sso/{}/callback",
            public_url.trim_end_matches('/'),
            config.id
        );
        Ok(OidcClient {
            config,
            client_secret,
            redirect_uri,
            http,
            discovery: Mutex::new(None),
            keys: RwLock::new(Vec::new()),
        })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    fn unreachable(&self, what: &'static str, e: impl std::fmt::Display) -> OidcError {
        OidcError::Unreachable {
            issuer: self.config.issuer.clone(),
            what,
            message: e.to_string(),
        }
    }

    fn bad_answer(&self, what: &'static str, message: impl Into<String>) -> OidcError {
        OidcError::BadAnswer {
            issuer: self.config.issuer.clone(),
            what,
            message: message.into(),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &str,
    ) -> Result<T, OidcError> {
        let response = self
            .http
            .get(url)
            .map_err(|e| self.unreachable(what, e))?
            .send()
            .await
            .map_err(|e| self.unreachable(what, airlock_egress::EgressError::from(e)))?;
        if !response.status().is_success() {
            return Err(self.bad_answer(what, format!("HTTP {} from {url}", response.status())));
        }
        response
            .json()
            .await
            .map_err(|e| self.bad_answer(what, e.to_string()))
    }

    /// The discovery document, fetched once and kept; its issuer must be the configured one.
    pub async fn discovery(&self) -> Result<Discovery, OidcError> {
        let mut cached = self.discovery.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let found: Discovery = self.get_json("discovery", &url).await?;
        if found.issuer != self.config.issuer {
            return Err(self.bad_answer("discovery", format!("its issuer is {:?}, but sso.providers.issuer is {:?}; set issuer exactly as the provider names itself", found.issuer, self.config.issuer)));
        }
        *cached = Some(found.clone());
        Ok(found)
    }

    async fn fetch_keys(&self) -> Result<(), OidcError> {
        let jwks_uri = self.discovery().await?.jwks_uri;
        let set: JwkSet = self.get_json("JWKS", &jwks_uri).await?;
        tracing::info!(provider = %self.config.id, keys = set.keys.len(), "fetched the provider's signing keys");
        *self.keys.write().await = set.keys;
        Ok(())
    }

    /// The key with `kid`, fetching the key set again when it is not known (key rotation).
    /// Only ID tokens this server got from the token endpoint reach here, so a made-up `kid`
    /// cannot be used to make it fetch over and over.
    async fn key_for(&self, kid: Option<&str>) -> Result<Jwk, OidcError> {
        let pick = |keys: &[Jwk]| -> Option<Jwk> {
            match kid {
                Some(kid) => keys
                    .iter()
                    .find(|k| k.common.key_id.as_deref() == Some(kid))
                    .cloned(),
                None if keys.len() == 1 => keys.first().cloned(),
                None => None,
            }
        };
        if let Some(key) = pick(&self.keys.read().await) {
            return Ok(key);
        }
        self.fetch_keys().await?;
        pick(&self.keys.read().await).ok_or_else(|| {
            OidcError::InvalidToken(format!(
                "it is signed with key {kid:?}, which the provider's key set does not hold"
            ))
        })
    }

    /// The URL that sends the browser to the provider.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> Result<String, OidcError> {
        let d = self.discovery().await?;
        let mut url = airlock_egress::Url::parse(&d.authorization_endpoint)
            .map_err(|e| self.bad_answer("discovery", format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    fn authenticated(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.client_secret {
            Some(secret) => request.basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(secret)),
            ),
            None => request,
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, OidcError> {
        let d = self.discovery().await?;
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        if self.client_secret.is_none() {
            fields.push(("client_id", &self.config.client_id));
        }
        let request = self
            .http
            .post(&d.token_endpoint)
            .map_err(|e| self.unreachable("token", e))?
            .form(&fields);
        let response = self
            .authenticated(request)
            .send()
            .await
            .map_err(|e| self.unreachable("token", airlock_egress::EgressError::from(e)))?;
        let status = response.status();
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| self.bad_answer("token", format!("HTTP {status}: {e}")))?;
        Ok(answer)
    }

    fn id_token_of(&self, answer: TokenAnswer) -> Result<String, OidcError> {
        if let Some(error) = answer.error {
            return Err(OidcError::Refused {
                error,
                description: answer.error_description,
            });
        }
        answer.id_token.ok_or_else(|| {
            self.bad_answer(
                "token",
                "no id_token in the answer (is `openid` in scopes?)",
            )
        })
    }

    /// Trades the authorization code for tokens; returns the ID token (not yet checked).
    pub async fn exchange_code(&self, code: &str, verifier: &str) -> Result<String, OidcError> {
        let answer = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ])
            .await?;
        self.id_token_of(answer)
    }

    pub async fn start_device(&self) -> Result<DeviceAuthorization, OidcError> {
        let d = self.discovery().await?;
        let endpoint = d
            .device_authorization_endpoint
            .ok_or(OidcError::NoDeviceFlow)?;
        let scope = self.config.scopes.join(" ");
        let mut fields = vec![("scope", scope.as_str())];
        if self.client_secret.is_none() {
            fields.push(("client_id", &self.config.client_id));
        }
        let request = self
            .http
            .post(&endpoint)
            .map_err(|e| self.unreachable("device authorization", e))?
            .form(&fields);
        let response = self.authenticated(request).send().await.map_err(|e| {
            self.unreachable("device authorization", airlock_egress::EgressError::from(e))
        })?;
        if !response.status().is_success() {
            let body: Value = response.json().await.unwrap_or_default();
            return Err(OidcError::Refused {
                error: body["error"].as_str().unwrap_or("error").to_string(),
                description: body["error_description"].as_str().map(str::to_string),
            });
        }
        response
            .json()
            .await
            .map_err(|e| self.bad_answer("device authorization", e.to_string()))
    }

    pub async fn poll_device(&self, device_code: &str) -> Result<DevicePoll, OidcError> {
        let answer = self
            .token_request(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
            ])
            .await?;
        match answer.error.as_deref() {
            Some("authorization_pending") => Ok(DevicePoll::Pending { slow_down: false }),
            Some("slow_down") => Ok(DevicePoll::Pending { slow_down: true }),
            _ => Ok(DevicePoll::IdToken(self.id_token_of(answer)?)),
        }
    }

    /// Checks an ID token completely: algorithm allow-list, signature with the provider's key,
    /// issuer, audience (and `azp` when there are several), expiry and issue time against
    /// `now` with [`CLOCK_SKEW`], and the nonce when one was sent.
    pub async fn validate(
        &self,
        id_token: &str,
        nonce: Option<&str>,
        now: Timestamp,
    ) -> Result<Claims, OidcError> {
        let invalid = |m: String| OidcError::InvalidToken(m);
        let header = token_header(id_token).map_err(invalid)?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if alg_name.eq_ignore_ascii_case("none") || alg_name.is_empty() {
            return Err(invalid(
                "it is not signed (alg `none`); only signed ID tokens are accepted".into(),
            ));
        }
        let alg: Algorithm = alg_name
            .parse()
            .map_err(|_| invalid(format!("unknown signature algorithm {alg_name:?}")))?;
        if !ALLOWED_ALGORITHMS.contains(&alg) {
            return Err(invalid(format!("signature algorithm {alg_name} is not allowed (symmetric HS* algorithms never are); the provider must sign ID tokens with RS256, PS256, ES256 or EdDSA")));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let jwk = self.key_for(kid).await?;
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != alg_name {
                return Err(invalid(format!(
                    "key {kid:?} is for {key_alg:?}, but the token says {alg_name}"
                )));
            }
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| invalid(format!("the provider's key {kid:?} is not usable: {e}")))?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        // Expiry is checked below against airlock's clock (the one tests can move).
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "iat"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(id_token, &key, &validation)
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind::*;
                    invalid(match e.kind() {
                        InvalidAudience => format!(
                            "its audience is not this server's client id {:?}",
                            self.config.client_id
                        ),
                        InvalidIssuer => format!("its issuer is not {:?}", self.config.issuer),
                        InvalidSignature => {
                            "its signature does not verify with the provider's key".to_string()
                        }
                        other => format!("{other:?}"),
                    })
                })?;
        let all = data.claims;
        let seconds = |name: &str| all.get(name).and_then(Value::as_u64);
        let now_s = now.0 / 1000;
        let skew = CLOCK_SKEW.as_secs();
        let exp =
            seconds("exp").ok_or_else(|| invalid("`exp` is missing or not a number".into()))?;
        if now_s >= exp + skew {
            return Err(invalid(format!("it expired {} s ago", now_s - exp)));
        }
        let iat =
            seconds("iat").ok_or_else(|| invalid("`iat` is missing or not a number".into()))?;
        if iat > now_s + skew {
            return Err(invalid(
                "it was issued in the future (check both clocks)".into(),
            ));
        }
        if all.get("aud").is_some_and(Value::is_array)
            && all["aud"].as_array().is_some_and(|a| a.len() > 1)
            && all.get("azp").and_then(Value::as_str) != Some(&self.config.client_id)
        {
            return Err(invalid(
                "it has several audiences and `azp` is not this server's client id".into(),
            ));
        }
        if let Some(expected) = nonce {
            if all.get("nonce").and_then(Value::as_str) != Some(expected) {
                return Err(invalid(
                    "its nonce is not the one this sign-in sent (a replayed or mixed-up token)"
                        .into(),
                ));
            }
        }
        let text = |name: &str| all.get(name).and_then(Value::as_str).map(str::to_string);
        Ok(Claims {
            sub: text("sub").ok_or_else(|| invalid("`sub` is missing".into()))?,
            email: text("email").map(|e| e.to_lowercase()),
            email_verified: all
                .get("email_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name: text("name").or_else(|| text("preferred_username")),
            acr: text("acr"),
            amr: string_list(all.get("amr")),
            all,
        })
    }

    /// Where to send the browser to end the provider's session too, when it offers that.
    pub async fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        after: &str,
    ) -> Option<String> {
        let endpoint = self.discovery().await.ok()?.end_session_endpoint?;
        let mut url = airlock_egress::Url::parse(&endpoint).ok()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.config.client_id)
                .append_pair("post_logout_redirect_uri", after);
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
        }
        Some(url.into())
    }
}

/// `application/x-www-form-urlencoded` of a client id or secret, as RFC 6749 §2.3.1 wants
/// them before Basic authentication.
fn form_encode(text: &str) -> String {
    airlock_egress::Url::parse_with_params("x:", &[("v", text)])
        .map(|u| u.query().unwrap_or("v=")[2..].to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// The decoded JOSE header, read by hand so `alg: none` gets its own clear refusal.
fn token_header(token: &str) -> Result<HashMap<String, Value>, String> {
    let first = token.split('.').next().unwrap_or_default();
    if token.split('.').count() != 3 {
        return Err("it is not a compact JWT (three dot-separated parts)".into());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| "its header is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "its header is not JSON".to_string())
}

/// A claim that holds one string or a list of them.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}
