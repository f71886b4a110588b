//! The caller's own credentials: personal access tokens and SSH public keys.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::context::{checked_id, Json, Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::model::{Page, SshKey, Token, TokenKind};
use crate::rbac::Permission;
use crate::store::keys;
use crate::{auth, ids, validate};
use airlock_api::{AddSshKey, CreateToken, NewToken};

pub async fn list_tokens(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<Token>>, ApiError> {
    caller
        .require(&app, Permission::OwnCredentials, "token.list", "tokens")
        .await?;
    let prefix = keys::subject_token_prefix(&caller.user.id);
    let (hashes, more) =
        app.store
            .scan::<String>(&prefix, paging.cursor()?, paging.limit()?, |_| true)?;
    let next_cursor = if more {
        hashes.last().map(|(k, _)| k[prefix.len()..].to_string())
    } else {
        None
    };
    let mut items = Vec::new();
    for (_, hash) in hashes {
        if let Some(token) = app.store.get::<Token>(&keys::token(&hash))? {
            items.push(token);
        }
    }
    Ok(axum::Json(Page { items, next_cursor }))
}

pub async fn create_token(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<NewToken>), ApiError> {
    caller
        .require(&app, Permission::OwnCredentials, "token.create", "tokens")
        .await?;
    validate::name(&req.name).map_err(|m| ApiError::invalid("name", m))?;
    let max_days = (app.config.max_token_ttl.as_secs() / 86_400) as u32;
    let ttl = match req.expires_in_days {
        None => app.config.default_token_ttl,
        Some(d) if (1..=max_days).contains(&d) => Duration::from_secs(d as u64 * 86_400),
        Some(d) => {
            return Err(ApiError::invalid(
                "expires_in_days",
                format!("{d} is out of range; use 1 to {max_days}"),
            ))
        }
    };
    let now = app.now();
    let (token, info) = app
        .write(|tx| {
            let (token, info) = auth::issue_token(
                tx,
                TokenKind::Personal,
                &caller.org.id,
                &caller.user.id,
                &req.name,
                now,
                Some(ttl),
            );
            tx.audit(caller.event(
                "token.create",
                &format!("token/{}", info.id),
                Outcome::Success,
                Some(format!(
                    "`{}`, expires {}",
                    info.name,
                    info.expires_at.unwrap_or(now)
                )),
            ));
            Ok((token, info))
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(NewToken { token, info })))
}

pub async fn revoke_token(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    checked_id("token", &id)?;
    let index = keys::subject_token(&caller.user.id, &id);
    if !app.store.contains(&index)? {
        return Err(ApiError::not_found("token", &id));
    }
    caller
        .require(
            &app,
            Permission::OwnCredentials,
            "token.revoke",
            &format!("token/{id}"),
        )
        .await?;
    let now = app.now();
    app.write(|tx| {
        let hash: String = tx
            .get(&index)?
            .ok_or_else(|| ApiError::not_found("token", &id))?;
        let mut token: Token = tx
            .get(&keys::token(&hash))?
            .ok_or_else(|| ApiError::not_found("token", &id))?;
        if token.revoked_at.is_none() {
            token.revoked_at = Some(now);
            tx.put(&keys::token(&hash), &token);
        }
        tx.audit(caller.success("token.revoke", &format!("token/{id}")));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_keys(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<SshKey>>, ApiError> {
    caller
        .require(&app, Permission::OwnSshKeys, "ssh_key.list", "ssh-keys")
        .await?;
    let me = caller.user.id.clone();
    Ok(axum::Json(app.list(
        &caller.org.id,
        "sshkey",
        &paging,
        |k: &SshKey| k.user_id == me,
        |k| k,
    )?))
}

pub async fn add_key(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<AddSshKey>,
) -> Result<(StatusCode, axum::Json<SshKey>), ApiError> {
    caller
        .require(&app, Permission::OwnSshKeys, "ssh_key.create", "ssh-keys")
        .await?;
    validate::name(&req.name).map_err(|m| ApiError::invalid("name", m))?;
    let (public_key, fingerprint) = validate::ssh_public_key(&req.public_key)
        .map_err(|m| ApiError::invalid("public_key", m))?;
    let now = app.now();
    let key = SshKey {
        id: ids::new_id("key", now),
        org_id: caller.org.id.clone(),
        user_id: caller.user.id.clone(),
        name: req.name,
        public_key,
        fingerprint,
        created_at: now,
    };
    app.write(|tx| {
        let mine = tx.scan_all::<SshKey>(&keys::obj_prefix(&caller.org.id, "sshkey"))?;
        if let Some((_, dup)) = mine
            .iter()
            .find(|(_, k)| k.user_id == key.user_id && k.fingerprint == key.fingerprint)
        {
            return Err(ApiError::Conflict(format!(
                "this key ({}) is already registered as `{}`",
                dup.fingerprint, dup.name
            )));
        }
        tx.put(&keys::obj(&key.org_id, "sshkey", &key.id), &key);
        tx.audit(caller.event(
            "ssh_key.create",
            &format!("ssh_key/{}", key.id),
            Outcome::Success,
            Some(key.fingerprint.clone()),
        ));
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(key)))
}

pub async fn delete_key(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key: SshKey = app.find(&caller.org.id, "sshkey", &id)?;
    if key.user_id != caller.user.id {
        return Err(ApiError::not_found("sshkey", &id));
    }
    caller
        .require(
            &app,
            Permission::OwnSshKeys,
            "ssh_key.delete",
            &format!("ssh_key/{id}"),
        )
        .await?;
    app.write(|tx| {
        tx.delete(&keys::obj(&caller.org.id, "sshkey", &id));
        tx.audit(caller.event(
            "ssh_key.delete",
            &format!("ssh_key/{id}"),
            Outcome::Success,
            Some(key.fingerprint.clone()),
        ));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
