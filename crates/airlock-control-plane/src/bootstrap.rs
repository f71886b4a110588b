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

/// How long a recovery token lives: long enough to sign in and create a proper token.
pub const RECOVERY_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{dir} holds no initialized control plane; create one with `airlock admin init`")]
    NotInitialized { dir: String },
    #[error("{email} is not an active owner of the site org `{org}`; owners: {owners}")]
    NotAnOwner { email: String, org: String, owners: String },
    #[error("the site org `{org}` has no active owner left; re-enable one with the API first, using another admin's token")]
    NoOwner { org: String },
    #[error("the site org `{org}` has several owners ({owners}); name the one to recover with --owner EMAIL")]
    SeveralOwners { org: String, owners: String },
}

pub struct Recovered {
    pub owner: User,
    pub token: String,
}

/// `airlock admin recover`: a new token for a site owner who lost theirs, issued directly in the
/// data directory (so only someone who can read it — root on the control plane's host — can),
/// and recorded on the audit chain with the operator who ran it.
pub fn recover(
    dir: &Path,
    owner_email: Option<&str>,
    operator: &str,
    now: Timestamp,
) -> Result<Recovered, RecoverError> {
    if !dir.is_dir() {
        return Err(RecoverError::NotInitialized { dir: dir.display().to_string() });
    }
    let store = Store::open(dir)?;
    let done = store.commit(now, |tx| {
        let Some(org_id) = tx.get::<String>(keys::INITIALIZED)? else {
            return Err(RecoverError::NotInitialized { dir: dir.display().to_string() });
        };
        let org = tx.get::<Org>(&keys::org(&org_id))?.map(|o| o.name).unwrap_or_else(|| org_id.clone());
        let owners: Vec<User> = tx
            .scan_all::<User>(&keys::obj_prefix(&org_id, "user"))?
            .into_iter()
            .map(|(_, u)| u)
            .filter(|u| u.role == Role::Owner && !u.disabled)
            .collect();
        let list = || owners.iter().map(|u| u.email.as_str()).collect::<Vec<_>>().join(", ");
        let owner = match owner_email {
            Some(email) => owners
                .iter()
                .find(|u| u.email.eq_ignore_ascii_case(email))
                .cloned()
                .ok_or_else(|| RecoverError::NotAnOwner { email: email.to_string(), org: org.clone(), owners: list() })?,
            None => match owners.as_slice() {
                [one] => one.clone(),
                [] => return Err(RecoverError::NoOwner { org }),
                _ => return Err(RecoverError::SeveralOwners { org, owners: list() }),
            },
        };
        let (token, record) =
            auth::issue_token(tx, TokenKind::Personal, &org_id, &owner.id, "recovery", now, Some(RECOVERY_TOKEN_TTL));
        tx.audit(AuditEvent {
            org_id: Some(org_id.clone()),
            actor: Actor::system(),
            action: "site.recover".into(),
            subject: format!("user/{}", owner.id),
            outcome: Outcome::Success,
            source: "local".into(),
            request_id: String::new(),
            detail: Some(format!("`airlock admin recover` run by {operator}: token {} for {}", record.id, owner.email)),
        });
        Ok(Recovered { owner, token })
    });
    store.close()?;
    done
}
