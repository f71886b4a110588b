//! From checked ID token claims to a decision: which org and role the user gets, or why
//! they may not sign in (no mapped group, not an MFA sign-in).

use airlock_egress::config::OidcProvider;

use super::oidc::{string_list, Claims};
use crate::rbac::Role;

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The org's name, as written in the mapping.
    pub org: String,
    pub role: Role,
    /// The group whose mapping decided.
    pub group: String,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("this sign-in did not use multi-factor authentication as the site requires ({0}); sign in again with your second factor")]
    NotMfa(String),
    #[error("none of your groups ({0}) gives access to airlock; ask your identity provider's administrators to add you to an airlock group")]
    NoMappedGroup(String),
}

/// The MFA rules first, then the first mapping (in file order) whose group the user is in
/// decides org and role, so a site lists its most privileged groups first.
pub fn decide(provider: &OidcProvider, claims: &Claims) -> Result<Decision, Refusal> {
    if !provider.required_acr.is_empty()
        && !claims
            .acr
            .as_ref()
            .is_some_and(|acr| provider.required_acr.contains(acr))
    {
        return Err(Refusal::NotMfa(format!(
            "acr is {:?}, required one of {:?}",
            claims.acr.as_deref().unwrap_or(""),
            provider.required_acr
        )));
    }
    if !provider.required_amr.is_empty()
        && !claims.amr.iter().any(|m| provider.required_amr.contains(m))
    {
        return Err(Refusal::NotMfa(format!(
            "amr is {:?}, required one of {:?}",
            claims.amr, provider.required_amr
        )));
    }
    let groups = groups(provider, claims);
    provider
        .mappings
        .iter()
        .find(|m| groups.contains(&m.group))
        .map(|m| Decision {
            org: m.org.clone(),
            role: m.role.parse().unwrap_or(Role::Member),
            group: m.group.clone(),
        })
        .ok_or_else(|| {
            Refusal::NoMappedGroup(if groups.is_empty() {
                format!("no `{}` claim", provider.groups_claim)
            } else {
                groups.join(", ")
            })
        })
}

pub fn groups(provider: &OidcProvider, claims: &Claims) -> Vec<String> {
    string_list(claims.all.get(&provider.groups_claim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_egress::config::GroupMapping;

    fn provider() -> OidcProvider {
        OidcProvider {
            id: "corp".into(),
            display_name: None,
            issuer: "https://idp.internal".into(),
            client_id: "airlock".into(),
            client_secret_file: None,
            scopes: vec!["openid".into()],
            ca_file: None,
            groups_claim: "groups".into(),
            mappings: vec![
                GroupMapping {
                    group: "admins".into(),
                    org: "acme".into(),
                    role: "admin".into(),
                },
                GroupMapping {
                    group: "devs".into(),
                    org: "acme".into(),
                    role: "member".into(),
                },
            ],
            required_acr: vec![],
            required_amr: vec!["mfa".into()],
        }
    }

    fn claims(groups: &[&str], amr: &[&str]) -> Claims {
        let mut all = serde_json::Map::new();
        all.insert("groups".into(), serde_json::json!(groups));
        Claims {
            sub: "s".into(),
            email: None,
            email_verified: false,
            name: None,
            acr: None,
            amr: amr.iter().map(|s| s.to_string()).collect(),
            all,
        }
    }

    #[test]
    fn the_first_mapped_group_decides() {
        let d = decide(&provider(), &claims(&["devs", "admins"], &["pwd", "mfa"])).unwrap();
        assert_eq!((d.role, d.group.as_str()), (Role::Admin, "admins"));
        let d = decide(&provider(), &claims(&["devs"], &["mfa"])).unwrap();
        assert_eq!(d.role, Role::Member);
    }

    #[test]
    fn no_group_or_no_mfa_is_refused() {
        assert!(matches!(
            decide(&provider(), &claims(&["sales"], &["mfa"])),
            Err(Refusal::NoMappedGroup(_))
        ));
        assert!(matches!(
            decide(&provider(), &claims(&["admins"], &["pwd"])),
            Err(Refusal::NotMfa(_))
        ));
    }
}
