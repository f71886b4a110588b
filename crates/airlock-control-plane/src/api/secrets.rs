//! Secrets: metadata through the API, values only to the runner hosting an environment
//! (see `runner_api::secrets`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::context::{Json, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::model::{Delivery, Environment, Page, SealedValue, Secret, SecretScope};
use crate::rbac::Permission;
use crate::store::keys;
use crate::{ids, validate};
use airlock_api::{CreateSecret, RotateKekResult, SetSecretValue};

#[derive(Deserialize, Default)]
pub struct ListFilter {
    pub project_id: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn subject(id: &str) -> String {
    format!("secret/{id}")
}

/// The secrets an environment gets: the org's, overridden by name by its project's, then by
/// its owner's own (git credentials among them). Another user's secrets never.
pub fn for_environment(app: &App, env: &Environment) -> Result<Vec<Secret>, ApiError> {
    let mut by_name: BTreeMap<String, Secret> = BTreeMap::new();
    let all = app
        .store
        .scan_all::<Secret>(&keys::obj_prefix(&env.org_id, "secret"))?;
    for (_, s) in all.iter().filter(|(_, s)| s.scope == SecretScope::Org) {
        by_name.insert(s.name.clone(), s.clone());
    }
    let project_scope = SecretScope::Project {
        project_id: env.project_id.clone(),
    };
    for (_, s) in all.iter().filter(|(_, s)| s.scope == project_scope) {
        by_name.insert(s.name.clone(), s.clone());
    }
    let owner_scope = SecretScope::User {
        user_id: env.owner_id.clone(),
    };
    for (_, s) in all.into_iter().filter(|(_, s)| s.scope == owner_scope) {
        by_name.insert(s.name.clone(), s);
    }
    Ok(by_name.into_values().collect())
}

/// A user's own secret is theirs alone: others (admins included) neither see nor change it.
/// Answered as "not found", so its existence is not revealed either.
fn visible_to(caller: &UserCaller, secret: &Secret) -> bool {
    match &secret.scope {
        SecretScope::User { user_id } => *user_id == caller.user.id,
        SecretScope::Org | SecretScope::Project { .. } => true,
    }
}

/// Users manage their own secrets as they use environments; org and project secrets are
/// inventory the org's admins manage.
fn manage_permission(scope: &SecretScope) -> Permission {
    match scope {
        SecretScope::User { .. } => Permission::UseEnvironments,
        SecretScope::Org | SecretScope::Project { .. } => Permission::ManageInventory,
    }
}

fn find_visible(app: &App, caller: &UserCaller, id: &str) -> Result<Secret, ApiError> {
    let secret: Secret = app.find(&caller.org.id, "secret", id)?;
    if !visible_to(caller, &secret) {
        return Err(ApiError::not_found("secret", id));
    }
    Ok(secret)
}

pub async fn list(
    State(app): State<App>,
    caller: UserCaller,
    Query(f): Query<ListFilter>,
) -> Result<axum::Json<Page<Secret>>, ApiError> {
    caller
        .require(&app, Permission::ReadInventory, "secret.list", "secrets")
        .await?;
    let paging = super::context::Paging {
        limit: f.limit,
        cursor: f.cursor.clone(),
    };
    let keep = |s: &Secret| {
        visible_to(&caller, s)
            && match (&f.project_id, &s.scope) {
                (None, _) => true,
                (Some(p), SecretScope::Project { project_id }) => p == project_id,
                (Some(_), SecretScope::Org | SecretScope::User { .. }) => false,
            }
    };
    Ok(axum::Json(app.list(
        &caller.org.id,
        "secret",
        &paging,
        keep,
        |s| s,
    )?))
}

pub async fn get_one(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Secret>, ApiError> {
    let secret = find_visible(&app, &caller, &id)?;
    let permission = match secret.scope {
        SecretScope::User { .. } => Permission::UseEnvironments,
        _ => Permission::ReadInventory,
    };
    caller
        .require(&app, permission, "secret.get", &subject(&id))
        .await?;
    Ok(axum::Json(secret))
}

pub async fn create(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateSecret>,
) -> Result<(StatusCode, axum::Json<Secret>), ApiError> {
    caller
        .require(
            &app,
            manage_permission(&req.scope),
            "secret.create",
            "secrets",
        )
        .await?;
    validate::name(&req.name).map_err(|m| ApiError::invalid("name", m))?;
    if let SecretScope::User { user_id } = &req.scope {
        if *user_id != caller.user.id {
            return Err(ApiError::invalid(
                "scope.user_id",
                format!("a user secret belongs to the user who creates it: use your own id `{}`", caller.user.id),
            ));
        }
    }
    // The user's own identity on the git server, never a shared one.
    if req.delivery.as_ref().and_then(Delivery::git_host).is_some() && !matches!(req.scope, SecretScope::User { .. }) {
        return Err(ApiError::invalid(
            "scope",
            "git credentials are personal: create them with scope `user` (`airlock git-credentials add`)",
        ));
    }
    let delivery = req.delivery.unwrap_or_else(|| Delivery::File {
        path: format!("/run/secrets/{}", req.name),
    });
    validate::delivery(&delivery).map_err(|m| ApiError::invalid("delivery", m))?;
    validate::secret_value(&req.value).map_err(|m| ApiError::invalid("value", m))?;
    validate::git_secret_value(&delivery, &req.value).map_err(|m| ApiError::invalid("value", m))?;
    let now = app.now();
    let id = ids::new_id("sec", now);
    let sealed = app.keyring.seal(&id, req.value.as_bytes());
    let secret = Secret {
        id: id.clone(),
        org_id: caller.org.id.clone(),
        name: req.name,
        scope: req.scope,
        delivery,
        kek_id: sealed.kek_id.clone(),
        created_at: now,
        updated_at: now,
    };
    app.write(|tx| {
        if let SecretScope::Project { project_id } = &secret.scope {
            if !ids::is_plausible_id(project_id)
                || !tx.contains(&keys::obj(&secret.org_id, "project", project_id))?
            {
                return Err(ApiError::invalid(
                    "scope.project_id",
                    format!("no project `{project_id}` in your org"),
                ));
            }
        }
        let clash = tx
            .scan_all::<Secret>(&keys::obj_prefix(&secret.org_id, "secret"))?
            .into_iter()
            .any(|(_, s)| s.name == secret.name && s.scope == secret.scope);
        if clash {
            return Err(ApiError::Conflict(format!(
                "a secret named `{}` already exists in this scope; set its value instead",
                secret.name
            )));
        }
        tx.put(&keys::obj(&secret.org_id, "secret", &id), &secret);
        tx.put(&keys::sealed(&id), &sealed);
        tx.audit(caller.event(
            "secret.create",
            &subject(&id),
            Outcome::Success,
            Some(secret.name.clone()),
        ));
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(secret)))
}

pub async fn set_value(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<SetSecretValue>,
) -> Result<axum::Json<Secret>, ApiError> {
    let existing = find_visible(&app, &caller, &id)?;
    caller
        .require(
            &app,
            manage_permission(&existing.scope),
            "secret.update",
            &subject(&id),
        )
        .await?;
    validate::secret_value(&req.value).map_err(|m| ApiError::invalid("value", m))?;
    validate::git_secret_value(&existing.delivery, &req.value).map_err(|m| ApiError::invalid("value", m))?;
    let sealed = app.keyring.seal(&id, req.value.as_bytes());
    let now = app.now();
    let secret = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "secret", &id);
            let mut secret: Secret = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("secret", &id))?;
            secret.kek_id = sealed.kek_id.clone();
            secret.updated_at = now;
            tx.put(&key, &secret);
            tx.put(&keys::sealed(&id), &sealed);
            tx.audit(caller.event(
                "secret.update",
                &subject(&id),
                Outcome::Success,
                Some("new value".into()),
            ));
            Ok(secret)
        })
        .await?;
    Ok(axum::Json(secret))
}

pub async fn remove(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let existing = find_visible(&app, &caller, &id)?;
    caller
        .require(
            &app,
            manage_permission(&existing.scope),
            "secret.delete",
            &subject(&id),
        )
        .await?;
    app.write(|tx| {
        tx.delete(&keys::obj(&caller.org.id, "secret", &id));
        tx.delete(&keys::sealed(&id));
        tx.audit(caller.success("secret.delete", &subject(&id)));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-wraps every data key (all orgs) not yet under the current KEK. All or nothing: if any
/// secret's KEK is not loaded, nothing changes and the error names it.
pub async fn rotate_kek(
    State(app): State<App>,
    caller: UserCaller,
) -> Result<axum::Json<RotateKekResult>, ApiError> {
    caller
        .require(&app, Permission::SiteAdmin, "secret.rotate_kek", "secrets")
        .await?;
    let current = app.keyring.current_id().to_string();
    let result = app
        .write(|tx| {
            let mut rewrapped = 0;
            let mut already_current = 0;
            let mut from = std::collections::BTreeSet::new();
            for (key, sealed) in tx.scan_all::<SealedValue>("sealed/")? {
                if sealed.kek_id == current {
                    already_current += 1;
                    continue;
                }
                let secret_id = key["sealed/".len()..].to_string();
                let fresh = app
                    .keyring
                    .rewrap(&secret_id, &sealed)
                    .map_err(|e| ApiError::Conflict(e.to_string()))?;
                from.insert(sealed.kek_id.clone());
                tx.put(&key, &fresh);
                rewrapped += 1;
            }
            // Keep the metadata's kek_id in step.
            for (_, org) in tx.scan_all::<crate::model::Org>("org/")? {
                for (key, mut s) in tx.scan_all::<Secret>(&keys::obj_prefix(&org.id, "secret"))? {
                    if s.kek_id != current {
                        s.kek_id = current.clone();
                        tx.put(&key, &s);
                    }
                }
            }
            let from: Vec<_> = from.into_iter().collect();
            tx.audit(caller.event(
                "secret.rotate_kek",
                "secrets",
                Outcome::Success,
                Some(format!(
                    "re-wrapped {rewrapped} data key(s) from [{}] to {current}",
                    from.join(", ")
                )),
            ));
            Ok(RotateKekResult {
                current_kek_id: current.clone(),
                rewrapped,
                already_current,
            })
        })
        .await?;
    Ok(axum::Json(result))
}
