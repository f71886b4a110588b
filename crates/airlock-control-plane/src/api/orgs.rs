//! Orgs. Each user belongs to one org; site admins (owners and admins of the org created
//! by `admin init`) create further orgs.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::context::{Json, Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::model::{Org, OrgPolicy, Page, User};
use crate::rbac::{Permission, Role};
use crate::store::keys;
use crate::{auth, ids, validate};
use airlock_api::{CreateOrg, NewOrg, UpdateOrg};

fn check_policy(p: &OrgPolicy) -> Result<(), ApiError> {
    if !(1..=100_000).contains(&p.max_running_environments_per_user) {
        return Err(ApiError::invalid(
            "policy.max_running_environments_per_user",
            "use 1 to 100000",
        ));
    }
    p.network.validate().map_err(|m| ApiError::invalid("policy.network", m))?;
    if p.idle_timeout_minutes > 10_080 {
        return Err(ApiError::invalid(
            "policy.idle_timeout_minutes",
            "use 0 (never) to 10080 (a week)",
        ));
    }
    Ok(())
}

pub async fn list(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<Org>>, ApiError> {
    caller
        .require(&app, Permission::ReadOrg, "org.list", "orgs")
        .await?;
    if !caller.may(Permission::SiteAdmin) {
        return Ok(axum::Json(Page {
            items: vec![caller.org.clone()],
            next_cursor: None,
        }));
    }
    let (items, more) = app
        .store
        .scan::<Org>("org/", paging.cursor()?, paging.limit()?, |_| true)?;
    let next_cursor = if more {
        items.last().map(|(_, o)| o.id.clone())
    } else {
        None
    };
    Ok(axum::Json(Page {
        items: items.into_iter().map(|(_, o)| o).collect(),
        next_cursor,
    }))
}

pub async fn create(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateOrg>,
) -> Result<(StatusCode, axum::Json<NewOrg>), ApiError> {
    caller
        .require(&app, Permission::SiteAdmin, "org.create", "orgs")
        .await?;
    validate::name(&req.name).map_err(|m| ApiError::invalid("name", m))?;
    let email = req.owner_email.trim().to_lowercase();
    validate::email(&email).map_err(|m| ApiError::invalid("owner_email", m))?;
    auth::check_password_rules(&req.owner_password)
        .map_err(|m| ApiError::invalid("owner_password", m))?;
    let policy = req.policy.unwrap_or_default();
    check_policy(&policy)?;
    let password = req.owner_password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = app.now();
    let org = Org {
        id: ids::new_id("org", now),
        name: req.name,
        site: false,
        policy,
        created_at: now,
    };
    let owner = User {
        id: ids::new_id("usr", now),
        org_id: org.id.clone(),
        email: email.clone(),
        name: email,
        role: Role::Owner,
        disabled: false,
        has_password: true,
        created_at: now,
    };
    app.write(|tx| {
        if tx
            .scan_all::<Org>("org/")?
            .iter()
            .any(|(_, o)| o.name == org.name)
        {
            return Err(ApiError::Conflict(format!(
                "an org named `{}` already exists",
                org.name
            )));
        }
        if tx.contains(&keys::email(&owner.email))? {
            return Err(ApiError::Conflict(format!(
                "a user with email {} already exists",
                owner.email
            )));
        }
        tx.put(&keys::org(&org.id), &org);
        tx.put(&keys::obj(&org.id, "user", &owner.id), &owner);
        tx.put(
            &keys::email(&owner.email),
            &format!("{}/{}", org.id, owner.id),
        );
        tx.put(&keys::password(&owner.id), &hash);
        tx.audit(caller.event(
            "org.create",
            &format!("org/{}", org.id),
            Outcome::Success,
            Some(format!("`{}` with owner {}", org.name, owner.email)),
        ));
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(NewOrg { org, owner })))
}

/// The org with `id` if the caller may see it: their own, or any for site admins.
fn visible_org(app: &App, caller: &UserCaller, id: &str) -> Result<Org, ApiError> {
    super::context::checked_id("org", id)?;
    if id != caller.org.id && !caller.may(Permission::SiteAdmin) {
        return Err(ApiError::not_found("org", id));
    }
    app.store
        .get(&keys::org(id))?
        .ok_or_else(|| ApiError::not_found("org", id))
}

pub async fn get_one(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Org>, ApiError> {
    Ok(axum::Json(visible_org(&app, &caller, &id)?))
}

pub async fn update(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<UpdateOrg>,
) -> Result<axum::Json<Org>, ApiError> {
    visible_org(&app, &caller, &id)?;
    let perm = if id == caller.org.id {
        Permission::ManageOrg
    } else {
        Permission::SiteAdmin
    };
    caller
        .require(&app, perm, "org.update", &format!("org/{id}"))
        .await?;
    if let Some(name) = &req.name {
        validate::name(name).map_err(|m| ApiError::invalid("name", m))?;
    }
    let org = app
        .write(|tx| {
            let mut org: Org = tx
                .get(&keys::org(&id))?
                .ok_or_else(|| ApiError::not_found("org", &id))?;
            if let Some(name) = req.name {
                if tx
                    .scan_all::<Org>("org/")?
                    .iter()
                    .any(|(_, o)| o.name == name && o.id != id)
                {
                    return Err(ApiError::Conflict(format!(
                        "an org named `{name}` already exists"
                    )));
                }
                org.name = name;
            }
            if let Some(p) = req.policy {
                if let Some(v) = p.max_running_environments_per_user {
                    org.policy.max_running_environments_per_user = v;
                }
                if let Some(v) = p.idle_timeout_minutes {
                    org.policy.idle_timeout_minutes = v;
                }
                if let Some(v) = p.network {
                    org.policy.network = v;
                }
            }
            check_policy(&org.policy)?;
            tx.put(&keys::org(&id), &org);
            let detail = format!(
                "name={}, max_running_environments_per_user={}, idle_timeout_minutes={}, network.allow={:?}",
                org.name,
                org.policy.max_running_environments_per_user,
                org.policy.idle_timeout_minutes,
                org.policy.network.allow
            );
            tx.audit(caller.event(
                "org.update",
                &format!("org/{id}"),
                Outcome::Success,
                Some(detail),
            ));
            Ok(org)
        })
        .await?;
    Ok(axum::Json(org))
}
