//! SSH access to environments. Runners run the SSH gateway; the control plane tells users
//! where it is (and which host key to pin) and keeps the record of every connection the
//! gateways report.

use axum::extract::{Path, State};

use super::context::{Json, RunnerCaller, UserCaller};
use super::runner_api::hosted;
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::model::{Environment, Runner};
use crate::store::keys;
use airlock_api::{SshAccess, SshSessionEvent, SshSessionsAccepted, SshSessionsReport};

/// The suffix of the host aliases `airlock ssh-config` writes: `<env-id>.airlock.environment`.
pub const HOST_SUFFIX: &str = "airlock.environment";

/// Where and how the caller reaches one of their environments over SSH.
pub async fn access(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<SshAccess>, ApiError> {
    let env: Environment = app.find(&caller.org.id, "env", &id)?;
    // Only the owner's keys open the environment, so only the owner gets its address.
    if env.owner_id != caller.user.id {
        return Err(ApiError::not_found("environment", &id));
    }
    if env.runner_id == crate::environments::QUEUED {
        return Err(ApiError::Conflict(format!(
            "environment {id} waits for a runner with a free place; it gets an SSH address once one takes it"
        )));
    }
    let runner: Runner = app.find(&caller.org.id, "runner", &env.runner_id)?;
    let ssh = runner.ssh.ok_or_else(|| {
        ApiError::Conflict(format!(
            "runner {} hosting environment {id} has not reported an SSH gateway yet; try again after its next heartbeat",
            runner.name
        ))
    })?;
    Ok(axum::Json(SshAccess {
        host_alias: format!("{}.{HOST_SUFFIX}", env.id),
        user: env.id.clone(),
        environment_id: env.id,
        environment_name: env.name,
        host: ssh.host,
        port: ssh.port,
        host_key: ssh.host_key,
    }))
}

pub const MAX_SESSIONS_PER_REPORT: usize = 100;

/// Puts a gateway's connection records on the audit log (actor: the runner).
pub async fn report_sessions(
    State(app): State<App>,
    caller: RunnerCaller,
    Path(id): Path<String>,
    Json(req): Json<SshSessionsReport>,
) -> Result<axum::Json<SshSessionsAccepted>, ApiError> {
    hosted(&app, &caller, &id)?;
    if req.sessions.len() > MAX_SESSIONS_PER_REPORT {
        return Err(ApiError::invalid(
            "sessions",
            format!("send at most {MAX_SESSIONS_PER_REPORT} per report"),
        ));
    }
    for (i, s) in req.sessions.iter().enumerate() {
        let long = s.peer.len() > 128
            || s.key_fingerprint.len() > 128
            || s.command.as_ref().is_some_and(|c| c.len() > 4096);
        if long {
            return Err(ApiError::invalid(
                format!("sessions[{i}]"),
                "peer and key_fingerprint are limited to 128 bytes, command to 4096",
            ));
        }
    }
    let now = app.now();
    let accepted = req.sessions.len();
    app.write(|tx| {
        let key = keys::obj(&caller.runner.org_id, "env", &id);
        let mut latest = None;
        for s in &req.sessions {
            let at = s.time.unwrap_or(now).min(now);
            let what = s.command.as_deref().unwrap_or("connection");
            let (outcome, detail) = match s.event {
                SshSessionEvent::Accepted => (
                    Outcome::Success,
                    format!("{at}: key {} from {} accepted", s.key_fingerprint, s.peer),
                ),
                SshSessionEvent::Refused => (
                    Outcome::Denied,
                    match &s.command {
                        Some(what) => format!(
                            "{at}: `{what}` by key {} from {} refused",
                            s.key_fingerprint, s.peer
                        ),
                        None => format!("{at}: key {} from {} refused", s.key_fingerprint, s.peer),
                    },
                ),
                SshSessionEvent::Withdrawn => (
                    Outcome::Denied,
                    format!(
                        "{at}: connection with key {} from {} closed: access withdrawn",
                        s.key_fingerprint, s.peer
                    ),
                ),
                SshSessionEvent::Ended => (
                    Outcome::Success,
                    format!(
                        "{at}: `{what}` by key {} from {} ended with status {}{}",
                        s.key_fingerprint,
                        s.peer,
                        s.exit_status.map_or("unknown".into(), |c| c.to_string()),
                        match (s.bytes_in, s.bytes_out, s.duration_ms) {
                            (Some(i), Some(o), Some(ms)) =>
                                format!(" ({i} bytes in, {o} bytes out, {ms} ms)"),
                            _ => String::new(),
                        }
                    ),
                ),
            };
            tx.audit(caller.event(
                "environment.ssh",
                &format!("environment/{id}"),
                outcome,
                Some(detail),
            ));
            if !matches!(
                s.event,
                SshSessionEvent::Refused | SshSessionEvent::Withdrawn
            ) {
                latest = latest.max(Some(at));
            }
        }
        if let Some(at) = latest {
            if let Some(mut env) = tx.get::<Environment>(&key)? {
                if at > env.last_activity {
                    env.last_activity = at;
                    tx.put(&key, &env);
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(axum::Json(SshSessionsAccepted { accepted }))
}
