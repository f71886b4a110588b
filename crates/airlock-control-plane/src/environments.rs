//! Environment lifecycle: the phase machine, capacity and policy accounting, the scheduler
//! and the idle sweep.
//!
//! Users set the desired state (running, stopped, deleted) and move the phase to the
//! matching transitional phase; the hosting runner reports the phases it reaches.

use std::time::Duration;

use crate::audit::{Actor, AuditEvent, Outcome};
use crate::model::{DesiredState, EnvPhase, Environment, Org, Runner, RunnerPhase};
use crate::store::{keys, Store, StoreError, Txn};
use crate::time::Timestamp;

/// Phases that count against the org's "running environments per user" limit.
pub fn counts_as_running(phase: EnvPhase) -> bool {
    matches!(
        phase,
        EnvPhase::Creating | EnvPhase::Starting | EnvPhase::Running
    )
}

/// Phases that hold a place on the runner (everything until it is deleted).
pub fn occupies_runner(phase: EnvPhase) -> bool {
    phase != EnvPhase::Deleted
}

/// The `runner_id` of an environment no runner has a place for yet: it waits in its org's
/// queue and is placed, oldest first, as soon as an active runner has room.
pub const QUEUED: &str = "";

/// Where an environment is listed: its runner's assignments, or its org's queue.
fn placement_key(env: &Environment) -> String {
    if env.runner_id == QUEUED {
        keys::queued(&env.org_id, &env.id)
    } else {
        keys::runner_env(&env.runner_id, &env.id)
    }
}

/// Moves `env` to `next`, keeping the runner-load and per-user counters in step. Every phase
/// change goes through here.
pub fn set_phase(
    tx: &mut Txn<'_>,
    env: &mut Environment,
    next: EnvPhase,
) -> Result<(), StoreError> {
    let before = env.phase;
    let delta = |f: fn(EnvPhase) -> bool| f(next) as i64 - f(before) as i64;
    let load = delta(occupies_runner);
    if load != 0 && env.runner_id != QUEUED {
        tx.add_to_counter(&keys::runner_load(&env.runner_id), load)?;
    }
    let running = delta(counts_as_running);
    if running != 0 {
        tx.add_to_counter(&keys::user_running(&env.owner_id), running)?;
    }
    if next == EnvPhase::Deleted {
        tx.delete(&placement_key(env));
    }
    env.phase = next;
    Ok(())
}

/// Accounts for a newly created environment (phase `creating`, on `env.runner_id`).
pub fn admit_new(tx: &mut Txn<'_>, env: &Environment) -> Result<(), StoreError> {
    if env.runner_id != QUEUED {
        tx.add_to_counter(&keys::runner_load(&env.runner_id), 1)?;
    }
    tx.add_to_counter(&keys::user_running(&env.owner_id), 1)?;
    tx.put(&placement_key(env), &());
    Ok(())
}

/// Hands `env` (not deleted) to another runner, moving its place with it. Its workspace
/// follows through the backup the old runner stored when it stopped the environment.
/// `to` may be [`QUEUED`], and `env` may come from the queue.
pub fn move_to_runner(tx: &mut Txn<'_>, env: &mut Environment, to: &str) -> Result<(), StoreError> {
    if occupies_runner(env.phase) {
        if env.runner_id != QUEUED {
            tx.add_to_counter(&keys::runner_load(&env.runner_id), -1)?;
        }
        if to != QUEUED {
            tx.add_to_counter(&keys::runner_load(to), 1)?;
        }
    }
    tx.delete(&placement_key(env));
    env.runner_id = to.to_string();
    tx.put(&placement_key(env), &());
    Ok(())
}

/// Places queued environments of the org, oldest first, while an active runner has room.
/// Returns (environment, runner) for each one placed.
pub fn place_queued(
    tx: &mut Txn<'_>,
    org_id: &str,
    now: Timestamp,
    inactive_after: Duration,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut placed = Vec::new();
    let prefix = keys::queued_prefix(org_id);
    for (key, ()) in tx.scan_all::<()>(&prefix)? {
        let env_key = keys::obj(org_id, "env", &key[prefix.len()..]);
        // Gone, or stopped or deleted while it waited: it leaves the queue.
        let env = tx.get::<Environment>(&env_key)?.filter(|e| e.runner_id == QUEUED && e.desired_state == DesiredState::Running);
        let Some(mut env) = env else {
            tx.delete(&key);
            continue;
        };
        let Some(runner) = pick_runner(tx, org_id, now, inactive_after)? else {
            break;
        };
        move_to_runner(tx, &mut env, &runner.id)?;
        env.updated_at = now;
        tx.put(&env_key, &env);
        tx.audit(AuditEvent {
            org_id: Some(org_id.to_string()),
            actor: Actor::system(),
            action: "environment.place".into(),
            subject: format!("environment/{}", env.id),
            outcome: Outcome::Success,
            source: "internal".into(),
            request_id: String::new(),
            detail: Some(format!("on runner {}, which now has a free place", runner.id)),
        });
        placed.push((env.id, runner.id));
    }
    Ok(placed)
}

/// The phase a reader sees: `inactive` once heartbeats stop for `inactive_after`.
pub fn effective_runner_phase(
    runner: &Runner,
    now: Timestamp,
    inactive_after: Duration,
) -> RunnerPhase {
    match (runner.phase, runner.last_heartbeat) {
        (RunnerPhase::Created, _) | (_, None) => RunnerPhase::Created,
        (phase, Some(at)) if now.since(at) <= inactive_after => phase,
        _ => RunnerPhase::Inactive,
    }
}

pub fn runner_load(tx: &Txn<'_>, runner_id: &str) -> Result<u64, StoreError> {
    Ok(tx.get(&keys::runner_load(runner_id))?.unwrap_or(0))
}

pub fn user_running(tx: &Txn<'_>, user_id: &str) -> Result<u64, StoreError> {
    Ok(tx.get(&keys::user_running(user_id))?.unwrap_or(0))
}

/// The active runner of the org with the most free places, if any has one.
pub fn pick_runner(
    tx: &Txn<'_>,
    org_id: &str,
    now: Timestamp,
    inactive_after: Duration,
) -> Result<Option<Runner>, StoreError> {
    let mut best: Option<(u64, Runner)> = None;
    for (_, runner) in tx.scan_all::<Runner>(&keys::obj_prefix(org_id, "runner"))? {
        if effective_runner_phase(&runner, now, inactive_after) != RunnerPhase::Active {
            continue;
        }
        let free = (runner.capacity as u64).saturating_sub(runner_load(tx, &runner.id)?);
        if free > 0 && best.as_ref().is_none_or(|(most, _)| free > *most) {
            best = Some((free, runner));
        }
    }
    Ok(best.map(|(_, r)| r))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAction {
    Start,
    Stop,
    Delete,
}

/// What a user action does from the current phase: `Ok(None)` when there is nothing to do
/// (already there), `Err` with the reason when it is not possible now.
pub fn user_transition(
    phase: EnvPhase,
    action: UserAction,
) -> Result<Option<(EnvPhase, DesiredState)>, String> {
    use EnvPhase::*;
    match (action, phase) {
        (UserAction::Start, Stopped | Failed) => Ok(Some((Starting, DesiredState::Running))),
        (UserAction::Start, Creating | Starting | Running) => Ok(None),
        (UserAction::Stop, Creating | Starting | Running) => {
            Ok(Some((Stopping, DesiredState::Stopped)))
        }
        (UserAction::Stop, Stopping | Stopped) => Ok(None),
        (UserAction::Delete, Deleting | Deleted) => Ok(None),
        (UserAction::Delete, _) => Ok(Some((Deleting, DesiredState::Deleted))),
        (action, phase) => Err(format!(
            "cannot {} an environment that is {}",
            match action {
                UserAction::Start => "start",
                UserAction::Stop => "stop",
                UserAction::Delete => "delete",
            },
            phase.as_str()
        )),
    }
}

/// Whether the hosting runner may report `to` for an environment in phase `from`.
pub fn runner_may_report(from: EnvPhase, to: EnvPhase) -> bool {
    use EnvPhase::*;
    from == to
        || to == Failed && from != Deleted
        || matches!(
            (from, to),
            (Creating, Starting | Running)
                | (Starting, Running)
                | (Running, Stopping | Stopped)
                | (Stopping, Stopped)
                | (Failed, Stopped)
                | (Deleting, Deleted)
        )
}

/// Stops running environments idle for longer than their org's idle timeout. Returns how
/// many it stopped.
pub fn sweep_idle(store: &Store, now: Timestamp) -> Result<usize, StoreError> {
    let mut stopped = 0;
    for (_, org) in store.scan_all::<Org>("org/")? {
        let minutes = org.policy.idle_timeout_minutes;
        if minutes == 0 {
            continue;
        }
        let timeout = Duration::from_secs(minutes as u64 * 60);
        let idle: Vec<Environment> = store
            .scan_all::<Environment>(&keys::obj_prefix(&org.id, "env"))?
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.phase == EnvPhase::Running && now.since(e.last_activity) > timeout)
            .collect();
        for env in idle {
            stopped += store.commit(now, |tx| -> Result<usize, StoreError> {
                let key = keys::obj(&org.id, "env", &env.id);
                let Some(mut current) = tx.get::<Environment>(&key)? else {
                    return Ok(0);
                };
                if current.phase != EnvPhase::Running || now.since(current.last_activity) <= timeout
                {
                    return Ok(0);
                }
                set_phase(tx, &mut current, EnvPhase::Stopping)?;
                current.desired_state = DesiredState::Stopped;
                current.updated_at = now;
                tx.put(&key, &current);
                tx.audit(AuditEvent {
                    org_id: Some(org.id.clone()),
                    actor: Actor::system(),
                    action: "environment.idle_stop".into(),
                    subject: format!("environment/{}", current.id),
                    outcome: Outcome::Success,
                    source: "internal".into(),
                    request_id: String::new(),
                    detail: Some(format!(
                        "no activity since {} (idle timeout {minutes} min)",
                        current.last_activity
                    )),
                });
                Ok(1)
            })?;
        }
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_actions_follow_the_phase_machine() {
        use EnvPhase::*;
        assert_eq!(
            user_transition(Stopped, UserAction::Start),
            Ok(Some((Starting, DesiredState::Running)))
        );
        assert_eq!(user_transition(Running, UserAction::Start), Ok(None));
        assert!(user_transition(Deleting, UserAction::Start).is_err());
        assert_eq!(
            user_transition(Running, UserAction::Stop),
            Ok(Some((Stopping, DesiredState::Stopped)))
        );
        assert!(user_transition(Deleted, UserAction::Stop).is_err());
        assert_eq!(
            user_transition(Failed, UserAction::Delete),
            Ok(Some((Deleting, DesiredState::Deleted)))
        );
    }

    #[test]
    fn runners_may_only_report_forward_progress() {
        use EnvPhase::*;
        assert!(runner_may_report(Creating, Running));
        assert!(runner_may_report(Stopping, Stopped));
        assert!(runner_may_report(Running, Failed));
        assert!(!runner_may_report(Stopped, Running));
        assert!(!runner_may_report(Deleted, Running));
        assert!(!runner_may_report(Deleted, Failed));
    }
}
