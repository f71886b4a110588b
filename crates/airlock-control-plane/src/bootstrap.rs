//! `airlock admin init`: the first org and its owner, created directly in the data
//! directory. The owner gets a personal access token and no password (there are no default
//! passwords); they can set one with the API afterwards.

use std::path::Path;
use std::time::Duration;

use crate::audit::{Actor, AuditEvent, Outcome};
use crate::model::{Org, OrgPolicy, TokenKind, User};
use crate::rbac::Role;
use crate::store::{keys, Store, StoreError};
use crate::time::Timestamp;
use crate::{auth, ids, validate};

/// How long the bootstrap token lives: long enough to set things up, short enough that a
/// token left in a shell history does not stay useful.
pub const BOOTSTRAP_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(
        "the data directory {dir} is already initialized (org `{org}`); \
         create more orgs and users through the API instead"
    )]
    AlreadyInitialized { dir: String, org: String },
}

pub struct Initialized {
    pub org: Org,
    pub owner: User,
    pub token: String,
}

pub fn init(
    dir: &Path,
    org_name: &str,
    owner_email: &str,
    now: Timestamp,
) -> Result<Initialized, InitError> {
    let store = Store::open(dir)?;
    let done = init_store(&store, org_name, owner_email, now).map_err(|e| match e {
        InitError::AlreadyInitialized { org, .. } => InitError::AlreadyInitialized {
            dir: dir.display().to_string(),
            org,
        },
        other => other,
    })?;
    // The caller usually opens the same folder next (`airlock server`): release it fully.
    store.close()?;
    Ok(done)
}

pub fn init_store(
    store: &Store,
    org_name: &str,
    owner_email: &str,
    now: Timestamp,
) -> Result<Initialized, InitError> {
    validate::name(org_name).map_err(|message| InitError::Invalid {
        field: "--org",
        message,
    })?;
    validate::email(owner_email).map_err(|message| InitError::Invalid {
        field: "--owner",
        message,
    })?;
    store.commit(now, |tx| {
        if let Some(org_id) = tx.get::<String>(keys::INITIALIZED)? {
            let org = tx
                .get::<Org>(&keys::org(&org_id))?
                .map(|o| o.name)
                .unwrap_or(org_id);
            return Err(InitError::AlreadyInitialized {
                dir: String::new(),
                org,
            });
        }
        let org = Org {
            id: ids::new_id("org", now),
            name: org_name.to_string(),
            site: true,
            policy: OrgPolicy::default(),
            created_at: now,
        };
        let owner = User {
            id: ids::new_id("usr", now),
            org_id: org.id.clone(),
            email: owner_email.to_lowercase(),
            name: owner_email.to_string(),
            role: Role::Owner,
            disabled: false,
            has_password: false,
            created_at: now,
        };
        tx.put(&keys::org(&org.id), &org);
        tx.put(&keys::obj(&org.id, "user", &owner.id), &owner);
        tx.put(
            &keys::email(&owner.email),
            &format!("{}/{}", org.id, owner.id),
        );
        tx.put(keys::INITIALIZED, &org.id);
        let (token, record) = auth::issue_token(
            tx,
            TokenKind::Personal,
            &org.id,
            &owner.id,
            "bootstrap",
            now,
            Some(BOOTSTRAP_TOKEN_TTL),
        );
        tx.audit(AuditEvent {
            org_id: Some(org.id.clone()),
            actor: Actor::system(),
            action: "site.init".into(),
            subject: format!("org/{}", org.id),
            outcome: Outcome::Success,
            source: "local".into(),
            request_id: String::new(),
            detail: Some(format!(
                "owner {} ({}), bootstrap token {}",
                owner.email, owner.id, record.id
            )),
        });
        Ok(Initialized { org, owner, token })
    })
}
