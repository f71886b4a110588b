//! The objects the control plane stores and returns as-is. Secret material (password
//! hashes, token hashes, wrapped keys) lives in separate records of the control plane, so
//! nothing here is secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ide::IdeSettings;
use crate::network::NetworkNarrowing;
use crate::time::Timestamp;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Auditor,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: use owner, admin, member or auditor")]
pub struct UnknownRole(pub String);

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Org {
    pub id: String,
    pub name: String,
    /// The org created by `admin init`; its owners and admins administer the site.
    pub site: bool,
    pub policy: OrgPolicy,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct OrgPolicy {
    /// Environments a user may have creating, starting or running at once.
    pub max_running_environments_per_user: u32,
    /// Running environments with no activity for this long are stopped; 0 disables.
    pub idle_timeout_minutes: u32,
    /// Narrows what the org's environments may reach on runners' networks; projects narrow
    /// further within it.
    #[serde(default, skip_serializing_if = "NetworkNarrowing::is_empty")]
    pub network: NetworkNarrowing,
}

impl Default for OrgPolicy {
    fn default() -> Self {
        OrgPolicy {
            max_running_environments_per_user: 5,
            idle_timeout_minutes: 120,
            network: NetworkNarrowing::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Returned by login; short-lived.
    Session,
    /// Personal access token, named, with an expiry.
    Personal,
    /// One-time runner registration token (24 h).
    RunnerExchange,
    /// A runner's own credential, obtained with the exchange token.
    Runner,
}

/// A token as stored under its hash (never its value). `subject_id` is a user id or a
/// runner id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = TokenInfo)]
pub struct Token {
    pub id: String,
    pub kind: TokenKind,
    pub org_id: String,
    pub subject_id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// When a one-time token was used.
    pub used_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SshKey {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub name: String,
    pub public_key: String,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct EnvironmentClass {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub resources: Resources,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub cpu_millis: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub pids: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Task {
    pub name: String,
    pub command: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// Git repository on the internal network.
    pub repository_url: String,
    /// Devcontainer image reference on the mirror.
    pub image: String,
    pub class_id: String,
    pub tasks: Vec<Task>,
    /// IDEs its environments get from the mirror.
    #[serde(default, skip_serializing_if = "IdeSettings::is_empty")]
    pub ide: IdeSettings,
    /// Narrows what its environments may reach on the runner's network.
    #[serde(default, skip_serializing_if = "NetworkNarrowing::is_empty")]
    pub network: NetworkNarrowing,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Phase as stored; `inactive` is derived from missed heartbeats when read.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunnerPhase {
    Created,
    Active,
    Degraded,
    Inactive,
}

/// A runner as stored; the API returns [`crate::RunnerView`] (schema `Runner`) instead.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Runner {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// Maximum environments (not yet deleted) the runner hosts.
    pub capacity: u32,
    pub phase: RunnerPhase,
    pub message: Option<String>,
    pub version: Option<String>,
    pub last_heartbeat: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Where users reach the runner's SSH gateway, as its latest heartbeat said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
}

/// A runner's SSH gateway: the address users connect to and the host key they pin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    /// OpenSSH public key line, e.g. `ssh-ed25519 AAAA...`.
    pub host_key: String,
}

/// The latest snapshot of an environment's workspace (tar + zstd), stored by the control
/// plane so that any runner can restore it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct WorkspaceBackup {
    /// `sha256:<hex>` of the archive.
    pub digest: String,
    pub size: u64,
    pub created_at: Timestamp,
    /// The runner that took it.
    pub runner_id: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvPhase {
    Creating,
    Starting,
    Running,
    Stopping,
    Stopped,
    Deleting,
    Deleted,
    Failed,
}

impl EnvPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvPhase::Creating => "creating",
            EnvPhase::Starting => "starting",
            EnvPhase::Running => "running",
            EnvPhase::Stopping => "stopping",
            EnvPhase::Stopped => "stopped",
            EnvPhase::Deleting => "deleting",
            EnvPhase::Deleted => "deleted",
            EnvPhase::Failed => "failed",
        }
    }
}

/// What the user asked for; the runner drives the phase towards it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Running,
    Stopped,
    Deleted,
}

/// What the environment runs, copied from the project and class when it is created so
/// that later edits to the project do not change existing environments under their users.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct EnvSpec {
    pub image: String,
    pub repository_url: String,
    pub tasks: Vec<Task>,
    pub class_id: String,
    pub class_name: String,
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "IdeSettings::is_empty")]
    pub ide: IdeSettings,
    #[serde(default, skip_serializing_if = "NetworkNarrowing::is_empty")]
    pub network: NetworkNarrowing,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Environment {
    pub id: String,
    pub org_id: String,
    pub owner_id: String,
    pub project_id: String,
    pub name: String,
    pub runner_id: String,
    pub phase: EnvPhase,
    pub desired_state: DesiredState,
    pub failure_reason: Option<String>,
    pub spec: EnvSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_activity: Timestamp,
    /// Set when a runner stored a workspace snapshot (on stop); restored on the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<WorkspaceBackup>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = EnvironmentEvent)]
pub struct EnvEvent {
    pub time: Timestamp,
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SecretScope {
    Org,
    Project { project_id: String },
    /// One user's own secret (e.g. their git credential): delivered only to that user's
    /// environments, listed and deleted only by that user.
    User { user_id: String },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Delivery {
    /// Written to a file at this absolute path inside the environment (the default).
    File { path: String },
    /// Exported as an environment variable.
    Env { name: String },
    /// A git HTTPS credential for `host` (`name` or `name:port`): the value is the token (or
    /// password) sent with `username`. Answered by the environment's git credential socket,
    /// never written into the environment.
    #[serde(rename = "git-https")]
    GitHttps { host: String, username: String },
    /// A git SSH key for `host`: the value is the OpenSSH private key (ed25519 or ECDSA). Held
    /// by the runner's ssh-agent socket for the environment; `known_hosts` is the server's
    /// host key line(s) that `ssh` checks strictly.
    #[serde(rename = "git-ssh")]
    GitSsh { host: String, known_hosts: String },
}

impl Delivery {
    /// The git host a git credential is for; `None` for files and variables.
    pub fn git_host(&self) -> Option<&str> {
        match self {
            Delivery::GitHttps { host, .. } | Delivery::GitSsh { host, .. } => Some(host),
            Delivery::File { .. } | Delivery::Env { .. } => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Secret {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub scope: SecretScope,
    pub delivery: Delivery,
    /// Id of the key-encryption key wrapping this secret's data key.
    pub kek_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A page of a list. Its schema is written out per route (see `openapi`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
