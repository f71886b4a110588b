//! Per-request context: request id and source address, the authenticated caller, and
//! JSON/query extractors whose rejections use the API's error body.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{ApiError, REQUEST_ID};
use super::App;
use crate::audit::{Actor, ActorKind, AuditEvent, Outcome};
use crate::auth::{self, TokenRejection};
use crate::model::{Org, Runner, Token, TokenKind, User};
use crate::rbac::{self, Permission};
use crate::sso::BrowserRecord;
use crate::store::keys;

#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub request_id: String,
    pub source: String,
}

/// Gives every request an id (echoed in `x-request-id`, in error bodies and audit records)
/// and records where it came from.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::ids::new_id("req", crate::time::Clock::system().now()));
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    req.extensions_mut().insert(RequestMeta {
        request_id: request_id.clone(),
        source,
    });
    let mut response = REQUEST_ID.scope(request_id.clone(), next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn meta(parts: &Parts) -> RequestMeta {
    parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or(RequestMeta {
            request_id: String::new(),
            source: "unknown".into(),
        })
}

/// The stored record of the bearer token, or of the browser's session cookie, if it is
/// valid now. A cookie session must also be within its idle limit, and a state-changing
/// request made with it must carry the session's CSRF token in `x-csrf-token`.
fn authenticate(app: &App, parts: &Parts) -> Result<(Token, Option<BrowserRecord>), ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        if let Some(found) = cookie_session(app, parts)? {
            return Ok(found);
        }
        return Err(ApiError::Unauthenticated(
            "missing credentials: send `Authorization: Bearer <token>`".into(),
        ));
    };
    let text = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })?;
    Ok((stored_token(app, text)?, None))
}

fn stored_token(app: &App, text: &str) -> Result<Token, ApiError> {
    let token: Token = app
        .store
        .get(&keys::token(&crate::ids::token_hash(text)))?
        .ok_or_else(|| ApiError::Unauthenticated(TokenRejection::Unknown.to_string()))?;
    auth::check_token(&token, app.now()).map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    Ok(token)
}

/// The session behind the browser's cookie, when SSO is on and the request has one.
fn cookie_session(app: &App, parts: &Parts) -> Result<Option<(Token, Option<BrowserRecord>)>, ApiError> {
    let Some(sso) = app.config.sso.as_ref() else {
        return Ok(None);
    };
    let Some(text) = super::sso_routes::cookie(&parts.headers, sso.session_cookie()) else {
        return Ok(None);
    };
    let token = stored_token(app, text)?;
    let record: BrowserRecord = app
        .store
        .get(&crate::sso::keys::browser(&token.id))?
        .ok_or_else(|| ApiError::Unauthenticated("this browser session has ended; sign in again".into()))?;
    if crate::sso::idle_expired(&record, sso.idle, app.now()) {
        return Err(ApiError::Unauthenticated(format!(
            "this browser session was idle for more than {} s; sign in again",
            sso.idle.as_secs()
        )));
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        let matches = sent.is_some_and(|s| {
            s.len() == record.csrf.len()
                && s.bytes().zip(record.csrf.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if !matches {
            return Err(ApiError::Forbidden(
                "a state-changing request with the session cookie must send the session's CSRF token in x-csrf-token (GET /api/v1/auth/session gives it)".into(),
            ));
        }
    }
    Ok(Some((token, Some(record))))
}

/// Notes the browser session's use, at most every [`crate::sso::TOUCH_EVERY`], for its idle limit.
async fn touch(app: &App, token: &Token, record: Option<BrowserRecord>) -> Result<(), ApiError> {
    let now = app.now();
    if let Some(mut record) = record.filter(|r| now.since(r.last_seen) >= crate::sso::TOUCH_EVERY) {
        record.last_seen = now;
        let key = crate::sso::keys::browser(&token.id);
        app.write(|tx| {
            tx.put(&key, &record);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// A signed-in user, with the org they belong to.
pub struct UserCaller {
    pub user: User,
    pub org: Org,
    pub token: Token,
    pub meta: RequestMeta,
}

impl FromRequestParts<App> for UserCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let (token, browser) = authenticate(app, parts)?;
        match token.kind {
            TokenKind::Session | TokenKind::Personal => {}
            TokenKind::Runner => {
                return Err(ApiError::Forbidden(
                    "runner credentials may only call /api/v1/runner/*; use a user token here"
                        .into(),
                ))
            }
            TokenKind::RunnerExchange => {
                return Err(ApiError::Unauthenticated(
                    "an exchange token is only accepted by POST /api/v1/runner/exchange".into(),
                ))
            }
        }
        let user: User = app
            .store
            .get(&keys::obj(&token.org_id, "user", &token.subject_id))?
            .ok_or_else(|| ApiError::Unauthenticated("the token's user no longer exists".into()))?;
        if user.disabled {
            return Err(ApiError::Unauthenticated(
                "this account is disabled; ask an org admin".into(),
            ));
        }
        let org: Org = app
            .store
            .get(&keys::org(&user.org_id))?
            .ok_or_else(|| ApiError::Unauthenticated("the token's org no longer exists".into()))?;
        touch(app, &token, browser).await?;
        Ok(UserCaller {
            user,
            org,
            token,
            meta: meta(parts),
        })
    }
}

impl UserCaller {
    pub fn may(&self, perm: Permission) -> bool {
        rbac::permits(self.user.role, self.org.site, perm)
    }

    pub fn actor(&self) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: self.user.id.clone(),
            name: self.user.email.clone(),
            token_id: Some(self.token.id.clone()),
        }
    }

    /// An audit event by this caller in their org.
    pub fn event(
        &self,
        action: &str,
        subject: &str,
        outcome: Outcome,
        detail: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            org_id: Some(self.org.id.clone()),
            actor: self.actor(),
            action: action.into(),
            subject: subject.into(),
            outcome,
            source: self.meta.source.clone(),
            request_id: self.meta.request_id.clone(),
            detail,
        }
    }

    pub fn success(&self, action: &str, subject: &str) -> AuditEvent {
        self.event(action, subject, Outcome::Success, None)
    }

    /// Checks `perm`; a refusal is audited (outcome `denied`) and returned as 403.
    pub async fn require(
        &self,
        app: &App,
        perm: Permission,
        action: &str,
        subject: &str,
    ) -> Result<(), ApiError> {
        if self.may(perm) {
            return Ok(());
        }
        self.deny(
            app,
            action,
            subject,
            format!("role {} may not {action}", self.user.role.as_str()),
        )
        .await
    }

    /// Audits and returns a 403 with `why`.
    pub async fn deny(
        &self,
        app: &App,
        action: &str,
        subject: &str,
        why: String,
    ) -> Result<(), ApiError> {
        let event = self.event(action, subject, Outcome::Denied, Some(why.clone()));
        app.write(|tx| {
            tx.audit(event);
            Ok(())
        })
        .await?;
        Err(ApiError::Forbidden(why))
    }
}

/// A runner, authenticated with the credential it got from the exchange.
pub struct RunnerCaller {
    pub runner: Runner,
    pub token: Token,
    pub meta: RequestMeta,
}

impl FromRequestParts<App> for RunnerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let (token, _) = authenticate(app, parts)?;
        if token.kind != TokenKind::Runner {
            return Err(if token.kind == TokenKind::RunnerExchange {
                ApiError::Unauthenticated(
                    "exchange the one-time token at POST /api/v1/runner/exchange first".into(),
                )
            } else {
                ApiError::Forbidden(
                    "/api/v1/runner/* is for runners; user tokens cannot call it".into(),
                )
            });
        }
        let runner: Runner = app
            .store
            .get(&keys::obj(&token.org_id, "runner", &token.subject_id))?
            .ok_or_else(|| ApiError::Unauthenticated("this runner was deleted".into()))?;
        Ok(RunnerCaller {
            runner,
            token,
            meta: meta(parts),
        })
    }
}

impl RunnerCaller {
    pub fn event(
        &self,
        action: &str,
        subject: &str,
        outcome: Outcome,
        detail: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            org_id: Some(self.runner.org_id.clone()),
            actor: Actor {
                kind: ActorKind::Runner,
                id: self.runner.id.clone(),
                name: self.runner.name.clone(),
                token_id: Some(self.token.id.clone()),
            },
            action: action.into(),
            subject: subject.into(),
            outcome,
            source: self.meta.source.clone(),
            request_id: self.meta.request_id.clone(),
            detail,
        }
    }
}

/// Request metadata for routes that authenticate through their body (login, exchange).
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Meta(meta(parts)))
    }
}

/// The answer to a body over its route's limit.
pub fn body_too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "the request body is larger than this route accepts ({} bytes for login and \
         runner exchange, {} for the others); send only the documented fields",
        super::MAX_UNAUTHENTICATED_BODY,
        super::MAX_BODY
    ))
}

/// Refuses a request whose declared `Content-Length` is over the unauthenticated limit
/// before any of its body is read, so a client that waits for `100 Continue` (curl does for
/// large bodies) is answered without sending it.
pub async fn refuse_declared_oversize(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > super::MAX_UNAUTHENTICATED_BODY as u64) {
        return axum::response::IntoResponse::into_response(body_too_large());
    }
    next.run(req).await
}

/// `axum::Json` with errors in the API's format.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(body_too_large())
            }
            Err(rejection) => Err(ApiError::invalid("body", rejection.body_text())),
        }
    }
}

/// `axum::extract::Query` with errors in the API's format.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => Err(ApiError::invalid("query", rejection.body_text())),
        }
    }
}

/// `?limit=&cursor=` on every list.
#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

impl Paging {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(
                "limit",
                format!("{n} is out of range; use 1 to {MAX_PAGE}"),
            )),
        }
    }

    pub fn cursor(&self) -> Result<Option<&str>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(c) if crate::ids::is_plausible_id(c) => Ok(Some(c)),
            Some(_) => Err(ApiError::invalid(
                "cursor",
                "not a cursor from a previous page's next_cursor",
            )),
        }
    }
}

/// A path id that can be used in a store key; anything else cannot exist.
pub fn checked_id(kind: &'static str, id: &str) -> Result<(), ApiError> {
    if crate::ids::is_plausible_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(kind, id))
    }
}
