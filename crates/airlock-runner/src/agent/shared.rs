//! The state the agent's loop, its per-environment workers and the SSH gateway backend share.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::SystemTime;

use airlock_egress::EgressGuard;

use super::api::{self, ControlPlane, Environment, SshEndpoint, SshSession};
use crate::engine::{Engine, EnvStatus, LocalEnvironment};

/// State shared by the loop, the per-environment workers and the SSH gateway.
pub struct Shared {
    pub(super) cp: ControlPlane,
    pub(super) engine: Engine,
    pub(super) data_dir: PathBuf,
    pub(super) capacity: usize,
    /// The latest view of every assigned environment.
    pub(super) assigned: Mutex<HashMap<String, Environment>>,
    /// Environments with an operation in flight.
    pub(super) busy: Mutex<HashSet<String>>,
    /// Environments told they wait for a free place (told once).
    pub(super) waiting: Mutex<HashSet<String>>,
    /// Latest SSH use per environment, for the idle timeout.
    pub(super) activity: Mutex<HashMap<String, SystemTime>>,
    /// SSH records not yet on the control plane's audit log.
    pub(super) ssh_records: Mutex<Vec<(String, SshSession)>>,
    pub(super) ssh_endpoint: Mutex<Option<SshEndpoint>>,
    pub(super) egress: EgressGuard,
    /// A worker finished: what runs here may have changed.
    pub(super) changed: AtomicBool,
}

impl Shared {
    pub(super) fn starts_in_flight(&self, local: &HashMap<String, LocalEnvironment>) -> usize {
        self.busy
            .lock()
            .unwrap()
            .iter()
            .filter(|id| !local.get(*id).is_some_and(|l| matches!(l.status, EnvStatus::Running { .. })))
            .count()
    }

    pub(super) fn event(&self, id: &str, kind: &str, message: &str) -> Result<(), api::ApiError> {
        tracing::info!(env = id, kind, "{message}");
        self.cp.events(
            id,
            &[api::Event {
                kind: kind.to_string(),
                message: message.to_string(),
            }],
        )
    }

    pub(super) fn flush_ssh_records(&self) {
        let records = std::mem::take(&mut *self.ssh_records.lock().unwrap());
        let mut by_env: HashMap<String, Vec<SshSession>> = HashMap::new();
        for (env, record) in records {
            by_env.entry(env).or_default().push(record);
        }
        for (env, records) in by_env {
            if let Err(e) = self.cp.ssh_sessions(&env, &records) {
                // A 404 means the environment is gone; the records cannot be filed under it.
                if e.status() != Some(404) {
                    tracing::warn!(env, error = %e, "cannot send SSH records; will retry");
                    self.ssh_records
                        .lock()
                        .unwrap()
                        .extend(records.into_iter().map(|r| (env.clone(), r)));
                }
            }
        }
    }

    /// The agent's own folder for an environment (markers, temporary snapshots).
    pub(super) fn env_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("agent").join(id)
    }
}

/// `2030-01-01T10:00:00.000Z`, as the API writes times.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let d = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_written_as_the_api_reads_them() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_893_492_000_123);
        assert_eq!(rfc3339(at), "2030-01-01T10:00:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
