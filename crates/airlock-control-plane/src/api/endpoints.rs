//! The route table (defined in `airlock-api`, with the OpenAPI document) bound to handlers.
//! The binding is an exhaustive `match` on the operation: an operation without a handler
//! does not compile, and the method always comes from the table.

use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};

pub use airlock_api::{AuthKind, Endpoint, Method, Operation, ENDPOINTS};

use super::{
    audit_routes, auth_routes, backups, credentials, environments, inventory, meta, orgs,
    runner_api, runners, secrets, site, ssh, sso_routes, users, App,
};

fn filter(method: Method) -> MethodFilter {
    match method {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
        Method::Patch => MethodFilter::PATCH,
        Method::Delete => MethodFilter::DELETE,
    }
}

/// The endpoint's handler, on the endpoint's method.
pub fn method_router(e: &Endpoint) -> MethodRouter<App> {
    fn route<H: Handler<T, App>, T: 'static>(e: &Endpoint, handler: H) -> MethodRouter<App> {
        on(filter(e.method), handler)
    }
    match e.operation {
        Operation::Login => route(e, auth_routes::login),
        Operation::Logout => route(e, auth_routes::logout),
        Operation::Whoami => route(e, auth_routes::whoami),
        Operation::ListSsoProviders => route(e, sso_routes::list_providers),
        Operation::StartSso => route(e, sso_routes::start),
        Operation::FinishSso => route(e, sso_routes::callback),
        Operation::GetSession => route(e, sso_routes::get_session),
        Operation::SsoLogout => route(e, sso_routes::logout),
        Operation::StartDeviceLogin => route(e, sso_routes::start_device),
        Operation::PollDeviceLogin => route(e, sso_routes::poll_device),
        Operation::RefreshSession => route(e, sso_routes::refresh),
        Operation::ListUsers => route(e, users::list),
        Operation::CreateUser => route(e, users::create),
        Operation::GetUser => route(e, users::get_one),
        Operation::UpdateUser => route(e, users::update),
        Operation::DeleteUser => route(e, users::remove),
        Operation::SetPassword => route(e, users::set_password),
        Operation::ListTokens => route(e, credentials::list_tokens),
        Operation::CreateToken => route(e, credentials::create_token),
        Operation::RevokeToken => route(e, credentials::revoke_token),
        Operation::ListSshKeys => route(e, credentials::list_keys),
        Operation::AddSshKey => route(e, credentials::add_key),
        Operation::DeleteSshKey => route(e, credentials::delete_key),
        Operation::ListOrgs => route(e, orgs::list),
        Operation::CreateOrg => route(e, orgs::create),
        Operation::GetOrg => route(e, orgs::get_one),
        Operation::UpdateOrg => route(e, orgs::update),
        Operation::ListClasses => route(e, inventory::list_classes),
        Operation::CreateClass => route(e, inventory::create_class),
        Operation::GetClass => route(e, inventory::get_class),
        Operation::UpdateClass => route(e, inventory::update_class),
        Operation::DeleteClass => route(e, inventory::delete_class),
        Operation::ListProjects => route(e, inventory::list_projects),
        Operation::CreateProject => route(e, inventory::create_project),
        Operation::GetProject => route(e, inventory::get_project),
        Operation::UpdateProject => route(e, inventory::update_project),
        Operation::DeleteProject => route(e, inventory::delete_project),
        Operation::ListRunners => route(e, runners::list),
        Operation::CreateRunner => route(e, runners::create),
        Operation::GetRunner => route(e, runners::get_one),
        Operation::UpdateRunner => route(e, runners::update),
        Operation::DeleteRunner => route(e, runners::remove),
        Operation::IssueExchangeToken => route(e, runners::issue_exchange_token),
        Operation::ListEnvironments => route(e, environments::list),
        Operation::CreateEnvironment => route(e, environments::create),
        Operation::GetEnvironment => route(e, environments::get_one),
        Operation::DeleteEnvironment => route(e, environments::remove),
        Operation::StartEnvironment => route(e, environments::start),
        Operation::StopEnvironment => route(e, environments::stop),
        Operation::ListEnvironmentEvents => route(e, environments::events),
        Operation::ListSecrets => route(e, secrets::list),
        Operation::CreateSecret => route(e, secrets::create),
        Operation::GetSecret => route(e, secrets::get_one),
        Operation::SetSecretValue => route(e, secrets::set_value),
        Operation::DeleteSecret => route(e, secrets::remove),
        Operation::RotateKek => route(e, secrets::rotate_kek),
        Operation::ExportStoreSnapshot => route(e, site::store_snapshot),
        Operation::ListAudit => route(e, audit_routes::list),
        Operation::VerifyAudit => route(e, audit_routes::verify),
        Operation::RunnerExchange => route(e, runner_api::exchange),
        Operation::RunnerHeartbeat => route(e, runner_api::heartbeat),
        Operation::RunnerListEnvironments => route(e, runner_api::list_environments),
        Operation::RunnerGetEnvironment => route(e, runner_api::get_environment),
        Operation::RunnerGetSecrets => route(e, runner_api::secrets),
        Operation::RunnerReportStatus => route(e, runner_api::report_status),
        Operation::RunnerReportEvents => route(e, runner_api::report_events),
        Operation::RunnerReportSshSessions => route(e, ssh::report_sessions),
        Operation::RunnerUploadBackup => route(e, backups::upload),
        Operation::RunnerDownloadBackup => route(e, backups::download),
        Operation::GetEnvironmentSsh => route(e, ssh::access),
        Operation::GetOpenApi => route(e, meta::openapi),
        Operation::GetMetrics => route(e, meta::metrics),
    }
}
