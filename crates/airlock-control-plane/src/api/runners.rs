//! Runners as admins see them: create (with a one-time exchange token), list, change,
//! delete, re-issue the exchange token.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::context::{Json, Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::environments::effective_runner_phase;
use crate::model::{Page, Runner, RunnerPhase, TokenKind};
use crate::rbac::Permission;
use crate::store::{keys, Txn};
use crate::{auth, ids, validate};
use airlock_api::{CreateRunner, NewRunner, RunnerView, UpdateRunner};

pub const MAX_CAPACITY: u32 = 100_000;

pub fn view(app: &App, r: Runner) -> Result<RunnerView, ApiError> {
    let load: u64 = app.store.get(&keys::runner_load(&r.id))?.unwrap_or(0);
    Ok(RunnerView {
        phase: effective_runner_phase(&r, app.now(), app.config.runner_inactive_after),
        id: r.id,
        org_id: r.org_id,
        name: r.name,
        capacity: r.capacity,
        environments: load,
        message: r.message,
        version: r.version,
        last_heartbeat: r.last_heartbeat,
        created_at: r.created_at,
    })
}

fn check_capacity(capacity: u32) -> Result<(), ApiError> {
    if (1..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "capacity",
            format!("{capacity} is out of range; use 1 to {MAX_CAPACITY}"),
        ))
    }
}

fn unique(tx: &Txn<'_>, org: &str, name: &str, except: &str) -> Result<(), ApiError> {
    if let Some((_, r)) = tx
        .scan_all::<Runner>(&keys::obj_prefix(org, "runner"))?
        .into_iter()
        .find(|(_, r)| r.name == name && r.id != except)
    {
        return Err(ApiError::Conflict(format!(
            "a runner named `{name}` already exists (id {})",
            r.id
        )));
    }
    Ok(())
}

pub async fn list(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<RunnerView>>, ApiError> {
    caller
        .require(&app, Permission::ReadRunners, "runner.list", "runners")
        .await?;
    let page = app.list(&caller.org.id, "runner", &paging, |_: &Runner| true, |r| r)?;
    let items = page
        .items
        .into_iter()
        .map(|r| view(&app, r))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn get_one(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<RunnerView>, ApiError> {
    let runner: Runner = app.find(&caller.org.id, "runner", &id)?;
    caller
        .require(
            &app,
            Permission::ReadRunners,
            "runner.get",
            &format!("runner/{id}"),
        )
        .await?;
    Ok(axum::Json(view(&app, runner)?))
}

pub async fn create(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateRunner>,
) -> Result<(StatusCode, axum::Json<NewRunner>), ApiError> {
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "runner.create",
            "runners",
        )
        .await?;
    validate::name(&req.name).map_err(|m| ApiError::invalid("name", m))?;
    check_capacity(req.capacity)?;
    let now = app.now();
    let runner = Runner {
        id: ids::new_id("run", now),
        org_id: caller.org.id.clone(),
        name: req.name,
        capacity: req.capacity,
        phase: RunnerPhase::Created,
        message: None,
        version: None,
        last_heartbeat: None,
        created_at: now,
        ssh: None,
    };
    let ttl = app.config.exchange_ttl;
    let (token, record) = app
        .write(|tx| {
            unique(tx, &runner.org_id, &runner.name, "")?;
            tx.put(&keys::obj(&runner.org_id, "runner", &runner.id), &runner);
            let issued = auth::issue_token(
                tx,
                TokenKind::RunnerExchange,
                &runner.org_id,
                &runner.id,
                "exchange",
                now,
                Some(ttl),
            );
            tx.audit(caller.event(
                "runner.create",
                &format!("runner/{}", runner.id),
                Outcome::Success,
                Some(format!("`{}` capacity {}", runner.name, runner.capacity)),
            ));
            Ok(issued)
        })
        .await?;
    let runner = view(&app, runner)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewRunner {
            runner,
            exchange_token: token,
            exchange_expires_at: record.expires_at.unwrap_or(now),
        }),
    ))
}

pub async fn update(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<UpdateRunner>,
) -> Result<axum::Json<RunnerView>, ApiError> {
    let _: Runner = app.find(&caller.org.id, "runner", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "runner.update",
            &format!("runner/{id}"),
        )
        .await?;
    if let Some(name) = &req.name {
        validate::name(name).map_err(|m| ApiError::invalid("name", m))?;
    }
    if let Some(c) = req.capacity {
        check_capacity(c)?;
    }
    let runner = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "runner", &id);
            let mut r: Runner = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("runner", &id))?;
            if let Some(name) = req.name {
                unique(tx, &r.org_id, &name, &id)?;
                r.name = name;
            }
            r.capacity = req.capacity.unwrap_or(r.capacity);
            tx.put(&key, &r);
            tx.audit(caller.event(
                "runner.update",
                &format!("runner/{id}"),
                Outcome::Success,
                Some(format!("`{}` capacity {}", r.name, r.capacity)),
            ));
            Ok(r)
        })
        .await?;
    Ok(axum::Json(view(&app, runner)?))
}

pub async fn remove(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _: Runner = app.find(&caller.org.id, "runner", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "runner.delete",
            &format!("runner/{id}"),
        )
        .await?;
    let now = app.now();
    app.write(|tx| {
        let load = crate::environments::runner_load(tx, &id)?;
        if load > 0 {
            return Err(ApiError::Conflict(format!(
                "the runner still hosts {load} environment(s); delete them first"
            )));
        }
        auth::revoke_subject_tokens(tx, &id, now, |_| true)?;
        tx.delete(&keys::obj(&caller.org.id, "runner", &id));
        tx.audit(caller.success("runner.delete", &format!("runner/{id}")));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A fresh exchange token, for a runner whose token expired or that must re-register.
/// The runner's current credential stops working.
pub async fn issue_exchange_token(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<NewRunner>), ApiError> {
    let _: Runner = app.find(&caller.org.id, "runner", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "runner.exchange_token",
            &format!("runner/{id}"),
        )
        .await?;
    let now = app.now();
    let ttl = app.config.exchange_ttl;
    let (runner, token, record) = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "runner", &id);
            let mut r: Runner = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("runner", &id))?;
            let revoked = auth::revoke_subject_tokens(tx, &id, now, |_| true)?;
            r.phase = RunnerPhase::Created;
            r.last_heartbeat = None;
            tx.put(&key, &r);
            let (token, record) = auth::issue_token(
                tx,
                TokenKind::RunnerExchange,
                &r.org_id,
                &r.id,
                "exchange",
                now,
                Some(ttl),
            );
            tx.audit(caller.event(
                "runner.exchange_token",
                &format!("runner/{id}"),
                Outcome::Success,
                Some(format!("revoked {revoked} earlier token(s)")),
            ));
            Ok((r, token, record))
        })
        .await?;
    let runner = view(&app, runner)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewRunner {
            runner,
            exchange_token: token,
            exchange_expires_at: record.expires_at.unwrap_or(now),
        }),
    ))
}
