//! The route table: every route of the API as data. The control plane routes with it and
//! generates its OpenAPI document from it; request and response bodies are named by their
//! Rust types, so the document, the server and the clients share one definition.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::examples::Example;
use crate::*;

/// Every operation the API has. The control plane maps each to its handler with an
/// exhaustive `match`, so an operation without a handler does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Login,
    Logout,
    Whoami,
    ListSsoProviders,
    StartSso,
    FinishSso,
    GetSession,
    SsoLogout,
    StartDeviceLogin,
    PollDeviceLogin,
    RefreshSession,
    ListUsers,
    CreateUser,
    GetUser,
    UpdateUser,
    DeleteUser,
    SetPassword,
    ListTokens,
    CreateToken,
    RevokeToken,
    ListSshKeys,
    AddSshKey,
    DeleteSshKey,
    ListOrgs,
    CreateOrg,
    GetOrg,
    UpdateOrg,
    ListClasses,
    CreateClass,
    GetClass,
    UpdateClass,
    DeleteClass,
    ListProjects,
    CreateProject,
    GetProject,
    UpdateProject,
    DeleteProject,
    ListRunners,
    CreateRunner,
    GetRunner,
    UpdateRunner,
    DeleteRunner,
    IssueExchangeToken,
    ListEnvironments,
    CreateEnvironment,
    GetEnvironment,
    DeleteEnvironment,
    StartEnvironment,
    StopEnvironment,
    ListEnvironmentEvents,
    GetEnvironmentSsh,
    ListSecrets,
    CreateSecret,
    GetSecret,
    SetSecretValue,
    DeleteSecret,
    RotateKek,
    ExportStoreSnapshot,
    ListAudit,
    VerifyAudit,
    RunnerExchange,
    RunnerHeartbeat,
    RunnerListEnvironments,
    RunnerGetEnvironment,
    RunnerGetSecrets,
    RunnerReportStatus,
    RunnerReportEvents,
    RunnerReportSshSessions,
    RunnerUploadBackup,
    RunnerDownloadBackup,
    GetOpenApi,
    GetMetrics,
}

impl Operation {
    /// Every operation, in table order.
    pub const ALL: [Operation; 72] = [
        Operation::Login,
        Operation::Logout,
        Operation::Whoami,
        Operation::ListSsoProviders,
        Operation::StartSso,
        Operation::FinishSso,
        Operation::GetSession,
        Operation::SsoLogout,
        Operation::StartDeviceLogin,
        Operation::PollDeviceLogin,
        Operation::RefreshSession,
        Operation::ListUsers,
        Operation::CreateUser,
        Operation::GetUser,
        Operation::UpdateUser,
        Operation::DeleteUser,
        Operation::SetPassword,
        Operation::ListTokens,
        Operation::CreateToken,
        Operation::RevokeToken,
        Operation::ListSshKeys,
        Operation::AddSshKey,
        Operation::DeleteSshKey,
        Operation::ListOrgs,
        Operation::CreateOrg,
        Operation::GetOrg,
        Operation::UpdateOrg,
        Operation::ListClasses,
        Operation::CreateClass,
        Operation::GetClass,
        Operation::UpdateClass,
        Operation::DeleteClass,
        Operation::ListProjects,
        Operation::CreateProject,
        Operation::GetProject,
        Operation::UpdateProject,
        Operation::DeleteProject,
        Operation::ListRunners,
        Operation::CreateRunner,
        Operation::GetRunner,
        Operation::UpdateRunner,
        Operation::DeleteRunner,
        Operation::IssueExchangeToken,
        Operation::ListEnvironments,
        Operation::CreateEnvironment,
        Operation::GetEnvironment,
        Operation::DeleteEnvironment,
        Operation::StartEnvironment,
        Operation::StopEnvironment,
        Operation::ListEnvironmentEvents,
        Operation::GetEnvironmentSsh,
        Operation::ListSecrets,
        Operation::CreateSecret,
        Operation::GetSecret,
        Operation::SetSecretValue,
        Operation::DeleteSecret,
        Operation::RotateKek,
        Operation::ExportStoreSnapshot,
        Operation::ListAudit,
        Operation::VerifyAudit,
        Operation::RunnerExchange,
        Operation::RunnerHeartbeat,
        Operation::RunnerListEnvironments,
        Operation::RunnerGetEnvironment,
        Operation::RunnerGetSecrets,
        Operation::RunnerReportStatus,
        Operation::RunnerReportEvents,
        Operation::RunnerReportSshSessions,
        Operation::RunnerUploadBackup,
        Operation::RunnerDownloadBackup,
        Operation::GetOpenApi,
        Operation::GetMetrics,
    ];

    /// The OpenAPI `operationId`.
    pub const fn id(self) -> &'static str {
        match self {
            Operation::Login => "login",
            Operation::Logout => "logout",
            Operation::Whoami => "whoami",
            Operation::ListSsoProviders => "listSsoProviders",
            Operation::StartSso => "startSso",
            Operation::FinishSso => "finishSso",
            Operation::GetSession => "getSession",
            Operation::SsoLogout => "ssoLogout",
            Operation::StartDeviceLogin => "startDeviceLogin",
            Operation::PollDeviceLogin => "pollDeviceLogin",
            Operation::RefreshSession => "refreshSession",
            Operation::ListUsers => "listUsers",
            Operation::CreateUser => "createUser",
            Operation::GetUser => "getUser",
            Operation::UpdateUser => "updateUser",
            Operation::DeleteUser => "deleteUser",
            Operation::SetPassword => "setPassword",
            Operation::ListTokens => "listTokens",
            Operation::CreateToken => "createToken",
            Operation::RevokeToken => "revokeToken",
            Operation::ListSshKeys => "listSshKeys",
            Operation::AddSshKey => "addSshKey",
            Operation::DeleteSshKey => "deleteSshKey",
            Operation::ListOrgs => "listOrgs",
            Operation::CreateOrg => "createOrg",
            Operation::GetOrg => "getOrg",
            Operation::UpdateOrg => "updateOrg",
            Operation::ListClasses => "listClasses",
            Operation::CreateClass => "createClass",
            Operation::GetClass => "getClass",
            Operation::UpdateClass => "updateClass",
            Operation::DeleteClass => "deleteClass",
            Operation::ListProjects => "listProjects",
            Operation::CreateProject => "createProject",
            Operation::GetProject => "getProject",
            Operation::UpdateProject => "updateProject",
            Operation::DeleteProject => "deleteProject",
            Operation::ListRunners => "listRunners",
            Operation::CreateRunner => "createRunner",
            Operation::GetRunner => "getRunner",
            Operation::UpdateRunner => "updateRunner",
            Operation::DeleteRunner => "deleteRunner",
            Operation::IssueExchangeToken => "issueExchangeToken",
            Operation::ListEnvironments => "listEnvironments",
            Operation::CreateEnvironment => "createEnvironment",
            Operation::GetEnvironment => "getEnvironment",
            Operation::DeleteEnvironment => "deleteEnvironment",
            Operation::StartEnvironment => "startEnvironment",
            Operation::StopEnvironment => "stopEnvironment",
            Operation::ListEnvironmentEvents => "listEnvironmentEvents",
            Operation::GetEnvironmentSsh => "getEnvironmentSsh",
            Operation::ListSecrets => "listSecrets",
            Operation::CreateSecret => "createSecret",
            Operation::GetSecret => "getSecret",
            Operation::SetSecretValue => "setSecretValue",
            Operation::DeleteSecret => "deleteSecret",
            Operation::RotateKek => "rotateKek",
            Operation::ExportStoreSnapshot => "exportStoreSnapshot",
            Operation::ListAudit => "listAudit",
            Operation::VerifyAudit => "verifyAudit",
            Operation::RunnerExchange => "runnerExchange",
            Operation::RunnerHeartbeat => "runnerHeartbeat",
            Operation::RunnerListEnvironments => "runnerListEnvironments",
            Operation::RunnerGetEnvironment => "runnerGetEnvironment",
            Operation::RunnerGetSecrets => "runnerGetSecrets",
            Operation::RunnerReportStatus => "runnerReportStatus",
            Operation::RunnerReportEvents => "runnerReportEvents",
            Operation::RunnerReportSshSessions => "runnerReportSshSessions",
            Operation::RunnerUploadBackup => "runnerUploadBackup",
            Operation::RunnerDownloadBackup => "runnerDownloadBackup",
            Operation::GetOpenApi => "getOpenApi",
            Operation::GetMetrics => "getMetrics",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// A user's session or personal access token.
    User,
    /// A runner's credential.
    Runner,
    /// Credentials travel in the body (login, runner exchange).
    InBody,
    /// No credentials: the start of a sign-in (the provider list, the redirect to a provider,
    /// its redirect back, a device sign-in).
    Public,
}

/// A JSON body type, as functions of the Rust type, so the table can be a constant.
#[derive(Clone, Copy)]
pub struct JsonType {
    /// The schema's name under `#/components/schemas`.
    pub name: fn() -> Cow<'static, str>,
    /// Adds the type's schema and every schema it refers to.
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
    /// The type's example, sent through JSON and back; its JSON form.
    pub example: fn() -> Result<Value, RoundTripError>,
    /// A page holding the type's example, sent through JSON and back; its JSON form.
    pub page_example: fn() -> Result<Value, RoundTripError>,
}

impl std::fmt::Debug for JsonType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonType({})", (self.name)())
    }
}

/// A request or response body.
#[derive(Clone, Copy, Debug)]
pub enum Payload {
    Json(JsonType),
    /// A workspace snapshot: tar + zstd bytes (`application/zstd`).
    Archive,
    /// Prometheus metrics text (`text/plain`).
    Text,
}

impl Payload {
    /// Adds the body's schemas (none for a non-JSON body).
    pub fn collect_schemas(&self, out: &mut Vec<(String, RefOr<Schema>)>) {
        if let Payload::Json(ty) = self {
            (ty.schemas)(out);
        }
    }
}

/// Why an example did not survive JSON and back.
#[derive(Debug, thiserror::Error)]
pub enum RoundTripError {
    #[error("{name}: cannot serialize the example: {source}")]
    Serialize {
        name: String,
        source: serde_json::Error,
    },
    #[error("{name}: the example's JSON does not deserialize: {source}")]
    Deserialize {
        name: String,
        source: serde_json::Error,
    },
    #[error("{name}: the example changed on the way: {before} became {after}")]
    Changed {
        name: String,
        before: String,
        after: String,
    },
}

/// What a JSON body type has to be.
pub trait WireType:
    ToSchema + Serialize + DeserializeOwned + Example + PartialEq + std::fmt::Debug
{
}
impl<T: ToSchema + Serialize + DeserializeOwned + Example + PartialEq + std::fmt::Debug> WireType
    for T
{
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: Cow<'static, str>,
    value: T,
) -> Result<Value, RoundTripError> {
    let name = name.into_owned();
    let json = serde_json::to_value(&value).map_err(|source| RoundTripError::Serialize {
        name: name.clone(),
        source,
    })?;
    let back: T =
        serde_json::from_value(json.clone()).map_err(|source| RoundTripError::Deserialize {
            name: name.clone(),
            source,
        })?;
    if back != value {
        return Err(RoundTripError::Changed {
            name,
            before: format!("{value:?}"),
            after: format!("{back:?}"),
        });
    }
    Ok(json)
}

fn example_of<T: WireType>() -> Result<Value, RoundTripError> {
    round_trip(T::name(), T::example())
}

fn page_example_of<T: WireType>() -> Result<Value, RoundTripError> {
    round_trip(
        T::name(),
        Page {
            items: vec![T::example()],
            next_cursor: Some("cursor".into()),
        },
    )
}

fn schemas_of<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

/// The body `T` as JSON.
pub const fn json<T: WireType>() -> Payload {
    Payload::Json(JsonType {
        name: T::name,
        schemas: schemas_of::<T>,
        example: example_of::<T>,
        page_example: page_example_of::<T>,
    })
}

#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub operation: Operation,
    pub method: Method,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: AuthKind,
    pub request: Option<Payload>,
    /// The success body; `None` for 204.
    pub response: Option<Payload>,
    pub status: u16,
    /// Lists take `limit` and `cursor` and answer with a page of `response` items.
    pub paged: bool,
    /// Extra query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
}

const fn ep(
    operation: Operation,
    method: Method,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        operation,
        method,
        path,
        tag,
        summary,
        auth: AuthKind::User,
        request: None,
        response: None,
        status: 200,
        paged: false,
        query: &[],
    }
}

impl Endpoint {
    pub const fn operation_id(&self) -> &'static str {
        self.operation.id()
    }
    const fn body(mut self, payload: Payload) -> Self {
        self.request = Some(payload);
        self
    }
    const fn returns(mut self, payload: Payload) -> Self {
        self.response = Some(payload);
        self
    }
    const fn created(mut self, payload: Payload) -> Self {
        self.response = Some(payload);
        self.status = 201;
        self
    }
    const fn no_content(mut self) -> Self {
        self.status = 204;
        self
    }
    const fn page(mut self, item: Payload) -> Self {
        self.response = Some(item);
        self.paged = true;
        self
    }
    const fn runner(mut self) -> Self {
        self.auth = AuthKind::Runner;
        self
    }
    const fn public(mut self) -> Self {
        self.auth = AuthKind::Public;
        self
    }
    /// Answers with a redirect (302) and no body.
    const fn redirect(mut self) -> Self {
        self.status = 302;
        self
    }
    const fn in_body(mut self) -> Self {
        self.auth = AuthKind::InBody;
        self
    }
    const fn query(mut self, params: &'static [(&'static str, &'static str)]) -> Self {
        self.query = params;
        self
    }
}

const AUDIT_FILTERS: &[(&str, &str)] = &[
    ("actor", "user or runner id, or email/name"),
    (
        "action",
        "exact action, or a prefix ending in `*` such as `project.*`",
    ),
    (
        "subject",
        "exact subject such as `project/prj_...`, or a prefix ending in `*`",
    ),
    ("since", "RFC 3339 time; records at or after it"),
    ("until", "RFC 3339 time; records before it"),
];

pub const ENDPOINTS: &[Endpoint] = &[
    // Identity
    ep(
        Operation::Login,
        Method::Post,
        "/api/v1/auth/login",
        "auth",
        "Log in with email and password; returns a session token",
    )
    .in_body()
    .body(json::<LoginRequest>())
    .returns(json::<Session>()),
    ep(
        Operation::Logout,
        Method::Post,
        "/api/v1/auth/logout",
        "auth",
        "Revoke the token used for this request",
    )
    .no_content(),
    ep(
        Operation::Whoami,
        Method::Get,
        "/api/v1/auth/whoami",
        "auth",
        "The calling user, their org and role",
    )
    .returns(json::<Whoami>()),
    ep(
        Operation::ListSsoProviders,
        Method::Get,
        "/api/v1/auth/sso",
        "auth",
        "The identity providers users can sign in with, and whether passwords are accepted",
    )
    .public()
    .returns(json::<SsoProviders>()),
    ep(
        Operation::StartSso,
        Method::Get,
        "/api/v1/auth/sso/{id}/start",
        "auth",
        "Browser sign-in: redirects to the provider (authorization code flow with PKCE)",
    )
    .public()
    .redirect()
    .query(&[("return_to", "path on this server to land on after signing in (default /)")]),
    ep(
        Operation::FinishSso,
        Method::Get,
        "/api/v1/auth/sso/{id}/callback",
        "auth",
        "The provider's redirect back: checks the ID token, signs the user in (session cookie) and redirects to return_to",
    )
    .public()
    .redirect()
    .query(&[
        ("code", "authorization code from the provider"),
        ("state", "the state this server sent"),
        ("error", "the provider's error code, when it refused"),
        ("error_description", "the provider's explanation"),
    ]),
    ep(
        Operation::GetSession,
        Method::Get,
        "/api/v1/auth/session",
        "auth",
        "The caller's session; for a browser (cookie) session, its CSRF token and timeouts",
    )
    .returns(json::<BrowserSession>()),
    ep(
        Operation::SsoLogout,
        Method::Post,
        "/api/v1/auth/sso/logout",
        "auth",
        "End the caller's session and clear the cookie; returns the provider's logout URL when it offers one",
    )
    .returns(json::<SsoLogout>()),
    ep(
        Operation::StartDeviceLogin,
        Method::Post,
        "/api/v1/auth/sso/{id}/device",
        "auth",
        "CLI sign-in: starts a device authorization grant at the provider",
    )
    .public()
    .returns(json::<DeviceLoginStart>()),
    ep(
        Operation::PollDeviceLogin,
        Method::Post,
        "/api/v1/auth/sso/device/poll",
        "auth",
        "CLI sign-in: whether the user has finished at the provider; then a short-lived session and a refresh token",
    )
    .in_body()
    .body(json::<DeviceLoginPoll>())
    .returns(json::<DeviceLoginState>()),
    ep(
        Operation::RefreshSession,
        Method::Post,
        "/api/v1/auth/refresh",
        "auth",
        "Trade a refresh token for a new short-lived session token (and a new refresh token)",
    )
    .in_body()
    .body(json::<RefreshRequest>())
    .returns(json::<CliSession>()),
    ep(
        Operation::ListUsers,
        Method::Get,
        "/api/v1/users",
        "users",
        "List the org's users",
    )
    .page(json::<User>()),
    ep(
        Operation::CreateUser,
        Method::Post,
        "/api/v1/users",
        "users",
        "Create a user in the caller's org",
    )
    .body(json::<CreateUser>())
    .created(json::<User>()),
    ep(
        Operation::GetUser,
        Method::Get,
        "/api/v1/users/{id}",
        "users",
        "Get a user",
    )
    .returns(json::<User>()),
    ep(
        Operation::UpdateUser,
        Method::Patch,
        "/api/v1/users/{id}",
        "users",
        "Change a user's name, role or disabled flag",
    )
    .body(json::<UpdateUser>())
    .returns(json::<User>()),
    ep(
        Operation::DeleteUser,
        Method::Delete,
        "/api/v1/users/{id}",
        "users",
        "Delete a user and revoke their tokens",
    )
    .no_content(),
    ep(
        Operation::SetPassword,
        Method::Put,
        "/api/v1/users/{id}/password",
        "users",
        "Set a password (own: current password needed if one is set; admins: reset)",
    )
    .body(json::<SetPassword>())
    .no_content(),
    ep(
        Operation::ListTokens,
        Method::Get,
        "/api/v1/tokens",
        "tokens",
        "List the caller's tokens (never their values)",
    )
    .page(json::<Token>()),
    ep(
        Operation::CreateToken,
        Method::Post,
        "/api/v1/tokens",
        "tokens",
        "Create a personal access token; its value is shown only in this response",
    )
    .body(json::<CreateToken>())
    .created(json::<NewToken>()),
    ep(
        Operation::RevokeToken,
        Method::Delete,
        "/api/v1/tokens/{id}",
        "tokens",
        "Revoke one of the caller's tokens (admins: any token of their org's users)",
    )
    .no_content(),
    ep(
        Operation::ListSshKeys,
        Method::Get,
        "/api/v1/ssh-keys",
        "ssh-keys",
        "List the caller's SSH public keys",
    )
    .page(json::<SshKey>()),
    ep(
        Operation::AddSshKey,
        Method::Post,
        "/api/v1/ssh-keys",
        "ssh-keys",
        "Register an SSH public key for SSH into one's environments",
    )
    .body(json::<AddSshKey>())
    .created(json::<SshKey>()),
    ep(
        Operation::DeleteSshKey,
        Method::Delete,
        "/api/v1/ssh-keys/{id}",
        "ssh-keys",
        "Remove one of the caller's SSH keys",
    )
    .no_content(),
    // Orgs
    ep(
        Operation::ListOrgs,
        Method::Get,
        "/api/v1/orgs",
        "orgs",
        "List orgs (site admins: all; others: their own)",
    )
    .page(json::<Org>()),
    ep(
        Operation::CreateOrg,
        Method::Post,
        "/api/v1/orgs",
        "orgs",
        "Create an org with its first owner (site admins)",
    )
    .body(json::<CreateOrg>())
    .created(json::<NewOrg>()),
    ep(
        Operation::GetOrg,
        Method::Get,
        "/api/v1/orgs/{id}",
        "orgs",
        "Get an org and its policy",
    )
    .returns(json::<Org>()),
    ep(
        Operation::UpdateOrg,
        Method::Patch,
        "/api/v1/orgs/{id}",
        "orgs",
        "Change an org's name or policy",
    )
    .body(json::<UpdateOrg>())
    .returns(json::<Org>()),
    // Inventory
    ep(
        Operation::ListClasses,
        Method::Get,
        "/api/v1/classes",
        "classes",
        "List environment classes",
    )
    .page(json::<EnvironmentClass>()),
    ep(
        Operation::CreateClass,
        Method::Post,
        "/api/v1/classes",
        "classes",
        "Create an environment class",
    )
    .body(json::<CreateClass>())
    .created(json::<EnvironmentClass>()),
    ep(
        Operation::GetClass,
        Method::Get,
        "/api/v1/classes/{id}",
        "classes",
        "Get an environment class",
    )
    .returns(json::<EnvironmentClass>()),
    ep(
        Operation::UpdateClass,
        Method::Patch,
        "/api/v1/classes/{id}",
        "classes",
        "Change an environment class (existing environments keep theirs)",
    )
    .body(json::<UpdateClass>())
    .returns(json::<EnvironmentClass>()),
    ep(
        Operation::DeleteClass,
        Method::Delete,
        "/api/v1/classes/{id}",
        "classes",
        "Delete an environment class no project uses",
    )
    .no_content(),
    ep(
        Operation::ListProjects,
        Method::Get,
        "/api/v1/projects",
        "projects",
        "List projects",
    )
    .page(json::<Project>()),
    ep(
        Operation::CreateProject,
        Method::Post,
        "/api/v1/projects",
        "projects",
        "Create a project",
    )
    .body(json::<CreateProject>())
    .created(json::<Project>()),
    ep(
        Operation::GetProject,
        Method::Get,
        "/api/v1/projects/{id}",
        "projects",
        "Get a project",
    )
    .returns(json::<Project>()),
    ep(
        Operation::UpdateProject,
        Method::Patch,
        "/api/v1/projects/{id}",
        "projects",
        "Change a project (existing environments keep their spec)",
    )
    .body(json::<UpdateProject>())
    .returns(json::<Project>()),
    ep(
        Operation::DeleteProject,
        Method::Delete,
        "/api/v1/projects/{id}",
        "projects",
        "Delete a project with no environments left",
    )
    .no_content(),
    // Runners (admin side)
    ep(
        Operation::ListRunners,
        Method::Get,
        "/api/v1/runners",
        "runners",
        "List runners with phase and load",
    )
    .page(json::<RunnerView>()),
    ep(
        Operation::CreateRunner,
        Method::Post,
        "/api/v1/runners",
        "runners",
        "Create a runner; returns its one-time exchange token (valid 24 h)",
    )
    .body(json::<CreateRunner>())
    .created(json::<NewRunner>()),
    ep(
        Operation::GetRunner,
        Method::Get,
        "/api/v1/runners/{id}",
        "runners",
        "Get a runner",
    )
    .returns(json::<RunnerView>()),
    ep(
        Operation::UpdateRunner,
        Method::Patch,
        "/api/v1/runners/{id}",
        "runners",
        "Change a runner's name or capacity",
    )
    .body(json::<UpdateRunner>())
    .returns(json::<RunnerView>()),
    ep(
        Operation::DeleteRunner,
        Method::Delete,
        "/api/v1/runners/{id}",
        "runners",
        "Delete a runner that hosts no environments; revokes its credential",
    )
    .no_content(),
    ep(
        Operation::IssueExchangeToken,
        Method::Post,
        "/api/v1/runners/{id}/exchange-token",
        "runners",
        "Issue a new one-time exchange token (revokes the runner's current credential)",
    )
    .created(json::<NewRunner>()),
    // Environments
    ep(
        Operation::ListEnvironments,
        Method::Get,
        "/api/v1/environments",
        "environments",
        "List environments (members: their own)",
    )
    .page(json::<Environment>())
    .query(&[
        ("project_id", "only this project's environments"),
        ("include_deleted", "true to include deleted environments"),
    ]),
    ep(
        Operation::CreateEnvironment,
        Method::Post,
        "/api/v1/environments",
        "environments",
        "Create and start an environment from a project; the scheduler picks a runner",
    )
    .body(json::<CreateEnvironment>())
    .created(json::<Environment>()),
    ep(
        Operation::GetEnvironment,
        Method::Get,
        "/api/v1/environments/{id}",
        "environments",
        "Get an environment",
    )
    .returns(json::<Environment>()),
    ep(
        Operation::DeleteEnvironment,
        Method::Delete,
        "/api/v1/environments/{id}",
        "environments",
        "Delete an environment (the runner tears it down)",
    )
    .returns(json::<Environment>()),
    ep(
        Operation::StartEnvironment,
        Method::Post,
        "/api/v1/environments/{id}/start",
        "environments",
        "Start a stopped environment",
    )
    .returns(json::<Environment>()),
    ep(
        Operation::StopEnvironment,
        Method::Post,
        "/api/v1/environments/{id}/stop",
        "environments",
        "Stop an environment",
    )
    .returns(json::<Environment>()),
    ep(
        Operation::ListEnvironmentEvents,
        Method::Get,
        "/api/v1/environments/{id}/events",
        "environments",
        "Events the runner reported for an environment",
    )
    .page(json::<EnvEvent>()),
    ep(
        Operation::GetEnvironmentSsh,
        Method::Get,
        "/api/v1/environments/{id}/ssh",
        "environments",
        "Where the owner reaches an environment over SSH, and the host key to pin",
    )
    .returns(json::<SshAccess>()),
    // Secrets
    ep(
        Operation::ListSecrets,
        Method::Get,
        "/api/v1/secrets",
        "secrets",
        "List secrets (metadata only; values are never returned)",
    )
    .page(json::<Secret>())
    .query(&[("project_id", "only secrets scoped to this project")]),
    ep(
        Operation::CreateSecret,
        Method::Post,
        "/api/v1/secrets",
        "secrets",
        "Create a secret (encrypted at rest)",
    )
    .body(json::<CreateSecret>())
    .created(json::<Secret>()),
    ep(
        Operation::GetSecret,
        Method::Get,
        "/api/v1/secrets/{id}",
        "secrets",
        "Get a secret's metadata",
    )
    .returns(json::<Secret>()),
    ep(
        Operation::SetSecretValue,
        Method::Put,
        "/api/v1/secrets/{id}/value",
        "secrets",
        "Replace a secret's value (new data key)",
    )
    .body(json::<SetSecretValue>())
    .returns(json::<Secret>()),
    ep(
        Operation::DeleteSecret,
        Method::Delete,
        "/api/v1/secrets/{id}",
        "secrets",
        "Delete a secret",
    )
    .no_content(),
    ep(
        Operation::RotateKek,
        Method::Post,
        "/api/v1/secrets/rotate-kek",
        "secrets",
        "Re-wrap every data key with the current key-encryption key (site admins)",
    )
    .returns(json::<RotateKekResult>()),
    ep(
        Operation::ExportStoreSnapshot,
        Method::Get,
        "/api/v1/site/store-snapshot",
        "site",
        "A consistent snapshot of the whole store, for `airlock admin backup` (site admins; audited)",
    )
    .returns(json::<StoreSnapshot>()),
    // Audit
    ep(
        Operation::ListAudit,
        Method::Get,
        "/api/v1/audit",
        "audit",
        "Audit records of the caller's org, oldest first",
    )
    .page(json::<AuditRecord>())
    .query(AUDIT_FILTERS),
    ep(
        Operation::VerifyAudit,
        Method::Get,
        "/api/v1/audit/verify",
        "audit",
        "Verify the whole hash chain and return the head",
    )
    .returns(json::<VerifyReport>())
    .query(&[(
        "expect_head",
        "a head hash stored earlier; it must still be in the log",
    )]),
    // Runner-facing
    ep(
        Operation::RunnerExchange,
        Method::Post,
        "/api/v1/runner/exchange",
        "runner-api",
        "Exchange a one-time token for the runner's credential",
    )
    .in_body()
    .body(json::<ExchangeRequest>())
    .returns(json::<RunnerCredential>()),
    ep(
        Operation::RunnerHeartbeat,
        Method::Post,
        "/api/v1/runner/heartbeat",
        "runner-api",
        "Report liveness, health and environment activity",
    )
    .runner()
    .body(json::<Heartbeat>())
    .returns(json::<HeartbeatResponse>()),
    ep(
        Operation::RunnerListEnvironments,
        Method::Get,
        "/api/v1/runner/environments",
        "runner-api",
        "Environments assigned to this runner, with their spec and desired state",
    )
    .runner()
    .page(json::<RunnerEnvironment>()),
    ep(
        Operation::RunnerGetEnvironment,
        Method::Get,
        "/api/v1/runner/environments/{id}",
        "runner-api",
        "One assigned environment",
    )
    .runner()
    .returns(json::<RunnerEnvironment>()),
    ep(
        Operation::RunnerGetSecrets,
        Method::Get,
        "/api/v1/runner/environments/{id}/secrets",
        "runner-api",
        "Secret values to inject into an environment this runner hosts (audited)",
    )
    .runner()
    .returns(json::<SecretValues>()),
    ep(
        Operation::RunnerReportStatus,
        Method::Post,
        "/api/v1/runner/environments/{id}/status",
        "runner-api",
        "Report the phase an environment reached",
    )
    .runner()
    .body(json::<StatusReport>())
    .returns(json::<RunnerEnvironment>()),
    ep(
        Operation::RunnerReportEvents,
        Method::Post,
        "/api/v1/runner/environments/{id}/events",
        "runner-api",
        "Append events (progress, errors) to an environment",
    )
    .runner()
    .body(json::<EventsReport>())
    .returns(json::<EventsAccepted>()),
    ep(
        Operation::RunnerReportSshSessions,
        Method::Post,
        "/api/v1/runner/environments/{id}/ssh-sessions",
        "runner-api",
        "Put SSH gateway connections to an environment on the audit log",
    )
    .runner()
    .body(json::<SshSessionsReport>())
    .returns(json::<SshSessionsAccepted>()),
    ep(
        Operation::RunnerUploadBackup,
        Method::Put,
        "/api/v1/runner/environments/{id}/backup",
        "runner-api",
        "Store a workspace snapshot (tar + zstd body; query digest=sha256:...)",
    )
    .runner()
    .body(Payload::Archive)
    .returns(json::<RunnerEnvironment>())
    .query(&[("digest", "sha256:<hex> of the body (required)")]),
    ep(
        Operation::RunnerDownloadBackup,
        Method::Get,
        "/api/v1/runner/environments/{id}/backup",
        "runner-api",
        "The environment's latest workspace snapshot (tar + zstd)",
    )
    .runner()
    .returns(Payload::Archive),
    // Meta
    ep(
        Operation::GetOpenApi,
        Method::Get,
        "/api/v1/openapi.json",
        "meta",
        "This API's OpenAPI 3.1 document",
    )
    .returns(json::<OpenApiDocument>()),
    ep(
        Operation::GetMetrics,
        Method::Get,
        "/metrics",
        "meta",
        "Prometheus metrics (site org owners, admins, auditors)",
    )
    .returns(Payload::Text),
];
