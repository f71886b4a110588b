//! The audit log's records and the report of a chain verification, as the API returns them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Runner,
    System,
    Anonymous,
}

/// Who did it. `token_id` names the credential used, so a leaked token's use can be traced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    /// Email for users, name for runners; what a person reading the log recognises.
    pub name: String,
    pub token_id: Option<String>,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            kind: ActorKind::System,
            id: "system".into(),
            name: "airlock".into(),
            token_id: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: Timestamp,
    pub org_id: Option<String>,
    pub actor: Actor,
    pub action: String,
    pub subject: String,
    pub outcome: Outcome,
    pub source: String,
    pub request_id: String,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The last record of a chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Problem {
    /// The sequence number (position in the log) where the problem is.
    pub seq: u64,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub records: u64,
    /// Head as recorded by the store; for an org's report, the org's last record.
    pub head: Head,
    pub problems: Vec<Problem>,
    /// `site` (every record) or `org <id>` (only that org's records are counted and named).
    #[serde(default = "site_scope")]
    pub scope: String,
}

fn site_scope() -> String {
    "site".into()
}
