//! Single sign-on against a real OpenID Connect provider: node's `oidc-provider` (started by
//! airlock-testkit's oidc-provider/provider.mjs on 127.0.0.1), driven through its own login, consent and
//! device pages by an HTTP client with a cookie jar, as a browser would. The control plane
//! runs on a real socket so the provider's redirects reach it.
//!
//! Token-level hostile cases (alg `none`, HS256, a tampered payload) cannot be produced by the
//! provider, so the test edits a real token it issued; wrong audience, expiry and nonce use
//! real tokens as they are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airlock_control_plane::api::{self, App, Config};
use airlock_control_plane::bootstrap;
use airlock_control_plane::secrets::{Kek, Keyring};
use airlock_control_plane::sso::{OidcClient, Sso};
use airlock_control_plane::store::Store;
use airlock_control_plane::time::{Clock, Timestamp};
use airlock_egress::config::{GroupMapping, OidcProvider, Sso as SsoConfig};
use airlock_egress::{EgressGuard, TracingAudit};
use airlock_testkit::oidc::{browser, walk, Idp};
use base64::Engine;
use serde_json::{json, Value};

const CLIENT_SECRET: &str = "airlock-test-client-secret";

/// The control plane on a real socket with SSO configured, the provider, and their files.
struct Site {
    base: String,
    app: App,
    site_token: String,
    idp: Idp,
    users: PathBuf,
    clients: Value,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

fn users_json() -> Value {
    json!({
        "alice": {"email": "alice@acme.internal", "name": "Alice", "groups": ["airlock-admins", "airlock-devs"], "amr": ["pwd", "otp"], "acr": "urn:airlock:mfa"},
        "bob": {"email": "bob@acme.internal", "name": "Bob", "groups": ["airlock-devs"], "amr": ["pwd"], "acr": "urn:airlock:password"},
        "carol": {"email": "carol@acme.internal", "name": "Carol", "groups": ["sales"], "amr": ["pwd", "otp"]},
    })
}

fn provider_config(id: &str, issuer: &str, required_amr: &[&str]) -> OidcProvider {
    OidcProvider {
        id: id.into(),
        display_name: Some(format!("Test IdP ({id})")),
        issuer: issuer.into(),
        client_id: "airlock".into(),
        client_secret_file: None,
        scopes: ["openid", "email", "profile", "groups"]
            .map(String::from)
            .to_vec(),
        ca_file: None,
        groups_claim: "groups".into(),
        mappings: vec![
            GroupMapping {
                group: "airlock-admins".into(),
                org: "acme".into(),
                role: "admin".into(),
            },
            GroupMapping {
                group: "airlock-devs".into(),
                org: "acme".into(),
                role: "member".into(),
            },
        ],
        required_acr: vec![],
        required_amr: required_amr.iter().map(|s| s.to_string()).collect(),
    }
}

impl Site {
    async fn start(local_passwords: bool) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let users = dir.path().join("users.json");
        std::fs::write(&users, users_json().to_string()).unwrap();
        let secret_file = dir.path().join("client-secret");
        std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
        let clients = json!([
            {
                "client_id": "airlock",
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [format!("{base}/api/v1/auth/sso/corp/callback"), format!("{base}/api/v1/auth/sso/corp-mfa/callback")],
                "post_logout_redirect_uris": [format!("{base}/")],
                "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
                "response_types": ["code"],
            },
            {
                "client_id": "other",
                "client_secret": "other-secret",
                "redirect_uris": ["http://127.0.0.1:9/callback"],
                "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
                "response_types": ["code"],
            }
        ]);
        let idp = Idp::start(0, "key-1", &users, &clients);
        let mut corp = provider_config("corp", &idp.issuer, &[]);
        let mut mfa = provider_config("corp-mfa", &idp.issuer, &["otp", "hwk"]);
        corp.client_secret_file = Some(secret_file.clone());
        mfa.client_secret_file = Some(secret_file);
        let settings = SsoConfig {
            local_passwords,
            providers: vec![corp, mfa],
            ..SsoConfig::default()
        };
        // No egress.allow entries: the provider is on loopback, which the guard always allows.
        let guard = EgressGuard::from_allow_list::<&str>(&[], Arc::new(TracingAudit)).unwrap();
        let sso = Sso::new(&settings, &base, &guard).unwrap();
        let store = Store::temporary().unwrap();
        let init =
            bootstrap::init_store(&store, "site", "root@site.internal", Clock::system().now())
                .unwrap();
        let config = Config {
            sso: Some(Arc::new(sso)),
            ..Config::default()
        };
        let app = App::new(
            store,
            Keyring::new(Kek::from_bytes([7; 32]), vec![]),
            Clock::system(),
            config,
        );
        let service = api::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let site = Site {
            base,
            app,
            site_token: init.token,
            idp,
            users,
            clients,
            stop: Some(stop),
            _dir: dir,
        };
        let (status, body) = site
            .api("POST", "/api/v1/orgs", &site.site_token.clone(), Some(json!({"name": "acme", "owner_email": "owner@acme.internal", "owner_password": "correct horse battery"})))
            .await;
        assert_eq!(status, 201, "{body}");
        site
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn whoami(&self, token: &str) -> (u16, Value) {
        self.api("GET", "/api/v1/auth/whoami", token, None).await
    }

    fn set_groups(&self, login: &str, groups: &[&str]) {
        let mut users = users_json();
        let current: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.users).unwrap()).unwrap();
        users[login] = current[login].clone();
        users[login]["groups"] = json!(groups);
        for (k, v) in current.as_object().unwrap() {
            if k != login {
                users[k] = v.clone();
            }
        }
        std::fs::write(&self.users, users.to_string()).unwrap();
    }

    /// Restarts the provider on the same port (same issuer) with a new signing key.
    fn rotate_provider_key(&mut self, kid: &str) {
        let port = self.idp.port();
        self.idp.stop();
        self.idp = Idp::start(port, kid, &self.users, &self.clients);
    }

    /// Audit records of `action` across the site (refusals before an account is known have
    /// no org; `airlock admin audit` on the host reads them the same way).
    async fn audit(&self, action: &str) -> Vec<Value> {
        let filter = airlock_control_plane::audit::Filter {
            action: Some(action.into()),
            ..Default::default()
        };
        let (records, _) =
            airlock_control_plane::audit::query(&self.app.store, &filter, None, 500).unwrap();
        records
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    fn provider(&self, id: &str) -> Arc<OidcClient> {
        self.app.config.sso.as_ref().unwrap().providers[id].clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Signs in with a new browser through provider `provider` as `login`, landing on the
/// session route; returns the browser, the final status and body, and the callback URL.
async fn sign_in(
    site: &Site,
    provider: &str,
    login: &str,
) -> (reqwest::Client, u16, Value, String) {
    let client = browser();
    let start = site.url(&format!(
        "/api/v1/auth/sso/{provider}/start?return_to=/api/v1/auth/session"
    ));
    let (_, status, body, visited) = walk(&client, &start, login).await;
    let callback = visited
        .iter()
        .find(|u| u.contains("/callback?"))
        .cloned()
        .unwrap_or_default();
    (
        client,
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
        callback,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sign_in_provisions_maps_groups_and_logs_out() {
    let site = Site::start(false).await;
    // Passwords are off site-wide: even the right one is refused, and that is audited.
    let (status, body) = site
        .api(
            "POST",
            "/api/v1/auth/login",
            "none",
            Some(json!({"email": "owner@acme.internal", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sign in with your identity provider"));

    // First sign-in: alice is created in acme as admin (her first mapped group).
    let (browser, status, session, callback) = sign_in(&site, "corp", "alice").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], "alice@acme.internal");
    assert_eq!(session["user"]["role"], "admin");
    assert_eq!(session["user"]["has_password"], false);
    let alice_id = session["user"]["id"].as_str().unwrap().to_string();
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    assert!(session["idle_expires_at"].is_string());
    let provisioned = site.audit("user.provision").await;
    assert_eq!(provisioned.len(), 1);
    let logins = site.audit("auth.sso_login").await;
    let detail = logins.last().unwrap()["detail"].as_str().unwrap();
    assert!(
        detail.contains("group airlock-admins -> org acme as admin"),
        "{detail}"
    );
    assert!(detail.contains("amr [\"pwd\", \"otp\"]"), "{detail}");

    // The callback cannot be replayed, not even by the browser that used it.
    let replay = browser.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 401);

    // The cookie works for reads; a state-changing call needs the CSRF token too.
    let no_csrf = browser
        .post(site.url("/api/v1/tokens"))
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let with_csrf = browser
        .post(site.url("/api/v1/tokens"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_csrf.status(), 201);

    // Removed from the admins group: the next sign-in makes her a member, same account.
    site.set_groups("alice", &["airlock-devs"]);
    let (_, status, session, _) = sign_in(&site, "corp", "alice").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        (
            session["user"]["id"].as_str().unwrap(),
            session["user"]["role"].as_str().unwrap()
        ),
        (alice_id.as_str(), "member")
    );
    let detail = site.audit("auth.sso_login").await.last().unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("role admin -> member"), "{detail}");

    // In no mapped group: refused, with the groups in the audit record.
    let (_, status, body, _) = sign_in(&site, "corp", "carol").await;
    assert_eq!(status, 403, "{body}");
    let denied = site.audit("auth.sso_login").await;
    let last = denied.last().unwrap();
    assert_eq!(last["outcome"], "denied");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("groups [\"sales\"]"),
        "{last}"
    );

    // A disabled user stays refused, whatever the provider says.
    let owner_token = {
        let (status, body) = site
            .api("GET", "/api/v1/orgs", &site.site_token, None)
            .await;
        assert_eq!(status, 200);
        let acme = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "acme")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        // The org owner's session comes from the same store (passwords are off).
        owner_session(&site, &acme)
    };
    let (status, body) = site
        .api(
            "PATCH",
            &format!("/api/v1/users/{alice_id}"),
            &owner_token,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, status, body, _) = sign_in(&site, "corp", "alice").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    // ...and her open browser session ends with it.
    let gone = browser
        .get(site.url("/api/v1/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);

    // Logout: bob signs in, logs out (CSRF required), gets the provider's end-session URL,
    // and the cookie no longer works.
    let (bob, status, session, _) = sign_in(&site, "corp", "bob").await;
    assert_eq!(status, 200, "{session}");
    let csrf = session["csrf_token"].as_str().unwrap();
    let out = bob
        .post(site.url("/api/v1/auth/sso/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let out: Value = out.json().await.unwrap();
    let end = out["end_session_url"].as_str().unwrap();
    assert!(
        end.starts_with(&format!("{}/session/end?", site.idp.issuer)),
        "{end}"
    );
    assert!(end.contains("id_token_hint="), "{end}");
    let after = bob
        .get(site.url("/api/v1/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

/// A session token for the org's owner, written into the store (passwords are off here; an
/// admin would use `airlock admin recover` on the host).
fn owner_session(site: &Site, org_id: &str) -> String {
    use airlock_control_plane::model::{TokenKind, User};
    let now = site.app.now();
    site.app
        .store
        .commit(
            now,
            |tx| -> Result<String, airlock_control_plane::store::StoreError> {
                let owner = tx
                    .scan_all::<User>(&format!("o/{org_id}/user/"))?
                    .into_iter()
                    .map(|(_, u)| u)
                    .find(|u| u.email == "owner@acme.internal")
                    .unwrap();
                Ok(airlock_control_plane::auth::issue_token(
                    tx,
                    TokenKind::Personal,
                    org_id,
                    &owner.id,
                    "test",
                    now,
                    Some(Duration::from_secs(3600)),
                )
                .0)
            },
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_is_required_where_configured() {
    let site = Site::start(true).await;
    // bob signed in with a password only: refused by the provider entry that requires MFA...
    let (_, status, body, _) = sign_in(&site, "corp-mfa", "bob").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multi-factor"),
        "{body}"
    );
    let last = site.audit("auth.sso_login").await.last().unwrap().clone();
    assert_eq!(last["outcome"], "denied");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("amr is [\"pwd\"]"),
        "{last}"
    );
    // ...and was never created.
    assert!(site.audit("user.provision").await.is_empty());
    // alice used a one-time password: accepted.
    let (_, status, body, _) = sign_in(&site, "corp-mfa", "alice").await;
    assert_eq!(status, 200, "{body}");
}

/// A real ID token from the provider for `client_id`, through the device grant, as `login`.
async fn device_id_token(site: &Site, client_id: &str, secret: &str, login: &str) -> String {
    let http = reqwest::Client::new();
    let discovery = json_of(http.get(format!(
        "{}/.well-known/openid-configuration",
        site.idp.issuer
    )))
    .await;
    let grant = json_of(
        http.post(discovery["device_authorization_endpoint"].as_str().unwrap())
            .basic_auth(client_id, Some(secret))
            .form(&[("scope", "openid email profile groups")]),
    )
    .await;
    let (_, status, body, _) = walk(
        &browser(),
        grant["verification_uri_complete"].as_str().unwrap(),
        login,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tokens = json_of(
        http.post(discovery["token_endpoint"].as_str().unwrap())
            .basic_auth(client_id, Some(secret))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", grant["device_code"].as_str().unwrap()),
            ]),
    )
    .await;
    tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"))
        .to_string()
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_id_tokens_are_refused_and_rotated_keys_are_fetched() {
    let mut site = Site::start(true).await;
    let corp = site.provider("corp");
    let now = site.app.now();
    let good = device_id_token(&site, "airlock", CLIENT_SECRET, "alice").await;
    let claims = corp
        .validate(&good, None, now)
        .await
        .expect("a real token for airlock is valid");
    assert_eq!(claims.sub, "alice");
    let refuse = |result: Result<_, airlock_control_plane::sso::OidcError>, expect: &str| {
        let e = result
            .err()
            .unwrap_or_else(|| panic!("accepted a token that should fail with {expect}"));
        assert!(
            e.to_string().contains(expect),
            "{e} does not say {expect:?}"
        );
    };

    // Issued to another client: wrong audience.
    let other = device_id_token(&site, "other", "other-secret", "alice").await;
    refuse(corp.validate(&other, None, now).await, "audience");
    // Expired: the same real token, checked past its exp plus the allowed skew.
    let exp = decode_part(good.split('.').nth(1).unwrap())["exp"]
        .as_u64()
        .unwrap();
    refuse(
        corp.validate(&good, None, Timestamp((exp + 61) * 1000))
            .await,
        "expired",
    );
    // Replayed into another sign-in: its nonce is not that sign-in's.
    refuse(
        corp.validate(&good, Some("the-nonce-of-another-sign-in"), now)
            .await,
        "nonce",
    );

    let parts: Vec<&str> = good.split('.').collect();
    let header = decode_part(parts[0]);
    // Unsigned (alg none), with the real claims.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    refuse(corp.validate(&none, None, now).await, "not signed");
    // HS256 "signed" with the provider's public key as the HMAC secret (key confusion).
    let hs = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "kid": header["kid"]})),
        parts[1],
        parts[2]
    );
    refuse(corp.validate(&hs, None, now).await, "not allowed");
    // A payload edited to add the admins group, with the original signature.
    let mut payload = decode_part(parts[1]);
    payload["groups"] = json!(["airlock-admins"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    refuse(corp.validate(&tampered, None, now).await, "signature");

    // Key rotation: the provider restarts with a new key; the next sign-in names a kid the
    // control plane has not seen, so it fetches the key set again and accepts it.
    site.rotate_provider_key("key-2");
    let (_, status, body, _) = sign_in(&site, "corp", "bob").await;
    assert_eq!(status, 200, "{body}");
    // The old key is gone from the set: a token signed with it is refused.
    refuse(
        corp.validate(&good, None, site.app.now()).await,
        "key set does not hold",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_device_sign_in_and_refresh() {
    let site = Site::start(true).await;
    let http = reqwest::Client::new();
    let started = json_of(http.post(site.url("/api/v1/auth/sso/corp/device"))).await;
    let login_id = started["login_id"].as_str().unwrap().to_string();
    let poll = || async {
        let resp = http
            .post(site.url("/api/v1/auth/sso/device/poll"))
            .json(&json!({"login_id": login_id}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    let (status, state) = poll().await;
    assert_eq!(
        (status, state["status"].as_str().unwrap()),
        (200, "pending"),
        "{state}"
    );

    // The user approves on the provider's own device pages.
    let (_, status, body, _) = walk(
        &browser(),
        started["verification_uri_complete"].as_str().unwrap(),
        "bob",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, state) = poll().await;
    assert_eq!(
        (status, state["status"].as_str().unwrap()),
        (200, "done"),
        "{state}"
    );
    let session = &state["session"];
    assert_eq!(session["user"]["email"], "bob@acme.internal");
    let (status, me) = site.whoami(session["token"].as_str().unwrap()).await;
    assert_eq!(
        (status, me["user"]["role"].as_str().unwrap()),
        (200, "member"),
        "{me}"
    );
    // The handle is spent.
    assert_eq!(poll().await.0, 401);

    // Refresh: a new token, and the refresh token is single-use.
    let refresh = session["refresh_token"].as_str().unwrap();
    let renewed = http
        .post(site.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    let renewed: Value = renewed.json().await.unwrap();
    assert_ne!(renewed["token"], session["token"]);
    let (status, _) = site.whoami(renewed["token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let again = http
        .post(site.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    assert!(!site.audit("auth.refresh").await.is_empty());
}
