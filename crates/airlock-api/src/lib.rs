//! The control plane's JSON API contract: every request, response and model type of the user
//! API and the runner API, defined once; the route table ([`ENDPOINTS`]); and the OpenAPI 3.1
//! document generated from both ([`openapi::document`]).
//!
//! Types only (serde and utoipa, no server or client), so the control plane, the runner agent
//! and the admin CLI all compile against the same definitions cheaply.

mod audit;
mod error;
pub mod examples;
pub mod ide;
mod model;
pub mod network;
pub mod openapi;
mod routes;
mod runner_api;
mod sso_api;
mod time;
mod user_api;

pub use audit::{Actor, ActorKind, AuditRecord, Head, Outcome, Problem, VerifyReport};
pub use error::{ErrorBody, ErrorDetail};
pub use ide::IdeSettings;
pub use network::NetworkNarrowing;
pub use model::{
    Delivery, DesiredState, EnvEvent, EnvPhase, EnvSpec, Environment, EnvironmentClass, Org,
    OrgPolicy, Page, Project, Resources, Role, Runner, RunnerPhase, Secret, SecretScope,
    SshEndpoint, SshKey, Task, Token, TokenKind, UnknownRole, User, WorkspaceBackup,
};
pub use routes::{
    json, AuthKind, Endpoint, JsonType, Method, Operation, Payload, RoundTripError, WireType,
    ENDPOINTS,
};
pub use runner_api::{
    Activity, EventsAccepted, EventsReport, ExchangeRequest, Heartbeat, HeartbeatResponse,
    NewEvent, Owner, RunnerCredential, RunnerEnvironment, SecretRef, SecretValue, SecretValues,
    SshSessionEvent, SshSessionRecord, SshSessionsAccepted, SshSessionsReport, StatusReport,
};
pub use sso_api::{
    BrowserSession, CliSession, DeviceLoginPoll, DeviceLoginStart, DeviceLoginState,
    DeviceLoginStatus, RefreshRequest, SsoLogout, SsoProvider, SsoProviders,
};
pub use time::Timestamp;
pub use user_api::{
    AddSshKey, CreateClass, CreateEnvironment, CreateOrg, CreateProject, CreateRunner,
    CreateSecret, CreateToken, CreateUser, LoginRequest, NewOrg, NewRunner, NewToken, PolicyChange,
    RotateKekResult, RunnerView, StoreSnapshot, Session, SetPassword, SetSecretValue, SshAccess, UpdateClass,
    UpdateOrg, UpdateProject, UpdateRunner, UpdateUser, Whoami,
};

/// The OpenAPI document itself, as served at `GET /api/v1/openapi.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct OpenApiDocument(pub serde_json::Value);
