//! The records the control plane stores. Those the API returns as-is are defined once in
//! `airlock-api`; secret material (password hashes, token hashes, wrapped keys) lives in
//! separate records, defined here, so the returned ones hold nothing secret.

use serde::{Deserialize, Serialize};

pub use airlock_api::{
    Delivery, DesiredState, EnvEvent, EnvPhase, EnvSpec, Environment, EnvironmentClass, Org,
    OrgPolicy, Page, Project, Resources, Runner, RunnerPhase, Secret, SecretScope, SshEndpoint,
    SshKey, Task, Token, TokenKind, User, WorkspaceBackup,
};

/// The encrypted value of a secret, stored apart from its metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SealedValue {
    pub kek_id: String,
    /// base64(nonce || AES-256-GCM(KEK, data key)).
    pub wrapped_key: String,
    /// base64(nonce || AES-256-GCM(data key, value)).
    pub ciphertext: String,
}
