//! Bodies of the runner-facing routes (`/api/v1/runner/*`), shared by the control plane that
//! serves them and the runner agent that calls them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{
    Delivery, DesiredState, EnvPhase, EnvSpec, RunnerPhase, SshEndpoint, WorkspaceBackup,
};
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    pub exchange_token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunnerCredential {
    pub runner_id: String,
    pub org_id: String,
    /// The runner's bearer token for every other runner route. Keep it secret.
    pub credential: String,
    pub heartbeat_interval_seconds: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// `active` (default) or `degraded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunnerPhase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Latest user activity per hosted environment, for the idle timeout.
    #[serde(default)]
    pub environments: Vec<Activity>,
    /// The runner's SSH gateway, for users' ssh-config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    pub id: String,
    pub last_activity: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub runner_id: String,
    pub phase: RunnerPhase,
    pub heartbeat_interval_seconds: u64,
    pub inactive_after_seconds: u64,
    /// Ids in the heartbeat this runner does not host (any more): clean them up.
    pub unknown_environments: Vec<String>,
}

/// The user an environment belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Owner {
    pub id: String,
    pub email: String,
    /// Display name for `user.name` in the environment's git config (the email when the
    /// user has none).
    #[serde(default)]
    pub name: String,
}

/// A secret an environment gets, without its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretRef {
    pub id: String,
    pub name: String,
    pub delivery: Delivery,
}

/// An environment as its runner needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunnerEnvironment {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub project_id: String,
    pub owner: Owner,
    pub phase: EnvPhase,
    pub desired_state: DesiredState,
    pub failure_reason: Option<String>,
    pub spec: EnvSpec,
    /// Secrets to inject; fetch their values from `.../secrets`.
    pub secrets: Vec<SecretRef>,
    /// The owner's SSH public keys, for `authorized_keys`.
    pub ssh_authorized_keys: Vec<String>,
    pub updated_at: Timestamp,
    pub last_activity: Timestamp,
    /// The latest workspace snapshot: restore it (GET .../backup) before the first start on
    /// this runner.
    pub backup: Option<WorkspaceBackup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretValue {
    pub id: String,
    pub name: String,
    pub delivery: Delivery,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretValues {
    pub items: Vec<SecretValue>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub phase: EnvPhase,
    /// Required with `failed`: what went wrong, for the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsReport {
    pub events: Vec<NewEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// When it happened; defaults to when it arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventsAccepted {
    pub accepted: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshSessionsReport {
    pub sessions: Vec<SshSessionRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SshSessionEvent {
    /// Key accepted for the environment.
    Accepted,
    /// Authentication refused (unknown key, another user's environment).
    Refused,
    /// A command, shell, sftp session or port forward ended.
    Ended,
    /// The gateway closed a connection whose key is no longer listed (owner disabled or
    /// deleted, key removed).
    Withdrawn,
}

/// One SSH gateway record for the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshSessionRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    pub event: SshSessionEvent,
    /// Client address as the gateway saw it.
    pub peer: String,
    /// `SHA256:...` of the offered public key.
    pub key_fingerprint: String,
    /// The command, `shell` for an interactive session, `subsystem sftp` for a file session,
    /// `direct-tcpip HOST:PORT` for a forwarded connection (or a refused one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// For `ended` sessions and forwards: bytes from the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// For `ended` sessions and forwards: bytes to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// For `ended` sessions and forwards: how long it lasted, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SshSessionsAccepted {
    pub accepted: usize,
}
