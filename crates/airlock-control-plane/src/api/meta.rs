//! The OpenAPI document, Prometheus metrics and the JSON 404.

use axum::extract::State;
use axum::http::{header, Method, Uri};
use axum::response::IntoResponse;

use super::context::UserCaller;
use super::{ApiError, App};
use crate::rbac::Permission;

pub async fn openapi(_caller: UserCaller) -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::document())
}

pub async fn metrics(
    State(app): State<App>,
    caller: UserCaller,
) -> Result<impl IntoResponse, ApiError> {
    caller
        .require(&app, Permission::SiteMetrics, "metrics.read", "metrics")
        .await?;
    let body = app.metrics.render(&app)?;
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        body,
    ))
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().chars().take(200).collect(),
    }
}
