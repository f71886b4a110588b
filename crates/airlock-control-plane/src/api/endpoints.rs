//! The route table. The router and the OpenAPI document are both built from it, so the
//! document cannot drift from the routes.

use axum::routing::{delete, get, patch, post, put, MethodRouter};

use super::{
    audit_routes, auth_routes, credentials, environments, inventory, meta, orgs, runner_api,
    runners, secrets, ssh, users, App,
};
use super::backups;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// A user's session or personal access token.
    User,
    /// A runner's credential.
    Runner,
    /// Credentials travel in the body (login, runner exchange).
    InBody,
}

#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: AuthKind,
    /// Schema name (see `openapi::schemas`) of the JSON body, if any.
    pub request: Option<&'static str>,
    /// Schema name of the success body; `None` for 204.
    pub response: Option<&'static str>,
    pub status: u16,
    /// Lists take `limit` and `cursor` and answer with a page of `response` items.
    pub paged: bool,
    /// Extra query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
}

const fn ep(
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        operation_id,
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
    const fn body(mut self, schema: &'static str) -> Self {
        self.request = Some(schema);
        self
    }
    const fn returns(mut self, schema: &'static str) -> Self {
        self.response = Some(schema);
        self
    }
    const fn created(mut self, schema: &'static str) -> Self {
        self.response = Some(schema);
        self.status = 201;
        self
    }
    const fn no_content(mut self) -> Self {
        self.status = 204;
        self
    }
    const fn page(mut self, item: &'static str) -> Self {
        self.response = Some(item);
        self.paged = true;
        self
    }
    const fn runner(mut self) -> Self {
        self.auth = AuthKind::Runner;
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
        "POST",
        "/api/v1/auth/login",
        "login",
        "auth",
        "Log in with email and password; returns a session token",
    )
    .in_body()
    .body("LoginRequest")
    .returns("Session"),
    ep(
        "POST",
        "/api/v1/auth/logout",
        "logout",
        "auth",
        "Revoke the token used for this request",
    )
    .no_content(),
    ep(
        "GET",
        "/api/v1/auth/whoami",
        "whoami",
        "auth",
        "The calling user, their org and role",
    )
    .returns("Whoami"),
    ep(
        "GET",
        "/api/v1/users",
        "listUsers",
        "users",
        "List the org's users",
    )
    .page("User"),
    ep(
        "POST",
        "/api/v1/users",
        "createUser",
        "users",
        "Create a user in the caller's org",
    )
    .body("CreateUser")
    .created("User"),
    ep(
        "GET",
        "/api/v1/users/{id}",
        "getUser",
        "users",
        "Get a user",
    )
    .returns("User"),
    ep(
        "PATCH",
        "/api/v1/users/{id}",
        "updateUser",
        "users",
        "Change a user's name, role or disabled flag",
    )
    .body("UpdateUser")
    .returns("User"),
    ep(
        "DELETE",
        "/api/v1/users/{id}",
        "deleteUser",
        "users",
        "Delete a user and revoke their tokens",
    )
    .no_content(),
    ep(
        "PUT",
        "/api/v1/users/{id}/password",
        "setPassword",
        "users",
        "Set a password (own: current password needed if one is set; admins: reset)",
    )
    .body("SetPassword")
    .no_content(),
    ep(
        "GET",
        "/api/v1/tokens",
        "listTokens",
        "tokens",
        "List the caller's tokens (never their values)",
    )
    .page("TokenInfo"),
    ep(
        "POST",
        "/api/v1/tokens",
        "createToken",
        "tokens",
        "Create a personal access token; its value is shown only in this response",
    )
    .body("CreateToken")
    .created("NewToken"),
    ep(
        "DELETE",
        "/api/v1/tokens/{id}",
        "revokeToken",
        "tokens",
        "Revoke one of the caller's tokens (admins: any token of their org's users)",
    )
    .no_content(),
    ep(
        "GET",
        "/api/v1/ssh-keys",
        "listSshKeys",
        "ssh-keys",
        "List the caller's SSH public keys",
    )
    .page("SshKey"),
    ep(
        "POST",
        "/api/v1/ssh-keys",
        "addSshKey",
        "ssh-keys",
        "Register an SSH public key for SSH into one's environments",
    )
    .body("AddSshKey")
    .created("SshKey"),
    ep(
        "DELETE",
        "/api/v1/ssh-keys/{id}",
        "deleteSshKey",
        "ssh-keys",
        "Remove one of the caller's SSH keys",
    )
    .no_content(),
    // Orgs
    ep(
        "GET",
        "/api/v1/orgs",
        "listOrgs",
        "orgs",
        "List orgs (site admins: all; others: their own)",
    )
    .page("Org"),
    ep(
        "POST",
        "/api/v1/orgs",
        "createOrg",
        "orgs",
        "Create an org with its first owner (site admins)",
    )
    .body("CreateOrg")
    .created("NewOrg"),
    ep(
        "GET",
        "/api/v1/orgs/{id}",
        "getOrg",
        "orgs",
        "Get an org and its policy",
    )
    .returns("Org"),
    ep(
        "PATCH",
        "/api/v1/orgs/{id}",
        "updateOrg",
        "orgs",
        "Change an org's name or policy",
    )
    .body("UpdateOrg")
    .returns("Org"),
    // Inventory
    ep(
        "GET",
        "/api/v1/classes",
        "listClasses",
        "classes",
        "List environment classes",
    )
    .page("EnvironmentClass"),
    ep(
        "POST",
        "/api/v1/classes",
        "createClass",
        "classes",
        "Create an environment class",
    )
    .body("CreateClass")
    .created("EnvironmentClass"),
    ep(
        "GET",
        "/api/v1/classes/{id}",
        "getClass",
        "classes",
        "Get an environment class",
    )
    .returns("EnvironmentClass"),
    ep(
        "PATCH",
        "/api/v1/classes/{id}",
        "updateClass",
        "classes",
        "Change an environment class (existing environments keep theirs)",
    )
    .body("UpdateClass")
    .returns("EnvironmentClass"),
    ep(
        "DELETE",
        "/api/v1/classes/{id}",
        "deleteClass",
        "classes",
        "Delete an environment class no project uses",
    )
    .no_content(),
    ep(
        "GET",
        "/api/v1/projects",
        "listProjects",
        "projects",
        "List projects",
    )
    .page("Project"),
    ep(
        "POST",
        "/api/v1/projects",
        "createProject",
        "projects",
        "Create a project",
    )
    .body("CreateProject")
    .created("Project"),
    ep(
        "GET",
        "/api/v1/projects/{id}",
        "getProject",
        "projects",
        "Get a project",
    )
    .returns("Project"),
    ep(
        "PATCH",
        "/api/v1/projects/{id}",
        "updateProject",
        "projects",
        "Change a project (existing environments keep their spec)",
    )
    .body("UpdateProject")
    .returns("Project"),
    ep(
        "DELETE",
        "/api/v1/projects/{id}",
        "deleteProject",
        "projects",
        "Delete a project with no environments left",
    )
    .no_content(),
    // Runners (admin side)
    ep(
        "GET",
        "/api/v1/runners",
        "listRunners",
        "runners",
        "List runners with phase and load",
    )
    .page("Runner"),
    ep(
        "POST",
        "/api/v1/runners",
        "createRunner",
        "runners",
        "Create a runner; returns its one-time exchange token (valid 24 h)",
    )
    .body("CreateRunner")
    .created("NewRunner"),
    ep(
        "GET",
        "/api/v1/runners/{id}",
        "getRunner",
        "runners",
        "Get a runner",
    )
    .returns("Runner"),
    ep(
        "PATCH",
        "/api/v1/runners/{id}",
        "updateRunner",
        "runners",
        "Change a runner's name or capacity",
    )
    .body("UpdateRunner")
    .returns("Runner"),
    ep(
        "DELETE",
        "/api/v1/runners/{id}",
        "deleteRunner",
        "runners",
        "Delete a runner that hosts no environments; revokes its credential",
    )
    .no_content(),
    ep(
        "POST",
        "/api/v1/runners/{id}/exchange-token",
        "issueExchangeToken",
        "runners",
        "Issue a new one-time exchange token (revokes the runner's current credential)",
    )
    .created("NewRunner"),
    // Environments
    ep(
        "GET",
        "/api/v1/environments",
        "listEnvironments",
        "environments",
        "List environments (members: their own)",
    )
    .page("Environment")
    .query(&[
        ("project_id", "only this project's environments"),
        ("include_deleted", "true to include deleted environments"),
    ]),
    ep(
        "POST",
        "/api/v1/environments",
        "createEnvironment",
        "environments",
        "Create and start an environment from a project; the scheduler picks a runner",
    )
    .body("CreateEnvironment")
    .created("Environment"),
    ep(
        "GET",
        "/api/v1/environments/{id}",
        "getEnvironment",
        "environments",
        "Get an environment",
    )
    .returns("Environment"),
    ep(
        "DELETE",
        "/api/v1/environments/{id}",
        "deleteEnvironment",
        "environments",
        "Delete an environment (the runner tears it down)",
    )
    .returns("Environment"),
    ep(
        "POST",
        "/api/v1/environments/{id}/start",
        "startEnvironment",
        "environments",
        "Start a stopped environment",
    )
    .returns("Environment"),
    ep(
        "POST",
        "/api/v1/environments/{id}/stop",
        "stopEnvironment",
        "environments",
        "Stop an environment",
    )
    .returns("Environment"),
    ep(
        "GET",
        "/api/v1/environments/{id}/events",
        "listEnvironmentEvents",
        "environments",
        "Events the runner reported for an environment",
    )
    .page("EnvironmentEvent"),
    ep(
        "GET",
        "/api/v1/environments/{id}/ssh",
        "getEnvironmentSsh",
        "environments",
        "Where the owner reaches an environment over SSH, and the host key to pin",
    )
    .returns("SshAccess"),
    // Secrets
    ep(
        "GET",
        "/api/v1/secrets",
        "listSecrets",
        "secrets",
        "List secrets (metadata only; values are never returned)",
    )
    .page("Secret")
    .query(&[("project_id", "only secrets scoped to this project")]),
    ep(
        "POST",
        "/api/v1/secrets",
        "createSecret",
        "secrets",
        "Create a secret (encrypted at rest)",
    )
    .body("CreateSecret")
    .created("Secret"),
    ep(
        "GET",
        "/api/v1/secrets/{id}",
        "getSecret",
        "secrets",
        "Get a secret's metadata",
    )
    .returns("Secret"),
    ep(
        "PUT",
        "/api/v1/secrets/{id}/value",
        "setSecretValue",
        "secrets",
        "Replace a secret's value (new data key)",
    )
    .body("SetSecretValue")
    .returns("Secret"),
    ep(
        "DELETE",
        "/api/v1/secrets/{id}",
        "deleteSecret",
        "secrets",
        "Delete a secret",
    )
    .no_content(),
    ep(
        "POST",
        "/api/v1/secrets/rotate-kek",
        "rotateKek",
        "secrets",
        "Re-wrap every data key with the current key-encryption key (site admins)",
    )
    .returns("RotateKekResult"),
    // Audit
    ep(
        "GET",
        "/api/v1/audit",
        "listAudit",
        "audit",
        "Audit records of the caller's org, oldest first",
    )
    .page("AuditRecord")
    .query(AUDIT_FILTERS),
    ep(
        "GET",
        "/api/v1/audit/verify",
        "verifyAudit",
        "audit",
        "Verify the whole hash chain and return the head",
    )
    .returns("VerifyReport")
    .query(&[(
        "expect_head",
        "a head hash stored earlier; it must still be in the log",
    )]),
    // Runner-facing
    ep(
        "POST",
        "/api/v1/runner/exchange",
        "runnerExchange",
        "runner-api",
        "Exchange a one-time token for the runner's credential",
    )
    .in_body()
    .body("ExchangeRequest")
    .returns("RunnerCredential"),
    ep(
        "POST",
        "/api/v1/runner/heartbeat",
        "runnerHeartbeat",
        "runner-api",
        "Report liveness, health and environment activity",
    )
    .runner()
    .body("Heartbeat")
    .returns("HeartbeatResponse"),
    ep(
        "GET",
        "/api/v1/runner/environments",
        "runnerListEnvironments",
        "runner-api",
        "Environments assigned to this runner, with their spec and desired state",
    )
    .runner()
    .page("RunnerEnvironment"),
    ep(
        "GET",
        "/api/v1/runner/environments/{id}",
        "runnerGetEnvironment",
        "runner-api",
        "One assigned environment",
    )
    .runner()
    .returns("RunnerEnvironment"),
    ep(
        "GET",
        "/api/v1/runner/environments/{id}/secrets",
        "runnerGetSecrets",
        "runner-api",
        "Secret values to inject into an environment this runner hosts (audited)",
    )
    .runner()
    .returns("SecretValues"),
    ep(
        "POST",
        "/api/v1/runner/environments/{id}/status",
        "runnerReportStatus",
        "runner-api",
        "Report the phase an environment reached",
    )
    .runner()
    .body("StatusReport")
    .returns("RunnerEnvironment"),
    ep(
        "POST",
        "/api/v1/runner/environments/{id}/events",
        "runnerReportEvents",
        "runner-api",
        "Append events (progress, errors) to an environment",
    )
    .runner()
    .body("EventsReport")
    .returns("EventsAccepted"),
    ep(
        "POST",
        "/api/v1/runner/environments/{id}/ssh-sessions",
        "runnerReportSshSessions",
        "runner-api",
        "Put SSH gateway connections to an environment on the audit log",
    )
    .runner()
    .body("SshSessionsReport")
    .returns("SshSessionsAccepted"),
    ep(
        "PUT",
        "/api/v1/runner/environments/{id}/backup",
        "runnerUploadBackup",
        "runner-api",
        "Store a workspace snapshot (tar + zstd body; query digest=sha256:...)",
    )
    .runner()
    .body("WorkspaceArchive")
    .returns("RunnerEnvironment")
    .query(&[("digest", "sha256:<hex> of the body (required)")]),
    ep(
        "GET",
        "/api/v1/runner/environments/{id}/backup",
        "runnerDownloadBackup",
        "runner-api",
        "The environment's latest workspace snapshot (tar + zstd)",
    )
    .runner()
    .returns("WorkspaceArchive"),
    // Meta
    ep(
        "GET",
        "/api/v1/openapi.json",
        "getOpenApi",
        "meta",
        "This API's OpenAPI 3.1 document",
    )
    .returns("OpenApiDocument"),
    ep(
        "GET",
        "/metrics",
        "getMetrics",
        "meta",
        "Prometheus metrics (site org owners, admins, auditors)",
    )
    .returns("PrometheusText"),
];

/// The handler of an endpoint, by operation id.
pub fn method_router(e: &Endpoint) -> MethodRouter<App> {
    match e.operation_id {
        "login" => post(auth_routes::login),
        "logout" => post(auth_routes::logout),
        "whoami" => get(auth_routes::whoami),
        "listUsers" => get(users::list),
        "createUser" => post(users::create),
        "getUser" => get(users::get_one),
        "updateUser" => patch(users::update),
        "deleteUser" => delete(users::remove),
        "setPassword" => put(users::set_password),
        "listTokens" => get(credentials::list_tokens),
        "createToken" => post(credentials::create_token),
        "revokeToken" => delete(credentials::revoke_token),
        "listSshKeys" => get(credentials::list_keys),
        "addSshKey" => post(credentials::add_key),
        "deleteSshKey" => delete(credentials::delete_key),
        "listOrgs" => get(orgs::list),
        "createOrg" => post(orgs::create),
        "getOrg" => get(orgs::get_one),
        "updateOrg" => patch(orgs::update),
        "listClasses" => get(inventory::list_classes),
        "createClass" => post(inventory::create_class),
        "getClass" => get(inventory::get_class),
        "updateClass" => patch(inventory::update_class),
        "deleteClass" => delete(inventory::delete_class),
        "listProjects" => get(inventory::list_projects),
        "createProject" => post(inventory::create_project),
        "getProject" => get(inventory::get_project),
        "updateProject" => patch(inventory::update_project),
        "deleteProject" => delete(inventory::delete_project),
        "listRunners" => get(runners::list),
        "createRunner" => post(runners::create),
        "getRunner" => get(runners::get_one),
        "updateRunner" => patch(runners::update),
        "deleteRunner" => delete(runners::remove),
        "issueExchangeToken" => post(runners::issue_exchange_token),
        "listEnvironments" => get(environments::list),
        "createEnvironment" => post(environments::create),
        "getEnvironment" => get(environments::get_one),
        "deleteEnvironment" => delete(environments::remove),
        "startEnvironment" => post(environments::start),
        "stopEnvironment" => post(environments::stop),
        "listEnvironmentEvents" => get(environments::events),
        "listSecrets" => get(secrets::list),
        "createSecret" => post(secrets::create),
        "getSecret" => get(secrets::get_one),
        "setSecretValue" => put(secrets::set_value),
        "deleteSecret" => delete(secrets::remove),
        "rotateKek" => post(secrets::rotate_kek),
        "listAudit" => get(audit_routes::list),
        "verifyAudit" => get(audit_routes::verify),
        "runnerExchange" => post(runner_api::exchange),
        "runnerHeartbeat" => post(runner_api::heartbeat),
        "runnerListEnvironments" => get(runner_api::list_environments),
        "runnerGetEnvironment" => get(runner_api::get_environment),
        "runnerGetSecrets" => get(runner_api::secrets),
        "runnerReportStatus" => post(runner_api::report_status),
        "runnerReportEvents" => post(runner_api::report_events),
        "runnerReportSshSessions" => post(ssh::report_sessions),
        "runnerUploadBackup" => put(backups::upload),
        "runnerDownloadBackup" => get(backups::download),
        "getEnvironmentSsh" => get(ssh::access),
        "getOpenApi" => get(meta::openapi),
        "getMetrics" => get(meta::metrics),
        other => panic!("route table names operation `{other}` with no handler"),
    }
}
