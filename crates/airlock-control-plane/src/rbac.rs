//! Roles and what each may do. One table, read by every handler, so the policy can be
//! reviewed in one place.

pub use airlock_api::{Role, UnknownRole};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// See the org and its policy.
    ReadOrg,
    /// Change the org policy.
    ManageOrg,
    /// List and read other users of the org.
    ReadUsers,
    /// Create, change and delete users (owners are further protected, see `may_manage_role`).
    ManageUsers,
    /// Read projects, environment classes and secret metadata.
    ReadInventory,
    /// Create, change and delete projects, classes, runners and secrets.
    ManageInventory,
    /// See runners.
    ReadRunners,
    /// Create environments and manage one's own.
    UseEnvironments,
    /// See every environment of the org.
    ReadAllEnvironments,
    /// Start, stop and delete any environment of the org.
    ManageAllEnvironments,
    /// Read and verify the audit log.
    ReadAudit,
    /// Manage one's own tokens and password.
    OwnCredentials,
    /// Register SSH keys (only useful to people who use environments).
    OwnSshKeys,
    /// Site-wide: create orgs, rotate the key-encryption key (site org owners and admins).
    SiteAdmin,
    /// Site-wide: scrape /metrics (site org owners, admins and auditors).
    SiteMetrics,
}

/// Whether `role` in an org (`site_org`: the org created by `admin init`) grants `perm`.
pub fn permits(role: Role, site_org: bool, perm: Permission) -> bool {
    use Permission::*;
    use Role::*;
    let manager = matches!(role, Owner | Admin);
    let reader = manager || role == Auditor;
    match perm {
        ReadOrg | ReadInventory | OwnCredentials => true,
        ManageOrg | ManageUsers | ManageInventory | ManageAllEnvironments => manager,
        ReadUsers | ReadRunners | ReadAllEnvironments | ReadAudit => reader,
        UseEnvironments | OwnSshKeys => role != Auditor,
        SiteAdmin => site_org && manager,
        SiteMetrics => site_org && reader,
    }
}

/// Only owners may create, change or remove owners, or make someone an owner.
pub fn may_manage_role(actor: Role, target: Role) -> bool {
    match target {
        Role::Owner => actor == Role::Owner,
        _ => matches!(actor, Role::Owner | Role::Admin),
    }
}
