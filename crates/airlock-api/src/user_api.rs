//! Request and response bodies of the user-facing routes that are not stored objects
//! themselves. Optional request fields are left out when empty, so a client sends only what it
//! sets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{
    Delivery, Org, OrgPolicy, Resources, Role, RunnerPhase, SecretScope, Task, Token, User,
};
use crate::ide::IdeSettings;
use crate::network::NetworkNarrowing;
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub token_id: String,
    pub expires_at: Timestamp,
    pub user: User,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub user: User,
    pub org: Org,
    pub token: Token,
    pub site_admin: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: Role,
    /// Initial password chosen by the admin (at least 12 characters).
    pub password: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// Needed when changing one's own password and one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
    pub new_password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// Days until the token expires (default 30, at most 365).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    /// The token itself; shown only here. Send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub info: Token,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSshKey {
    pub name: String,
    /// One line as in `~/.ssh/id_ed25519.pub`.
    pub public_key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    pub name: String,
    pub owner_email: String,
    pub owner_password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<OrgPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewOrg {
    pub org: Org,
    pub owner: User,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyChange>,
}

/// The policy fields to change; the others keep their values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_running_environments_per_user: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_minutes: Option<u32>,
    /// Replaces the org's network narrowing as a whole (`{}`: the site's whole list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkNarrowing>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClass {
    pub name: String,
    pub resources: Resources,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClass {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    pub repository_url: String,
    pub image: String,
    pub class_id: String,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default, skip_serializing_if = "IdeSettings::is_empty")]
    pub ide: IdeSettings,
    #[serde(default, skip_serializing_if = "NetworkNarrowing::is_empty")]
    pub network: NetworkNarrowing,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ide: Option<IdeSettings>,
    /// Replaces the project's network setting as a whole (`{}`: the site's whole list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkNarrowing>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunner {
    pub name: String,
    /// Most environments the runner hosts at once.
    pub capacity: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRunner {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

/// A runner with its phase as of now and how many environments it hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Runner)]
pub struct RunnerView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub capacity: u32,
    pub environments: u64,
    pub phase: RunnerPhase,
    pub message: Option<String>,
    pub version: Option<String>,
    pub last_heartbeat: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewRunner {
    pub runner: RunnerView,
    /// One-time token for `POST /api/v1/runner/exchange`; shown only here.
    pub exchange_token: String,
    pub exchange_expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub project_id: String,
    /// Defaults to the project name and a random suffix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Overrides the project's environment class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_id: Option<String>,
}

/// Where the owner reaches an environment over SSH.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SshAccess {
    pub environment_id: String,
    pub environment_name: String,
    /// The name to give `ssh`: `<env-id>.airlock.environment`.
    pub host_alias: String,
    /// Where the runner's gateway listens.
    pub host: String,
    pub port: u16,
    /// The SSH user name: the environment id.
    pub user: String,
    /// The gateway's host key (OpenSSH public key line), to pin in known_hosts.
    pub host_key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecret {
    pub name: String,
    pub scope: SecretScope,
    /// Defaults to a file at `/run/secrets/<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecretValue {
    pub value: String,
}

/// Every key and value of the control plane's store at one instant (taken between two
/// writes), for `airlock admin backup`. Values stay as stored: secrets sealed under the KEK,
/// password and token hashes; the KEK itself is never in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreSnapshot {
    pub taken_at: crate::Timestamp,
    /// Length of the audit chain in the snapshot, and the hash of its last record.
    pub audit_seq: u64,
    pub audit_head: String,
    /// `[key, base64 of the value]`, in key order.
    pub entries: Vec<[String; 2]>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RotateKekResult {
    pub current_kek_id: String,
    pub rewrapped: usize,
    pub already_current: usize,
}
