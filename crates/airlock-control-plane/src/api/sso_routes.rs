//! Single sign-on routes: the browser's authorization code flow (start, callback), its
//! session and logout, and the CLI's device sign-in and refresh. The rules are in
//! [`crate::sso`]; this maps HTTP onto them and audits every decision.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::context::{Json, Meta, Query, RequestMeta, UserCaller};
use super::{ApiError, App};
use crate::audit::{Actor, ActorKind, AuditEvent, Outcome};
use crate::model::{Org, TokenKind, User};
use crate::sso::{
    self, keys, mapping, BrowserRecord, Claims, OidcClient, PendingDevice, PendingLogin,
    RefreshRecord, Sso,
};
use crate::store::{keys as store_keys, Txn};
use crate::{auth, ids};
use airlock_api::{
    BrowserSession, CliSession, DeviceLoginPoll, DeviceLoginStart, DeviceLoginState,
    DeviceLoginStatus, RefreshRequest, SsoLogout, SsoProvider, SsoProviders,
};

fn sso(app: &App) -> Result<&Arc<Sso>, ApiError> {
    app.config.sso.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "single sign-on is not configured on this server ([[sso.providers]] in airlock.toml)"
                .into(),
        )
    })
}

fn provider<'a>(app: &'a App, id: &str) -> Result<(&'a Arc<Sso>, &'a Arc<OidcClient>), ApiError> {
    let sso = sso(app)?;
    let p = sso
        .providers
        .get(id)
        .ok_or_else(|| ApiError::not_found("identity provider", id))?;
    Ok((sso, p))
}

fn unavailable(e: sso::OidcError) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

fn anonymous(
    meta: &RequestMeta,
    action: &str,
    subject: String,
    outcome: Outcome,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        org_id: None,
        actor: Actor {
            kind: ActorKind::Anonymous,
            id: String::new(),
            name: String::new(),
            token_id: None,
        },
        action: action.into(),
        subject,
        outcome,
        source: meta.source.clone(),
        request_id: meta.request_id.clone(),
        detail: Some(detail),
    }
}

pub async fn list_providers(State(app): State<App>) -> axum::Json<SsoProviders> {
    let sso = app.config.sso.as_ref();
    axum::Json(SsoProviders {
        local_passwords: sso.is_none_or(|s| s.local_passwords),
        providers: sso
            .map(|s| {
                s.providers
                    .values()
                    .map(|p| SsoProvider {
                        id: p.config.id.clone(),
                        display_name: p
                            .config
                            .display_name
                            .clone()
                            .unwrap_or_else(|| p.config.id.clone()),
                        start_url: format!("/api/v1/auth/sso/{}/start", p.config.id),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[derive(Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

pub async fn start(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let (sso, provider) = provider(&app, &id)?;
    let state = sso::oidc::random_text();
    let nonce = sso::oidc::random_text();
    let (verifier, challenge) = sso::oidc::pkce_pair();
    let url = provider
        .authorization_url(&state, &nonce, &challenge)
        .await
        .map_err(unavailable)?;
    let pending = PendingLogin {
        provider: id,
        nonce,
        verifier,
        return_to: sso::safe_return_to(q.return_to.as_deref()),
        created_at: app.now(),
    };
    app.write(|tx| {
        tx.put(&keys::pending(&ids::token_hash(&state)), &pending);
        Ok(())
    })
    .await?;
    // The state also goes into a cookie, so only the browser that started a sign-in can
    // finish it (no login CSRF).
    let cookie = sso.cookie(sso.state_cookie(), &state, sso::PENDING_TTL);
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, url), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub async fn callback(
    State(app): State<App>,
    Path(id): Path<String>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let (sso, provider) = provider(&app, &id)?;
    let subject = format!("sso/{id}");
    let refuse = |outcome: Outcome, why: String| {
        anonymous(&meta, "auth.sso_login", subject.clone(), outcome, why)
    };
    if let Some(error) = q.error {
        let why = format!(
            "the identity provider refused the sign-in: {error} {}",
            q.error_description.unwrap_or_default()
        );
        app.audit(refuse(Outcome::Denied, why.clone())).await?;
        return Err(ApiError::Unauthenticated(why));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(ApiError::invalid("query", "code and state are required: this is where the identity provider sends the browser back"));
    };
    let start_again = format!("start again at /api/v1/auth/sso/{id}/start");
    if cookie(&headers, sso.state_cookie()) != Some(state.as_str()) {
        app.audit(refuse(
            Outcome::Denied,
            "the sign-in was not started in this browser (state cookie missing or different)"
                .into(),
        ))
        .await?;
        return Err(ApiError::Unauthenticated(format!(
            "this sign-in was not started in this browser; {start_again}"
        )));
    }
    // Taken out of the store in the same step that reads it: a replayed callback finds nothing.
    let key = keys::pending(&ids::token_hash(&state));
    let pending = app
        .write(|tx| {
            let found = tx.get::<PendingLogin>(&key)?;
            tx.delete(&key);
            Ok(found)
        })
        .await?;
    let now = app.now();
    let pending = match pending {
        Some(p) if p.provider == id && now.since(p.created_at) < sso::PENDING_TTL => p,
        _ => {
            app.audit(refuse(
                Outcome::Denied,
                "unknown, expired or already used sign-in state (a replayed callback?)".into(),
            ))
            .await?;
            return Err(ApiError::Unauthenticated(format!(
                "this sign-in is unknown, expired or already finished; {start_again}"
            )));
        }
    };
    let id_token = match provider.exchange_code(&code, &pending.verifier).await {
        Ok(t) => t,
        Err(e) => {
            app.audit(refuse(Outcome::Failure, e.to_string())).await?;
            return Err(ApiError::Unauthenticated(e.to_string()));
        }
    };
    let claims = check_token(&app, provider, &id_token, Some(&pending.nonce), &meta).await?;
    let user = sign_in(&app, provider, &claims, &meta).await?;
    let csrf = sso::oidc::random_text();
    let token = app
        .write(|tx| {
            let (token, record) = auth::issue_token(
                tx,
                TokenKind::Session,
                &user.org_id,
                &user.id,
                &format!("browser sign-in via {id}"),
                now,
                Some(sso.absolute),
            );
            tx.put(
                &keys::browser(&record.id),
                &BrowserRecord {
                    csrf,
                    last_seen: now,
                    provider: id.clone(),
                    id_token,
                },
            );
            Ok(token)
        })
        .await?;
    let mut response = (StatusCode::FOUND, [(header::LOCATION, pending.return_to)]).into_response();
    let headers = response.headers_mut();
    for cookie in [
        sso.cookie(sso.session_cookie(), &token, sso.absolute),
        sso.cookie(sso.state_cookie(), "", std::time::Duration::ZERO),
    ] {
        headers.append(
            header::SET_COOKIE,
            cookie.parse().expect("cookie text is a header value"),
        );
    }
    Ok(response)
}

/// Validates the ID token; a refusal is audited with the reason.
async fn check_token(
    app: &App,
    provider: &OidcClient,
    id_token: &str,
    nonce: Option<&str>,
    meta: &RequestMeta,
) -> Result<Claims, ApiError> {
    match provider.validate(id_token, nonce, app.now()).await {
        Ok(claims) => Ok(claims),
        Err(e) => {
            let event = anonymous(
                meta,
                "auth.sso_login",
                format!("sso/{}", provider.config.id),
                Outcome::Failure,
                e.to_string(),
            );
            app.audit(event).await?;
            Err(match e {
                sso::OidcError::InvalidToken(_) => ApiError::Unauthenticated(e.to_string()),
                other => unavailable(other),
            })
        }
    }
}

/// A successful step by `user`, in their org.
pub(super) fn user_success(
    user: &User,
    token_id: Option<String>,
    action: &str,
    meta: &RequestMeta,
    detail: Option<String>,
) -> AuditEvent {
    AuditEvent {
        org_id: Some(user.org_id.clone()),
        actor: Actor {
            kind: ActorKind::User,
            id: user.id.clone(),
            name: user.email.clone(),
            token_id,
        },
        action: action.into(),
        subject: format!("user/{}", user.id),
        outcome: Outcome::Success,
        source: meta.source.clone(),
        request_id: meta.request_id.clone(),
        detail,
    }
}

/// The claims that drove a decision, for its audit record.
fn claims_detail(provider: &OidcClient, claims: &Claims) -> String {
    format!(
        "provider {}, sub {}, email {}, groups {:?}, acr {:?}, amr {:?}",
        provider.config.id,
        claims.sub,
        claims.email.as_deref().unwrap_or("-"),
        mapping::groups(&provider.config, claims),
        claims.acr.as_deref().unwrap_or(""),
        claims.amr
    )
}

fn org_named(tx: &Txn<'_>, name: &str) -> Result<Option<Org>, ApiError> {
    Ok(tx
        .scan_all::<Org>("org/")?
        .into_iter()
        .map(|(_, o)| o)
        .find(|o| o.name == name))
}

/// Decides and applies a sign-in: the user is created on first sign-in (linked to the
/// provider's subject), their role follows their groups on every sign-in, and a disabled
/// user stays refused. The decision and the claims behind it are audited either way.
async fn sign_in(
    app: &App,
    provider: &OidcClient,
    claims: &Claims,
    meta: &RequestMeta,
) -> Result<User, ApiError> {
    let detail = claims_detail(provider, claims);
    let subject = format!("sso/{}/{}", provider.config.id, claims.sub);
    let decision = match mapping::decide(&provider.config, claims) {
        Ok(d) => d,
        Err(refusal) => {
            app.audit(anonymous(
                meta,
                "auth.sso_login",
                subject,
                Outcome::Denied,
                format!("{refusal}; {detail}"),
            ))
            .await?;
            return Err(ApiError::Forbidden(refusal.to_string()));
        }
    };
    let now = app.now();
    let link_key = keys::link(&provider.config.id, &claims.sub);
    let result = app
        .write(|tx| {
            let org = org_named(tx, &decision.org)?.ok_or_else(|| {
                ApiError::Unavailable(format!("group {} maps to org {:?}, which does not exist; create it first (POST /api/v1/orgs)", decision.group, decision.org))
            })?;
            let linked = match tx.get::<String>(&link_key)? {
                Some(pair) => pair.split_once('/').map(|(o, u)| store_keys::obj(o, "user", u)).map(|k| tx.get::<User>(&k)).transpose()?.flatten(),
                None => None,
            };
            let (mut user, what) = match linked {
                Some(user) => (user, "signed in"),
                None => {
                    let email = claims.email.clone().ok_or_else(|| ApiError::Forbidden("the ID token has no email claim; add the `email` scope at the identity provider".into()))?;
                    crate::validate::email(&email).map_err(|m| ApiError::Forbidden(format!("the ID token's email is not usable: {m}")))?;
                    match tx.get::<String>(&store_keys::email(&email))? {
                        // An existing account is taken over only when the provider vouches for
                        // the address and the account is in the org the groups map to.
                        Some(pair) if claims.email_verified && pair.starts_with(&format!("{}/", org.id)) => {
                            let user_id = pair.split_once('/').map(|(_, u)| u.to_string()).unwrap_or_default();
                            let user = tx.get::<User>(&store_keys::obj(&org.id, "user", &user_id))?.ok_or_else(|| ApiError::Internal("email index points to no user".into()))?;
                            (user, "linked an existing account and signed in")
                        }
                        Some(_) => {
                            return Err(ApiError::Conflict(format!("an account with email {email} already exists {}; an admin must delete it or the provider must mark the email verified", if claims.email_verified { "in another org" } else { "and the provider does not say the email is verified" })));
                        }
                        None => {
                            let user = User { id: ids::new_id("usr", now), org_id: org.id.clone(), email: email.clone(), name: claims.name.clone().unwrap_or_else(|| email.clone()), role: decision.role, disabled: false, has_password: false, created_at: now };
                            tx.put(&store_keys::email(&email), &format!("{}/{}", org.id, user.id));
                            (user, "created (first sign-in)")
                        }
                    }
                }
            };
            if user.org_id != org.id {
                return Err(ApiError::Forbidden(format!("your groups map to org {:?}, but your account belongs to another org; ask an admin", decision.org)));
            }
            if user.disabled {
                return Err(ApiError::Unauthenticated("this account is disabled; ask an org admin".into()));
            }
            let before = user.role;
            user.role = decision.role;
            if let Some(name) = &claims.name {
                user.name = name.clone();
            }
            tx.put(&store_keys::obj(&org.id, "user", &user.id), &user);
            tx.put(&link_key, &format!("{}/{}", org.id, user.id));
            let role_change = if before != user.role && what == "signed in" { format!(", role {} -> {}", before.as_str(), user.role.as_str()) } else { String::new() };
            if what.starts_with("created") {
                let detail = format!("{} as {} from {}", user.email, user.role.as_str(), provider.config.id);
                tx.audit(user_success(&user, None, "user.provision", meta, Some(detail)));
            }
            tx.audit(user_success(&user, None, "auth.sso_login", meta, Some(format!("{what}: group {} -> org {} as {}{role_change}; {detail}", decision.group, org.name, user.role.as_str()))));
            Ok(user)
        })
        .await;
    if let Err(e) = &result {
        app.audit(anonymous(
            meta,
            "auth.sso_login",
            subject,
            Outcome::Denied,
            format!("{e}; {detail}"),
        ))
        .await?;
    }
    result
}

pub async fn get_session(
    State(app): State<App>,
    caller: UserCaller,
) -> Result<axum::Json<BrowserSession>, ApiError> {
    let record = app
        .store
        .get::<BrowserRecord>(&keys::browser(&caller.token.id))?;
    let idle = app.config.sso.as_ref().map(|s| s.idle);
    Ok(axum::Json(BrowserSession {
        token_id: caller.token.id.clone(),
        csrf_token: record.as_ref().map(|r| r.csrf.clone()),
        expires_at: caller.token.expires_at,
        idle_expires_at: record.zip(idle).map(|(r, idle)| r.last_seen.plus(idle)),
        user: caller.user,
    }))
}

pub async fn logout(State(app): State<App>, caller: UserCaller) -> Result<Response, ApiError> {
    let now = app.now();
    let record = app
        .write(|tx| {
            let record = tx.get::<BrowserRecord>(&keys::browser(&caller.token.id))?;
            tx.delete(&keys::browser(&caller.token.id));
            if let Some(hash) = tx.get::<String>(&store_keys::subject_token(
                &caller.user.id,
                &caller.token.id,
            ))? {
                let mut token = caller.token.clone();
                token.revoked_at = Some(now);
                tx.put(&store_keys::token(&hash), &token);
            }
            tx.audit(caller.success("auth.sso_logout", &format!("token/{}", caller.token.id)));
            Ok(record)
        })
        .await?;
    let mut end_session_url = None;
    let mut clear = None;
    if let Some(sso) = app.config.sso.as_ref() {
        clear = Some(sso.cookie(sso.session_cookie(), "", std::time::Duration::ZERO));
        if let Some(r) = &record {
            if let Some(p) = sso.providers.get(&r.provider) {
                end_session_url = p
                    .end_session_url(Some(&r.id_token), &format!("{}/", sso.public_url))
                    .await;
            }
        }
    }
    let mut response = axum::Json(SsoLogout { end_session_url }).into_response();
    if let Some(c) = clear {
        response.headers_mut().insert(
            header::SET_COOKIE,
            c.parse().expect("cookie text is a header value"),
        );
    }
    Ok(response)
}

pub async fn start_device(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<axum::Json<DeviceLoginStart>, ApiError> {
    let (_, provider) = provider(&app, &id)?;
    let grant = provider.start_device().await.map_err(|e| match e {
        sso::OidcError::NoDeviceFlow => ApiError::Conflict(e.to_string()),
        other => unavailable(other),
    })?;
    let (login_id, hash) = ids::new_token("dev");
    let now = app.now();
    let interval = grant.interval.unwrap_or(5).max(1);
    let expires_at = now.plus(std::time::Duration::from_secs(grant.expires_in.min(1800)));
    let pending = PendingDevice {
        provider: id,
        device_code: grant.device_code,
        interval,
        expires_at,
    };
    app.write(|tx| {
        tx.put(&keys::device(&hash), &pending);
        Ok(())
    })
    .await?;
    Ok(axum::Json(DeviceLoginStart {
        login_id,
        user_code: grant.user_code,
        verification_uri: grant.verification_uri,
        verification_uri_complete: grant.verification_uri_complete,
        interval_seconds: interval,
        expires_at,
    }))
}

/// A short-lived session token and a refresh token for a CLI.
fn issue_cli_session(
    tx: &mut Txn<'_>,
    user: &User,
    provider: &str,
    refresh_until: crate::time::Timestamp,
    now: crate::time::Timestamp,
) -> CliSession {
    let ttl = sso::CLI_TOKEN_TTL.min(refresh_until.since(now));
    let (token, record) = auth::issue_token(
        tx,
        TokenKind::Session,
        &user.org_id,
        &user.id,
        &format!("cli sign-in via {provider}"),
        now,
        Some(ttl),
    );
    let (refresh_token, hash) = ids::new_token("rfr");
    tx.put(
        &keys::refresh(&hash),
        &RefreshRecord {
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            provider: provider.to_string(),
            expires_at: refresh_until,
        },
    );
    CliSession {
        token,
        token_id: record.id,
        expires_at: record.expires_at.unwrap_or(now),
        refresh_token,
        refresh_expires_at: refresh_until,
        user: user.clone(),
    }
}

pub async fn poll_device(
    State(app): State<App>,
    Meta(meta): Meta,
    Json(req): Json<DeviceLoginPoll>,
) -> Result<axum::Json<DeviceLoginState>, ApiError> {
    let key = keys::device(&ids::token_hash(&req.login_id));
    let unknown = || {
        ApiError::Unauthenticated(
            "unknown or expired device sign-in; run `airlock login` again".into(),
        )
    };
    let pending = app.store.get::<PendingDevice>(&key)?.ok_or_else(unknown)?;
    let now = app.now();
    if now >= pending.expires_at {
        app.write(|tx| {
            tx.delete(&key);
            Ok(())
        })
        .await?;
        return Err(unknown());
    }
    let (sso, provider) = provider(&app, &pending.provider)?;
    let id_token = match provider.poll_device(&pending.device_code).await {
        Ok(sso::oidc::DevicePoll::Pending { slow_down }) => {
            let interval = pending.interval + if slow_down { 5 } else { 0 };
            return Ok(axum::Json(DeviceLoginState {
                status: DeviceLoginStatus::Pending,
                interval_seconds: interval,
                session: None,
            }));
        }
        Ok(sso::oidc::DevicePoll::IdToken(t)) => t,
        Err(e) => {
            app.write(|tx| {
                tx.delete(&key);
                tx.audit(anonymous(
                    &meta,
                    "auth.sso_login",
                    format!("sso/{}", pending.provider),
                    Outcome::Denied,
                    format!("device sign-in: {e}"),
                ));
                Ok(())
            })
            .await?;
            return Err(ApiError::Unauthenticated(e.to_string()));
        }
    };
    // The device code is spent at the provider; so is this handle.
    app.write(|tx| {
        tx.delete(&key);
        Ok(())
    })
    .await?;
    // The device grant sends no nonce; the device code itself is single-use at the provider.
    let claims = check_token(&app, provider, &id_token, None, &meta).await?;
    let user = sign_in(&app, provider, &claims, &meta).await?;
    let session = app
        .write(|tx| {
            Ok(issue_cli_session(
                tx,
                &user,
                &pending.provider,
                now.plus(sso.absolute),
                now,
            ))
        })
        .await?;
    Ok(axum::Json(DeviceLoginState {
        status: DeviceLoginStatus::Done,
        interval_seconds: pending.interval,
        session: Some(session),
    }))
}

pub async fn refresh(
    State(app): State<App>,
    Meta(meta): Meta,
    Json(req): Json<RefreshRequest>,
) -> Result<axum::Json<CliSession>, ApiError> {
    let key = keys::refresh(&ids::token_hash(&req.refresh_token));
    let now = app.now();
    let result = app
        .write(|tx| {
            let record = tx.get::<RefreshRecord>(&key)?;
            tx.delete(&key);
            let record = record.ok_or_else(|| {
                ApiError::Unauthenticated(
                    "unknown or already used refresh token; run `airlock login` again".into(),
                )
            })?;
            if now >= record.expires_at {
                return Err(ApiError::Unauthenticated(format!(
                    "the sign-in ended at {}; run `airlock login` again",
                    record.expires_at
                )));
            }
            let user = tx
                .get::<User>(&store_keys::obj(&record.org_id, "user", &record.user_id))?
                .filter(|u| !u.disabled)
                .ok_or_else(|| {
                    ApiError::Unauthenticated(
                        "this account is disabled or deleted; ask an org admin".into(),
                    )
                })?;
            let session = issue_cli_session(tx, &user, &record.provider, record.expires_at, now);
            let detail = format!("session renewed until {}", session.expires_at);
            tx.audit(user_success(
                &user,
                Some(session.token_id.clone()),
                "auth.refresh",
                &meta,
                Some(detail),
            ));
            Ok(session)
        })
        .await;
    if let Err(ApiError::Unauthenticated(why)) = &result {
        app.audit(anonymous(
            &meta,
            "auth.refresh",
            "refresh-token".into(),
            Outcome::Denied,
            why.clone(),
        ))
        .await?;
    }
    result.map(axum::Json)
}
