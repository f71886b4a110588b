//! Site-wide operations on the whole store: the snapshot `airlock admin backup` copies.

use airlock_api::StoreSnapshot;
use axum::extract::State;
use base64::Engine;

use super::context::UserCaller;
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::rbac::Permission;

/// The whole store at one instant. The backup is audited first, so the snapshot holds the
/// record of its own taking.
pub async fn store_snapshot(
    State(app): State<App>,
    caller: UserCaller,
) -> Result<axum::Json<StoreSnapshot>, ApiError> {
    caller
        .require(&app, Permission::SiteAdmin, "site.backup", "site")
        .await?;
    app.audit(caller.event("site.backup", "site", Outcome::Success, None))
        .await?;
    let taken_at = app.now();
    let entries = crate::store::blocking(|| app.store.snapshot())?;
    let head = entries
        .iter()
        .find(|(key, _)| key == crate::store::keys::AUDIT_HEAD)
        .and_then(|(_, value)| serde_json::from_slice::<crate::audit::Head>(value).ok())
        .ok_or_else(|| {
            ApiError::Internal("the store has no audit head after recording the backup".into())
        })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(axum::Json(StoreSnapshot {
        taken_at,
        audit_seq: head.seq,
        audit_head: head.hash,
        entries: entries
            .into_iter()
            .map(|(key, value)| [key, b64.encode(value)])
            .collect(),
    }))
}
