//! Login, logout, whoami.

use axum::extract::State;
use axum::http::StatusCode;

use super::context::{Json, Meta, UserCaller};
use super::{ApiError, App};
use crate::audit::{Actor, ActorKind, AuditEvent, Outcome};
use crate::model::{TokenKind, User};
use crate::store::keys;
use crate::{auth, rbac};
use airlock_api::{LoginRequest, Session, Whoami};

/// Looks the user up by email: the user and their password hash, if they have one.
fn find_login(app: &App, email: &str) -> Result<Option<(User, Option<String>)>, ApiError> {
    let Some(pair) = app.store.get::<String>(&keys::email(email))? else {
        return Ok(None);
    };
    let Some((org_id, user_id)) = pair.split_once('/') else {
        return Ok(None);
    };
    let Some(user) = app.store.get::<User>(&keys::obj(org_id, "user", user_id))? else {
        return Ok(None);
    };
    let hash = app.store.get::<String>(&keys::password(&user.id))?;
    Ok(Some((user, hash)))
}

/// Checks the sizes of the login fields before anything is looked up or recorded, so an
/// attempt cannot put more than these bounds into the audit log.
fn check_login_fields(req: &LoginRequest) -> Result<String, ApiError> {
    let email = req.email.trim();
    if email.len() > auth::MAX_EMAIL_LEN {
        return Err(ApiError::invalid(
            "email",
            format!(
                "{} bytes long; an email address has at most {} bytes",
                email.len(),
                auth::MAX_EMAIL_LEN
            ),
        ));
    }
    if req.password.len() > auth::MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "password",
            format!(
                "{} bytes long; passwords have at most {} bytes",
                req.password.len(),
                auth::MAX_PASSWORD_LEN
            ),
        ));
    }
    let email = email.to_lowercase();
    crate::validate::email(&email).map_err(|m| ApiError::invalid("email", m))?;
    Ok(email)
}

/// Audits the refused-attempt counts of lockouts that are over (see [`auth::LoginLimiter`]).
pub async fn audit_refused_logins(app: &App) -> Result<(), ApiError> {
    let due = app.limiter.due_summaries(app.now());
    if due.is_empty() {
        return Ok(());
    }
    app.write(|tx| {
        for r in due {
            let scope = if r.whole_source {
                format!("from {} (any account)", r.source)
            } else {
                format!("for {} from {}", r.email, r.source)
            };
            tx.audit(AuditEvent {
                org_id: r.org_id,
                actor: Actor {
                    kind: ActorKind::Anonymous,
                    id: String::new(),
                    name: if r.whole_source { String::new() } else { r.email },
                    token_id: None,
                },
                action: "auth.login".into(),
                subject: r.subject,
                outcome: Outcome::Denied,
                source: r.source,
                request_id: String::new(),
                detail: Some(format!(
                    "{} more login attempt(s) {scope} refused while rate limited, from {} to {}",
                    r.more, r.first, r.last
                )),
            });
        }
        Ok(())
    })
    .await
}

pub async fn login(
    State(app): State<App>,
    Meta(meta): Meta,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<Session>, ApiError> {
    let now = app.now();
    let email = check_login_fields(&req)?;
    audit_refused_logins(&app).await?;
    if app.config.sso.as_ref().is_some_and(|s| !s.local_passwords) {
        app.audit(AuditEvent {
            org_id: None,
            actor: Actor { kind: ActorKind::Anonymous, id: String::new(), name: email.clone(), token_id: None },
            action: "auth.login".into(),
            subject: format!("email/{email}"),
            outcome: Outcome::Denied,
            source: meta.source.clone(),
            request_id: meta.request_id.clone(),
            detail: Some("password logins are turned off (sso.local_passwords = false)".into()),
        })
        .await?;
        return Err(ApiError::Forbidden(
            "password logins are turned off on this site; sign in with your identity provider (`airlock login`, or GET /api/v1/auth/sso for the providers)".into(),
        ));
    }
    let found = find_login(&app, &email)?;
    let failed = |outcome: Outcome, why: &str| AuditEvent {
        org_id: found.as_ref().map(|(u, _)| u.org_id.clone()),
        actor: Actor {
            kind: ActorKind::Anonymous,
            id: String::new(),
            name: email.clone(),
            token_id: None,
        },
        action: "auth.login".into(),
        subject: found
            .as_ref()
            .map(|(u, _)| format!("user/{}", u.id))
            .unwrap_or_else(|| format!("email/{email}")),
        outcome,
        source: meta.source.clone(),
        request_id: meta.request_id.clone(),
        detail: Some(why.to_string()),
    };
    if let Err(lockout) = app.limiter.check(&email, &meta.source, now) {
        app.metrics.login_failure();
        let account = found
            .as_ref()
            .map(|(u, _)| (u.org_id.clone(), format!("user/{}", u.id)));
        // Only the first refusal of a lockout gets its own record; the rest are counted.
        if app
            .limiter
            .note_refused(&lockout, &email, &meta.source, account, now)
        {
            let why = if lockout.whole_source {
                "rate limited: too many failed logins from this address; further refused attempts are counted and recorded as one summary when the lockout ends"
            } else {
                "rate limited after repeated failures for this account from this address; further refused attempts are counted and recorded as one summary when the lockout ends"
            };
            let mut event = failed(Outcome::Denied, why);
            if lockout.whole_source {
                // Not about the account: about everything from that address.
                event.org_id = None;
                event.actor.name = String::new();
                event.subject = format!("source/{}", meta.source);
            }
            app.audit(event).await?;
        }
        return Err(ApiError::RateLimited {
            retry_after: lockout.retry_after,
        });
    }
    let hash = found.as_ref().and_then(|(_, h)| h.clone());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => auth::verify_password(&h, &password),
        None => {
            auth::burn_password_check(&password);
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check failed: {e}")))?;
    let user = match (ok, &found) {
        (true, Some((user, _))) if !user.disabled => user.clone(),
        (true, Some(_)) => {
            let event = failed(Outcome::Failure, "account disabled");
            app.audit(event).await?;
            return Err(ApiError::Unauthenticated(
                "this account is disabled; ask an org admin".into(),
            ));
        }
        _ => {
            app.limiter.record_failure(&email, &meta.source, now);
            app.metrics.login_failure();
            let event = failed(Outcome::Failure, "wrong email or password");
            app.audit(event).await?;
            return Err(ApiError::Unauthenticated("wrong email or password".into()));
        }
    };
    app.limiter.record_success(&email, &meta.source);
    let ttl = app.config.session_ttl;
    let (token, record) = app
        .write(|tx| {
            let (token, record) = auth::issue_token(
                tx,
                TokenKind::Session,
                &user.org_id,
                &user.id,
                "session",
                now,
                Some(ttl),
            );
            let token_id = Some(record.id.clone());
            let event = super::sso_routes::user_success(&user, token_id, "auth.login", &meta, None);
            tx.audit(event);
            Ok((token, record))
        })
        .await?;
    Ok(axum::Json(Session {
        token,
        token_id: record.id,
        expires_at: record.expires_at.unwrap_or(now),
        user,
    }))
}

pub async fn logout(State(app): State<App>, caller: UserCaller) -> Result<StatusCode, ApiError> {
    let now = app.now();
    app.write(|tx| {
        let hash_key = keys::subject_token(&caller.user.id, &caller.token.id);
        if let Some(hash) = tx.get::<String>(&hash_key)? {
            let mut token = caller.token.clone();
            token.revoked_at = Some(now);
            tx.put(&keys::token(&hash), &token);
        }
        tx.audit(caller.success("auth.logout", &format!("token/{}", caller.token.id)));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn whoami(caller: UserCaller) -> axum::Json<Whoami> {
    let site_admin = caller.may(rbac::Permission::SiteAdmin);
    axum::Json(Whoami {
        user: caller.user,
        org: caller.org,
        token: caller.token,
        site_admin,
    })
}
