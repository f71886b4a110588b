//! Environments as users see them. Members manage their own; owners and admins manage all
//! of the org's; auditors read all.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::context::{Json, Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::environments::{
    admit_new, effective_runner_phase, move_to_runner, pick_runner, place_queued, set_phase,
    user_running, user_transition, UserAction, QUEUED,
};
use crate::metrics::StartTrigger;
use crate::model::{
    DesiredState, EnvEvent, EnvPhase, EnvSpec, Environment, EnvironmentClass, Page, Project,
    Runner, RunnerPhase,
};
use crate::rbac::Permission;
use crate::store::keys;
use crate::{ids, validate};
use airlock_api::CreateEnvironment;

#[derive(Deserialize, Default)]
pub struct ListFilter {
    pub project_id: Option<String>,
    #[serde(default)]
    pub include_deleted: bool,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn subject(id: &str) -> String {
    format!("environment/{id}")
}

/// The environment if the caller may see it; others' environments are 404 to members.
fn visible(app: &App, caller: &UserCaller, id: &str) -> Result<Environment, ApiError> {
    let env: Environment = app.find(&caller.org.id, "env", id)?;
    if env.owner_id != caller.user.id && !caller.may(Permission::ReadAllEnvironments) {
        return Err(ApiError::not_found("environment", id));
    }
    Ok(env)
}

pub async fn list(
    State(app): State<App>,
    caller: UserCaller,
    Query(f): Query<ListFilter>,
) -> Result<axum::Json<Page<Environment>>, ApiError> {
    let all = caller.may(Permission::ReadAllEnvironments);
    if !all {
        caller
            .require(
                &app,
                Permission::UseEnvironments,
                "environment.list",
                "environments",
            )
            .await?;
    }
    let me = caller.user.id.clone();
    let paging = Paging {
        limit: f.limit,
        cursor: f.cursor.clone(),
    };
    let keep = |e: &Environment| {
        (all || e.owner_id == me)
            && (f.include_deleted || e.phase != EnvPhase::Deleted)
            && f.project_id.as_ref().is_none_or(|p| &e.project_id == p)
    };
    Ok(axum::Json(app.list(
        &caller.org.id,
        "env",
        &paging,
        keep,
        |e| e,
    )?))
}

pub async fn get_one(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Environment>, ApiError> {
    Ok(axum::Json(visible(&app, &caller, &id)?))
}

pub async fn create(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateEnvironment>,
) -> Result<(StatusCode, axum::Json<Environment>), ApiError> {
    caller
        .require(
            &app,
            Permission::UseEnvironments,
            "environment.create",
            "environments",
        )
        .await?;
    if let Some(name) = &req.name {
        validate::name(name).map_err(|m| ApiError::invalid("name", m))?;
    }
    let org = caller.org.id.clone();
    let project: Project = ids::is_plausible_id(&req.project_id)
        .then(|| app.store.get(&keys::obj(&org, "project", &req.project_id)))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid(
                "project_id",
                format!(
                    "no project `{}` in your org; list them with GET /api/v1/projects",
                    req.project_id
                ),
            )
        })?;
    let class_id = req
        .class_id
        .clone()
        .unwrap_or_else(|| project.class_id.clone());
    let class: EnvironmentClass = ids::is_plausible_id(&class_id)
        .then(|| app.store.get(&keys::obj(&org, "class", &class_id)))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid(
                "class_id",
                format!("no environment class `{class_id}` in your org"),
            )
        })?;
    // The org's policy narrows the site's network; the project narrows within it.
    let network = project
        .network
        .within_org(&caller.org.policy.network)
        .map_err(|m| ApiError::invalid("network", m))?;
    let now = app.now();
    let id = ids::new_id("env", now);
    let name = req.name.unwrap_or_else(|| {
        format!(
            "{}-{}",
            project.name.chars().take(40).collect::<String>(),
            &id[id.len() - 6..]
        )
    });
    let inactive_after = app.config.runner_inactive_after;
    let limit = caller.org.policy.max_running_environments_per_user as u64;
    let env = app
        .write(|tx| {
            let running = user_running(tx, &caller.user.id)?;
            if running >= limit {
                return Err(ApiError::PolicyLimit(format!(
                    "you have {running} environment(s) creating, starting or running and your org allows {limit} per user; stop one first"
                )));
            }
            // Those already waiting go first; with no room left, the new one waits in the
            // org's queue (still `creating`) until an active runner has a free place.
            place_queued(tx, &org, now, inactive_after)?;
            let runner_id = pick_runner(tx, &org, now, inactive_after)?.map_or_else(|| QUEUED.to_string(), |r| r.id);
            let env = Environment {
                id: id.clone(),
                org_id: org.clone(),
                owner_id: caller.user.id.clone(),
                project_id: project.id.clone(),
                name: name.clone(),
                runner_id: runner_id.clone(),
                phase: EnvPhase::Creating,
                desired_state: DesiredState::Running,
                failure_reason: None,
                spec: EnvSpec {
                    image: project.image.clone(),
                    repository_url: project.repository_url.clone(),
                    tasks: project.tasks.clone(),
                    class_id: class.id.clone(),
                    class_name: class.name.clone(),
                    resources: class.resources.clone(),
                    ide: project.ide.clone(),
                    network: network.clone(),
                },
                created_at: now,
                updated_at: now,
                last_activity: now,
                backup: None,
            };
            admit_new(tx, &env)?;
            tx.put(&keys::obj(&org, "env", &env.id), &env);
            let placed = if runner_id == QUEUED {
                "queued: no active runner has a free place".to_string()
            } else {
                format!("on runner {runner_id}")
            };
            tx.audit(caller.event("environment.create", &subject(&env.id), Outcome::Success, Some(format!("project {} {placed}", project.id))));
            Ok(env)
        })
        .await?;
    app.metrics.start_requested(&env.id, StartTrigger::Create);
    Ok((StatusCode::CREATED, axum::Json(env)))
}

async fn act(
    app: App,
    caller: UserCaller,
    id: String,
    action: UserAction,
) -> Result<axum::Json<Environment>, ApiError> {
    let env = visible(&app, &caller, &id)?;
    let name = match action {
        UserAction::Start => "environment.start",
        UserAction::Stop => "environment.stop",
        UserAction::Delete => "environment.delete",
    };
    let perm = if env.owner_id == caller.user.id {
        Permission::UseEnvironments
    } else {
        Permission::ManageAllEnvironments
    };
    caller.require(&app, perm, name, &subject(&id)).await?;
    let now = app.now();
    let limit = caller.org.policy.max_running_environments_per_user as u64;
    let env = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "env", &id);
            let mut env: Environment = tx.get(&key)?.ok_or_else(|| ApiError::not_found("environment", &id))?;
            let Some((phase, desired)) = user_transition(env.phase, action).map_err(ApiError::Conflict)? else {
                return Ok(env);
            };
            if action == UserAction::Start {
                let running = user_running(tx, &env.owner_id)?;
                if running >= limit {
                    return Err(ApiError::PolicyLimit(format!(
                        "the owner has {running} environment(s) creating, starting or running and the org allows {limit} per user; stop one first"
                    )));
                }
            }
            let from = env.phase;
            let mut moved = None;
            if action == UserAction::Start {
                // A stopped environment whose runner is gone starts on another one.
                let inactive_after = app.config.runner_inactive_after;
                let host: Option<Runner> = tx.get(&keys::obj(&caller.org.id, "runner", &env.runner_id))?;
                let usable = host.is_some_and(|r| effective_runner_phase(&r, now, inactive_after) == RunnerPhase::Active);
                if !usable {
                    // Another runner with room (after those already waiting), or the queue.
                    place_queued(tx, &caller.org.id, now, inactive_after)?;
                    let to = pick_runner(tx, &caller.org.id, now, inactive_after)?.map_or_else(|| QUEUED.to_string(), |r| r.id);
                    if to != env.runner_id {
                        moved = Some((env.runner_id.clone(), to.clone()));
                    }
                    // From the queue back into it (stopped while queued): take its turn again.
                    move_to_runner(tx, &mut env, &to)?;
                }
            }
            // No runner holds a queued environment, so nobody else would confirm these.
            let phase = match phase {
                EnvPhase::Stopping if env.runner_id == QUEUED => EnvPhase::Stopped,
                EnvPhase::Deleting if env.runner_id == QUEUED => EnvPhase::Deleted,
                other => other,
            };
            set_phase(tx, &mut env, phase)?;
            env.desired_state = desired;
            env.failure_reason = None;
            env.updated_at = now;
            if action == UserAction::Start {
                env.last_activity = now;
            }
            tx.put(&key, &env);
            let mut detail = format!("{} -> {}", from.as_str(), phase.as_str());
            match moved {
                Some((old, new)) if new == QUEUED => {
                    detail.push_str(&format!("; runner {old} is not active and no other has a free place: queued"))
                }
                Some((old, new)) if old == QUEUED => detail.push_str(&format!("; placed on runner {new}")),
                Some((old, new)) => detail.push_str(&format!("; moved from inactive runner {old} to {new}")),
                None => {}
            }
            tx.audit(caller.event(name, &subject(&id), Outcome::Success, Some(detail)));
            Ok(env)
        })
        .await?;
    if action == UserAction::Start && env.phase == EnvPhase::Starting {
        app.metrics.start_requested(&env.id, StartTrigger::Start);
    }
    Ok(axum::Json(env))
}

pub async fn start(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Environment>, ApiError> {
    act(app, caller, id, UserAction::Start).await
}

pub async fn stop(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Environment>, ApiError> {
    act(app, caller, id, UserAction::Stop).await
}

pub async fn remove(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Environment>, ApiError> {
    act(app, caller, id, UserAction::Delete).await
}

pub async fn events(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<EnvEvent>>, ApiError> {
    visible(&app, &caller, &id)?;
    let prefix = keys::event_prefix(&id);
    let (items, more) =
        app.store
            .scan::<EnvEvent>(&prefix, paging.cursor()?, paging.limit()?, |_| true)?;
    let next_cursor = if more {
        items.last().map(|(k, _)| k[prefix.len()..].to_string())
    } else {
        None
    };
    Ok(axum::Json(Page {
        items: items.into_iter().map(|(_, e)| e).collect(),
        next_cursor,
    }))
}
