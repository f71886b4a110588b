//! The API runners call (`/api/v1/runner/*`). See docs/control-plane-api.md.
//!
//! A runner polls `GET /runner/environments` for the environments assigned to it (spec and
//! desired state), drives each towards its desired state, reports the phases it reaches,
//! fetches secret values just before it starts an environment, and heartbeats.

use std::collections::HashSet;

use axum::extract::{Path, State};

use super::context::{checked_id, Json, Meta, Paging, Query, RunnerCaller};
use super::{ApiError, App};
use crate::audit::{Actor, ActorKind, AuditEvent, Outcome};
use crate::environments::{effective_runner_phase, place_queued, runner_may_report, set_phase};
use crate::model::{
    EnvEvent, EnvPhase, Environment, Page, Runner, RunnerPhase, SealedValue, SshKey, Token,
    TokenKind, User,
};
use crate::store::keys;
use crate::{auth, ids};
use airlock_api::{
    EventsAccepted, EventsReport, ExchangeRequest, Heartbeat, HeartbeatResponse, Owner,
    RunnerCredential, RunnerEnvironment, SecretRef, SecretValue, SecretValues, StatusReport,
};

pub async fn exchange(
    State(app): State<App>,
    Meta(meta): Meta,
    Json(req): Json<ExchangeRequest>,
) -> Result<axum::Json<RunnerCredential>, ApiError> {
    if req.exchange_token.len() > 128 {
        return Err(ApiError::invalid("exchange_token", "at most 128 bytes; pass the token `airlock admin runners create` printed"));
    }
    let now = app.now();
    let hash = ids::token_hash(req.exchange_token.trim());
    let outcome = crate::store::blocking(|| {
        app.store.commit(now, |tx| -> Result<Result<RunnerCredential, String>, ApiError> {
        let stored: Option<Token> = tx.get(&keys::token(&hash))?;
        let refusal = match &stored {
            None => Some((None, auth::TokenRejection::Unknown.to_string())),
            Some(t) if t.kind != TokenKind::RunnerExchange => Some((None, "this is not a runner exchange token; use the one printed by `airlock admin runners create`".into())),
            Some(t) => auth::check_token(t, now).err().map(|e| (Some(t.clone()), e.to_string())),
        };
        if let Some((token, why)) = refusal {
            tx.audit(AuditEvent {
                org_id: token.as_ref().map(|t| t.org_id.clone()),
                actor: Actor { kind: ActorKind::Anonymous, id: String::new(), name: "runner exchange".into(), token_id: token.as_ref().map(|t| t.id.clone()) },
                action: "runner.exchange".into(),
                subject: token.as_ref().map(|t| format!("runner/{}", t.subject_id)).unwrap_or_else(|| "runner/unknown".into()),
                outcome: Outcome::Failure,
                source: meta.source.clone(),
                request_id: meta.request_id.clone(),
                detail: Some(why.clone()),
            });
            return Ok(Err(why));
        }
        let mut token = stored.expect("checked above");
        let runner: Runner = tx
            .get(&keys::obj(&token.org_id, "runner", &token.subject_id))?
            .ok_or_else(|| ApiError::Unauthenticated("the runner this token was issued for was deleted".into()))?;
        token.used_at = Some(now);
        tx.put(&keys::token(&hash), &token);
        // A runner that registers again replaces its old credential.
        auth::revoke_subject_tokens(tx, &runner.id, now, |k| k == TokenKind::Runner)?;
        let (credential, record) = auth::issue_token(tx, TokenKind::Runner, &runner.org_id, &runner.id, "runner", now, None);
        tx.audit(AuditEvent {
            org_id: Some(runner.org_id.clone()),
            actor: Actor { kind: ActorKind::Runner, id: runner.id.clone(), name: runner.name.clone(), token_id: Some(record.id.clone()) },
            action: "runner.exchange".into(),
            subject: format!("runner/{}", runner.id),
            outcome: Outcome::Success,
            source: meta.source.clone(),
            request_id: meta.request_id.clone(),
            detail: Some(format!("exchange token {} used", token.id)),
        });
        Ok(Ok(RunnerCredential { runner_id: runner.id, org_id: runner.org_id, credential, heartbeat_interval_seconds: app.config.heartbeat_interval.as_secs() }))
    })
    })?;
    app.store.flush().await?;
    outcome.map(axum::Json).map_err(ApiError::Unauthenticated)
}

pub async fn heartbeat(
    State(app): State<App>,
    caller: RunnerCaller,
    Json(req): Json<Heartbeat>,
) -> Result<axum::Json<HeartbeatResponse>, ApiError> {
    let status = req.status.unwrap_or(RunnerPhase::Active);
    if !matches!(status, RunnerPhase::Active | RunnerPhase::Degraded) {
        return Err(ApiError::invalid(
            "status",
            "a runner reports `active` or `degraded`",
        ));
    }
    if req.message.as_ref().is_some_and(|m| m.len() > 1024)
        || req.version.as_ref().is_some_and(|v| v.len() > 128)
    {
        return Err(ApiError::invalid(
            "message",
            "message is limited to 1024 bytes, version to 128",
        ));
    }
    if let Some(ssh) = &req.ssh {
        let host_ok = !ssh.host.is_empty()
            && ssh.host.len() <= 253
            && ssh.host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !host_ok {
            return Err(ApiError::invalid("ssh.host", "a host name or IP address"));
        }
        if !ssh.host_key.starts_with("ssh-") && !ssh.host_key.starts_with("ecdsa-")
            || ssh.host_key.len() > 8192
            || ssh.host_key.contains('\n')
        {
            return Err(ApiError::invalid(
                "ssh.host_key",
                "one OpenSSH public key line, e.g. `ssh-ed25519 AAAA...`",
            ));
        }
    }
    let now = app.now();
    let inactive_after = app.config.runner_inactive_after;
    let unknown = app
        .write(|tx| {
            let key = keys::obj(&caller.runner.org_id, "runner", &caller.runner.id);
            let mut runner: Runner = tx
                .get(&key)?
                .ok_or_else(|| ApiError::Unauthenticated("this runner was deleted".into()))?;
            let before = effective_runner_phase(&runner, now, inactive_after);
            runner.phase = status;
            runner.message = req.message.clone();
            runner.version = req.version.clone().or(runner.version);
            runner.last_heartbeat = Some(now);
            if req.ssh.is_some() {
                runner.ssh = req.ssh.clone();
            }
            tx.put(&key, &runner);
            // A heartbeat may bring room (a runner back, or a raised capacity): place what waits.
            place_queued(tx, &runner.org_id, now, inactive_after)?;
            if before != status {
                tx.audit(caller.event(
                    "runner.phase",
                    &format!("runner/{}", runner.id),
                    Outcome::Success,
                    Some(format!("{before:?} -> {status:?}").to_lowercase()),
                ));
            }
            let mut unknown = Vec::new();
            for a in &req.environments {
                let hosted = ids::is_plausible_id(&a.id)
                    && tx.contains(&keys::runner_env(&runner.id, &a.id))?;
                let env_key = keys::obj(&runner.org_id, "env", &a.id);
                match hosted
                    .then(|| tx.get::<Environment>(&env_key))
                    .transpose()?
                    .flatten()
                {
                    Some(mut env) => {
                        if a.last_activity > env.last_activity {
                            env.last_activity = a.last_activity.min(now);
                            tx.put(&env_key, &env);
                        }
                    }
                    None => unknown.push(a.id.clone()),
                }
            }
            Ok(unknown)
        })
        .await?;
    Ok(axum::Json(HeartbeatResponse {
        runner_id: caller.runner.id,
        phase: status,
        heartbeat_interval_seconds: app.config.heartbeat_interval.as_secs(),
        inactive_after_seconds: inactive_after.as_secs(),
        unknown_environments: unknown,
    }))
}

pub(super) fn runner_view(app: &App, env: Environment) -> Result<RunnerEnvironment, ApiError> {
    let owner: Option<User> = app
        .store
        .get(&keys::obj(&env.org_id, "user", &env.owner_id))?;
    // A disabled or deleted owner's keys are withdrawn: the gateway then closes their sessions.
    let ssh_authorized_keys = match &owner {
        Some(u) if !u.disabled => app
            .store
            .scan_all::<SshKey>(&keys::obj_prefix(&env.org_id, "sshkey"))?
            .into_iter()
            .filter(|(_, k)| k.user_id == env.owner_id)
            .map(|(_, k)| k.public_key)
            .collect(),
        _ => Vec::new(),
    };
    let secrets = super::secrets::for_environment(app, &env)?
        .into_iter()
        .map(|s| SecretRef {
            id: s.id,
            name: s.name,
            delivery: s.delivery,
        })
        .collect();
    Ok(RunnerEnvironment {
        owner: Owner {
            id: env.owner_id.clone(),
            name: owner.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
            email: owner.map(|u| u.email).unwrap_or_default(),
        },
        id: env.id,
        name: env.name,
        org_id: env.org_id,
        project_id: env.project_id,
        phase: env.phase,
        desired_state: env.desired_state,
        failure_reason: env.failure_reason,
        spec: env.spec,
        secrets,
        ssh_authorized_keys,
        updated_at: env.updated_at,
        last_activity: env.last_activity,
        backup: env.backup,
    })
}

/// The environment `id` if this runner hosts it; 404 otherwise (also across orgs).
pub(super) fn hosted(app: &App, caller: &RunnerCaller, id: &str) -> Result<Environment, ApiError> {
    checked_id("environment", id)?;
    let env: Environment = app
        .store
        .get(&keys::obj(&caller.runner.org_id, "env", id))?
        .ok_or_else(|| ApiError::not_found("environment", id))?;
    if env.runner_id != caller.runner.id {
        return Err(ApiError::not_found("environment", id));
    }
    Ok(env)
}

pub async fn list_environments(
    State(app): State<App>,
    caller: RunnerCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<RunnerEnvironment>>, ApiError> {
    let prefix = keys::runner_env_prefix(&caller.runner.id);
    let (assigned, more) =
        app.store
            .scan::<()>(&prefix, paging.cursor()?, paging.limit()?, |_| true)?;
    let next_cursor = if more {
        assigned.last().map(|(k, _)| k[prefix.len()..].to_string())
    } else {
        None
    };
    let mut items = Vec::with_capacity(assigned.len());
    for (key, ()) in assigned {
        if let Some(env) = app.store.get::<Environment>(&keys::obj(
            &caller.runner.org_id,
            "env",
            &key[prefix.len()..],
        ))? {
            items.push(runner_view(&app, env)?);
        }
    }
    Ok(axum::Json(Page { items, next_cursor }))
}

pub async fn get_environment(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<RunnerEnvironment>, ApiError> {
    let env = hosted(&app, &caller, &id)?;
    Ok(axum::Json(runner_view(&app, env)?))
}

/// Secret values for an environment this runner hosts. Every value read is audited.
pub async fn secrets(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<SecretValues>, ApiError> {
    let env = hosted(&app, &caller, &id)?;
    if matches!(env.phase, EnvPhase::Deleting | EnvPhase::Deleted) {
        return Err(ApiError::Conflict(format!(
            "environment {id} is {}; its secrets are no longer delivered",
            env.phase.as_str()
        )));
    }
    let mut items = Vec::new();
    let mut events = Vec::new();
    for s in super::secrets::for_environment(&app, &env)? {
        let sealed: SealedValue = app
            .store
            .get(&keys::sealed(&s.id))?
            .ok_or_else(|| ApiError::Internal(format!("secret {} has no stored value", s.id)))?;
        let plain = app.keyring.open(&s.id, &sealed)?;
        let value = String::from_utf8(plain)
            .map_err(|_| ApiError::Internal(format!("secret {} is not UTF-8", s.id)))?;
        events.push(caller.event(
            "secret.read",
            &format!("secret/{}", s.id),
            Outcome::Success,
            Some(format!("delivered for environment {id}")),
        ));
        items.push(SecretValue {
            id: s.id,
            name: s.name,
            delivery: s.delivery,
            value,
        });
    }
    // The reads are on record before any value leaves.
    app.write(|tx| {
        for e in events {
            tx.audit(e);
        }
        Ok(())
    })
    .await?;
    Ok(axum::Json(SecretValues { items }))
}

pub async fn report_status(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
    Json(req): Json<StatusReport>,
) -> Result<axum::Json<RunnerEnvironment>, ApiError> {
    hosted(&app, &caller, &id)?;
    if req.phase == EnvPhase::Failed && req.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        return Err(ApiError::invalid(
            "reason",
            "a `failed` report needs a reason the user can act on",
        ));
    }
    if req.reason.as_ref().is_some_and(|r| r.len() > 4096) {
        return Err(ApiError::invalid("reason", "at most 4096 bytes"));
    }
    let now = app.now();
    let inactive_after = app.config.runner_inactive_after;
    let env = app
        .write(|tx| {
            let key = keys::obj(&caller.runner.org_id, "env", &id);
            let mut env: Environment = tx.get(&key)?.ok_or_else(|| ApiError::not_found("environment", &id))?;
            let from = env.phase;
            if !runner_may_report(from, req.phase) {
                return Err(ApiError::Conflict(format!(
                    "environment {id} is {} (desired {:?}); it cannot become {} from there. Re-read it with GET /api/v1/runner/environments/{id}",
                    from.as_str(),
                    env.desired_state,
                    req.phase.as_str()
                )));
            }
            if let Some(at) = req.last_activity {
                env.last_activity = env.last_activity.max(at.min(now));
            }
            if from != req.phase {
                set_phase(tx, &mut env, req.phase)?;
                env.failure_reason = if req.phase == EnvPhase::Failed { req.reason.clone() } else { None };
                if req.phase == EnvPhase::Running {
                    env.last_activity = env.last_activity.max(now);
                }
                env.updated_at = now;
                let detail = match &req.reason {
                    Some(r) => format!("{} -> {}: {r}", from.as_str(), req.phase.as_str()),
                    None => format!("{} -> {}", from.as_str(), req.phase.as_str()),
                };
                tx.audit(caller.event("environment.phase", &format!("environment/{id}"), Outcome::Success, Some(detail)));
            }
            tx.put(&key, &env);
            if from != req.phase && req.phase == EnvPhase::Deleted {
                // Its place is free: the oldest queued environment of the org may take it.
                place_queued(tx, &caller.runner.org_id, now, inactive_after)?;
            }
            Ok(env)
        })
        .await?;
    app.metrics.environment_reached(&env.id, env.phase);
    Ok(axum::Json(runner_view(&app, env)?))
}

pub const MAX_EVENTS_PER_REPORT: usize = 100;

pub async fn report_events(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
    Json(req): Json<EventsReport>,
) -> Result<axum::Json<EventsAccepted>, ApiError> {
    hosted(&app, &caller, &id)?;
    if req.events.len() > MAX_EVENTS_PER_REPORT {
        return Err(ApiError::invalid(
            "events",
            format!(
                "{} events; send at most {MAX_EVENTS_PER_REPORT} per report",
                req.events.len()
            ),
        ));
    }
    for (i, e) in req.events.iter().enumerate() {
        crate::validate::name(&e.kind)
            .map_err(|m| ApiError::invalid(format!("events[{i}].kind"), m))?;
        if e.message.len() > 4096 {
            return Err(ApiError::invalid(
                format!("events[{i}].message"),
                "at most 4096 bytes",
            ));
        }
    }
    let now = app.now();
    let accepted = req.events.len();
    // Events are telemetry, not state changes: they are stored but not audited.
    app.write(|tx| {
        let mut seen = HashSet::new();
        for e in req.events {
            let event = EnvEvent {
                time: e.time.unwrap_or(now),
                kind: e.kind,
                message: e.message,
            };
            let mut key = format!("{}{}", keys::event_prefix(&id), ids::new_id("e", now));
            while !seen.insert(key.clone()) {
                key = format!("{}{}", keys::event_prefix(&id), ids::new_id("e", now));
            }
            tx.put(&key, &event);
        }
        Ok(())
    })
    .await?;
    Ok(axum::Json(EventsAccepted { accepted }))
}
