//! Users of an org and their passwords.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::context::{Json, Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::model::{TokenKind, User};
use crate::rbac::{may_manage_role, Permission, Role};
use crate::store::{keys, Txn};
use crate::{auth, ids, validate};
use airlock_api::{CreateUser, SetPassword, UpdateUser};

fn subject(id: &str) -> String {
    format!("user/{id}")
}

pub async fn list(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<crate::model::Page<User>>, ApiError> {
    caller
        .require(&app, Permission::ReadUsers, "user.list", "users")
        .await?;
    Ok(axum::Json(app.list(
        &caller.org.id,
        "user",
        &paging,
        |_: &User| true,
        |u| u,
    )?))
}

pub async fn create(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateUser>,
) -> Result<(StatusCode, axum::Json<User>), ApiError> {
    caller
        .require(&app, Permission::ManageUsers, "user.create", "users")
        .await?;
    if !may_manage_role(caller.user.role, req.role) {
        caller
            .deny(
                &app,
                "user.create",
                "users",
                "only owners may create owners".into(),
            )
            .await?;
    }
    let email = req.email.trim().to_lowercase();
    validate::email(&email).map_err(|m| ApiError::invalid("email", m))?;
    let name = req.name.unwrap_or_else(|| email.clone());
    validate::display_name(&name).map_err(|m| ApiError::invalid("name", m))?;
    auth::check_password_rules(&req.password).map_err(|m| ApiError::invalid("password", m))?;
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))?;
    let now = app.now();
    let user = User {
        id: ids::new_id("usr", now),
        org_id: caller.org.id.clone(),
        email,
        name,
        role: req.role,
        disabled: false,
        has_password: true,
        created_at: now,
    };
    app.write(|tx| {
        if tx.contains(&keys::email(&user.email))? {
            return Err(ApiError::Conflict(format!(
                "a user with email {} already exists",
                user.email
            )));
        }
        tx.put(&keys::obj(&user.org_id, "user", &user.id), &user);
        tx.put(
            &keys::email(&user.email),
            &format!("{}/{}", user.org_id, user.id),
        );
        tx.put(&keys::password(&user.id), &hash);
        tx.audit(caller.event(
            "user.create",
            &subject(&user.id),
            crate::audit::Outcome::Success,
            Some(format!("{} as {}", user.email, user.role.as_str())),
        ));
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

pub async fn get_one(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<User>, ApiError> {
    let user: User = app.find(&caller.org.id, "user", &id)?;
    if user.id != caller.user.id {
        caller
            .require(&app, Permission::ReadUsers, "user.get", &subject(&id))
            .await?;
    }
    Ok(axum::Json(user))
}

/// Refuses a change that would leave the org without an active owner.
fn keep_an_owner(tx: &Txn<'_>, org_id: &str, changing: &User) -> Result<(), ApiError> {
    if changing.role != Role::Owner {
        return Ok(());
    }
    let owners = tx
        .scan_all::<User>(&keys::obj_prefix(org_id, "user"))?
        .into_iter()
        .filter(|(_, u)| u.role == Role::Owner && !u.disabled && u.id != changing.id)
        .count();
    if owners == 0 {
        return Err(ApiError::Conflict(format!(
            "{} is the org's last owner; make someone else owner first",
            changing.email
        )));
    }
    Ok(())
}

pub async fn update(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<UpdateUser>,
) -> Result<axum::Json<User>, ApiError> {
    let target: User = app.find(&caller.org.id, "user", &id)?;
    caller
        .require(&app, Permission::ManageUsers, "user.update", &subject(&id))
        .await?;
    if !may_manage_role(caller.user.role, target.role)
        || req
            .role
            .is_some_and(|r| !may_manage_role(caller.user.role, r))
    {
        caller
            .deny(
                &app,
                "user.update",
                &subject(&id),
                "only owners may change owners or make someone owner".into(),
            )
            .await?;
    }
    if let Some(name) = &req.name {
        validate::display_name(name).map_err(|m| ApiError::invalid("name", m))?;
    }
    let now = app.now();
    let user = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "user", &id);
            let mut user: User = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("user", &id))?;
            let demoted = req.role.is_some_and(|r| r != Role::Owner) || req.disabled == Some(true);
            if demoted {
                keep_an_owner(tx, &caller.org.id, &user)?;
            }
            let mut changes = Vec::new();
            if let Some(name) = req.name {
                changes.push(format!("name={name}"));
                user.name = name;
            }
            if let Some(role) = req.role {
                changes.push(format!("role={}", role.as_str()));
                user.role = role;
            }
            if let Some(disabled) = req.disabled {
                changes.push(format!("disabled={disabled}"));
                user.disabled = disabled;
                if disabled {
                    auth::revoke_subject_tokens(tx, &user.id, now, |k| k == TokenKind::Session)?;
                    // Runners stop listing the user's keys at their next poll and close
                    // open SSH sessions (each closing is audited as environment.ssh).
                    changes.push("sessions revoked, SSH keys withdrawn from runners".into());
                }
            }
            tx.put(&key, &user);
            tx.audit(caller.event(
                "user.update",
                &subject(&id),
                crate::audit::Outcome::Success,
                Some(changes.join(", ")),
            ));
            Ok(user)
        })
        .await?;
    Ok(axum::Json(user))
}

pub async fn remove(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target: User = app.find(&caller.org.id, "user", &id)?;
    caller
        .require(&app, Permission::ManageUsers, "user.delete", &subject(&id))
        .await?;
    if !may_manage_role(caller.user.role, target.role) {
        caller
            .deny(
                &app,
                "user.delete",
                &subject(&id),
                "only owners may delete owners".into(),
            )
            .await?;
    }
    if target.id == caller.user.id {
        return Err(ApiError::Conflict(
            "you cannot delete yourself; ask another admin".into(),
        ));
    }
    let now = app.now();
    app.write(|tx| {
        let key = keys::obj(&caller.org.id, "user", &id);
        let user: User = tx
            .get(&key)?
            .ok_or_else(|| ApiError::not_found("user", &id))?;
        keep_an_owner(tx, &caller.org.id, &user)?;
        auth::revoke_subject_tokens(tx, &user.id, now, |_| true)?;
        for (key, k) in
            tx.scan_all::<crate::model::SshKey>(&keys::obj_prefix(&caller.org.id, "sshkey"))?
        {
            if k.user_id == user.id {
                tx.delete(&key);
            }
        }
        // The user's own secrets (git credentials) go with them: nobody else may use them.
        let own = crate::model::SecretScope::User { user_id: user.id.clone() };
        for (key, s) in tx.scan_all::<crate::model::Secret>(&keys::obj_prefix(&caller.org.id, "secret"))? {
            if s.scope == own {
                tx.delete(&key);
                tx.delete(&keys::sealed(&s.id));
                tx.audit(caller.event(
                    "secret.delete",
                    &format!("secret/{}", s.id),
                    crate::audit::Outcome::Success,
                    Some(format!("with user {}", user.id)),
                ));
            }
        }
        tx.delete(&key);
        tx.delete(&keys::email(&user.email));
        tx.delete(&keys::password(&user.id));
        tx.audit(caller.event(
            "user.delete",
            &subject(&id),
            crate::audit::Outcome::Success,
            Some(user.email.clone()),
        ));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_password(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let target: User = app.find(&caller.org.id, "user", &id)?;
    let own = target.id == caller.user.id;
    if own {
        caller
            .require(
                &app,
                Permission::OwnCredentials,
                "user.set_password",
                &subject(&id),
            )
            .await?;
        if let Some(hash) = app.store.get::<String>(&keys::password(&id))? {
            let current = req.current_password.clone().unwrap_or_default();
            let ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &current))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if !ok {
                caller
                    .deny(
                        &app,
                        "user.set_password",
                        &subject(&id),
                        "current_password is missing or wrong".into(),
                    )
                    .await?;
            }
        }
    } else {
        caller
            .require(
                &app,
                Permission::ManageUsers,
                "user.set_password",
                &subject(&id),
            )
            .await?;
        if !may_manage_role(caller.user.role, target.role) {
            caller
                .deny(
                    &app,
                    "user.set_password",
                    &subject(&id),
                    "only owners may reset an owner's password".into(),
                )
                .await?;
        }
    }
    auth::check_password_rules(&req.new_password)
        .map_err(|m| ApiError::invalid("new_password", m))?;
    let password = req.new_password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = app.now();
    app.write(|tx| {
        let key = keys::obj(&caller.org.id, "user", &id);
        let mut user: User = tx
            .get(&key)?
            .ok_or_else(|| ApiError::not_found("user", &id))?;
        user.has_password = true;
        tx.put(&key, &user);
        tx.put(&keys::password(&id), &hash);
        // Sessions opened with the old password end (the caller's own token stays valid).
        for (hash, mut token) in auth::subject_tokens(tx, &id)? {
            if token.kind == TokenKind::Session
                && token.revoked_at.is_none()
                && token.id != caller.token.id
            {
                token.revoked_at = Some(now);
                tx.put(&keys::token(&hash), &token);
            }
        }
        tx.audit(caller.success("user.set_password", &subject(&id)));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
