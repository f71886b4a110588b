//! Reading and verifying the audit log.

use axum::extract::State;
use serde::Deserialize;

use super::context::{Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::{self, AuditRecord, Filter, Outcome, VerifyReport};
use crate::model::Page;
use crate::rbac::Permission;
use crate::time::Timestamp;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<usize>,
    /// The `seq` of the last record of the previous page.
    pub cursor: Option<String>,
}

fn time(field: &str, value: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| {
            Timestamp::parse(v).map_err(|e| {
                ApiError::invalid(
                    field,
                    format!("`{v}` is not an RFC 3339 time such as 2024-05-01T12:00:00Z: {e}"),
                )
            })
        })
        .transpose()
}

pub async fn list(
    State(app): State<App>,
    caller: UserCaller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Page<AuditRecord>>, ApiError> {
    caller
        .require(&app, Permission::ReadAudit, "audit.read", "audit")
        .await?;
    let limit = Paging {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            ApiError::invalid("cursor", "not a cursor from a previous page's next_cursor")
        })?),
    };
    let filter = Filter {
        org_id: Some(caller.org.id.clone()),
        actor: q.actor.clone(),
        action: q.action.clone(),
        subject: q.subject.clone(),
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
    };
    let (items, more) = audit::query(&app.store, &filter, after, limit)?;
    let next_cursor = if more {
        items.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    // Reading the log is itself a privileged read.
    let detail = format!(
        "{} record(s), filters: actor={:?} action={:?} subject={:?}",
        items.len(),
        q.actor,
        q.action,
        q.subject
    );
    app.audit(caller.event("audit.read", "audit", Outcome::Success, Some(detail)))
        .await?;
    Ok(axum::Json(Page { items, next_cursor }))
}

#[derive(Deserialize, Default)]
pub struct VerifyQuery {
    pub expect_head: Option<String>,
}

pub async fn verify(
    State(app): State<App>,
    caller: UserCaller,
    Query(q): Query<VerifyQuery>,
) -> Result<axum::Json<VerifyReport>, ApiError> {
    caller
        .require(&app, Permission::ReadAudit, "audit.verify", "audit")
        .await?;
    let expect_head = q.expect_head.as_deref().filter(|h| !h.is_empty());
    // The chain is site-wide: its figures (record counts, other orgs' problems) are for site
    // administrators; an org's admins and auditors verify their org's records.
    let report = if caller.may(Permission::SiteAdmin) {
        audit::verify(&app.store, expect_head)?
    } else {
        audit::verify_org(&app.store, &caller.org.id, expect_head)?
    };
    Ok(axum::Json(report))
}
