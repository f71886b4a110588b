//! Names wherever ids are: `airlock admin projects get backend` finds the project called
//! `backend` among those the caller can see. An argument that has the shape of an id is used
//! as it is; anything else is looked up by name (users: by email), and a name that matches
//! nothing or more than one resource is an error that says what to run next.

use airlock_control_plane::client::Client;
use anyhow::bail;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Token,
    SshKey,
    Org,
    Class,
    Project,
    Runner,
    Environment,
    Secret,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::User,
        Kind::Token,
        Kind::SshKey,
        Kind::Org,
        Kind::Class,
        Kind::Project,
        Kind::Runner,
        Kind::Environment,
        Kind::Secret,
    ];

    /// The prefix the control plane gives this kind's ids (`prj_0190…`).
    fn prefix(self) -> &'static str {
        match self {
            Kind::User => "usr",
            Kind::Token => "tok",
            Kind::SshKey => "key",
            Kind::Org => "org",
            Kind::Class => "cls",
            Kind::Project => "prj",
            Kind::Runner => "run",
            Kind::Environment => "env",
            Kind::Secret => "sec",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Token => "token",
            Kind::SshKey => "SSH key",
            Kind::Org => "org",
            Kind::Class => "class",
            Kind::Project => "project",
            Kind::Runner => "runner",
            Kind::Environment => "environment",
            Kind::Secret => "secret",
        }
    }

    fn collection(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Token => "tokens",
            Kind::SshKey => "ssh-keys",
            Kind::Org => "orgs",
            Kind::Class => "classes",
            Kind::Project => "projects",
            Kind::Runner => "runners",
            Kind::Environment => "environments",
            Kind::Secret => "secrets",
        }
    }

    /// The field a person names this kind by.
    fn name_field(self) -> &'static str {
        match self {
            Kind::User => "email",
            _ => "name",
        }
    }

    /// The kind whose id `text` has the shape of: `prefix_` and 28 hex digits.
    fn of_id(text: &str) -> Option<Kind> {
        let (prefix, rest) = text.split_once('_')?;
        let shaped = rest.len() == 28 && rest.bytes().all(|b| b.is_ascii_hexdigit());
        Kind::ALL
            .into_iter()
            .find(|k| shaped && k.prefix() == prefix)
    }
}

/// The id of the `kind` that `given` names: `given` itself when it is such an id, else the
/// one resource whose name (users: email) is `given`.
pub fn resolve(client: &Client, kind: Kind, given: &str) -> anyhow::Result<String> {
    match Kind::of_id(given) {
        Some(k) if k == kind => return Ok(given.to_string()),
        Some(other) => bail!(
            "`{given}` is {} id, not {} id; `airlock admin {} list` shows the {}",
            article(other.noun()),
            article(kind.noun()),
            kind.collection(),
            kind.collection(),
        ),
        None => {}
    }
    let items = client.list_all(&format!("/api/v1/{}", kind.collection()), &[])?;
    pick(kind, given, &items)
}

fn pick(kind: Kind, given: &str, items: &[Value]) -> anyhow::Result<String> {
    let field = kind.name_field();
    let matches: Vec<&Value> = items
        .iter()
        .filter(|item| item[field].as_str() == Some(given))
        .collect();
    match matches.as_slice() {
        [one] => match one["id"].as_str() {
            Some(id) => Ok(id.to_string()),
            None => bail!("the control plane listed {} `{given}` without an id", kind.noun()),
        },
        [] => bail!(
            "no {} has the {field} `{given}` (or you cannot see it); `airlock admin {} list` \
             shows the {} you can use, by id and {field}",
            kind.noun(),
            kind.collection(),
            kind.collection(),
        ),
        many => {
            let candidates: Vec<String> = many
                .iter()
                .map(|item| {
                    let id = item["id"].as_str().unwrap_or("?");
                    match item["org_id"].as_str() {
                        Some(org) => format!("  {id} (org {org})"),
                        None => format!("  {id}"),
                    }
                })
                .collect();
            bail!(
                "{} {} have the {field} `{given}`; give one of their ids:\n{}",
                many.len(),
                kind.collection(),
                candidates.join("\n")
            )
        }
    }
}

fn article(noun: &str) -> String {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'S') => format!("an {noun}"),
        _ => format!("a {noun}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_are_recognised_by_prefix_and_shape() {
        assert_eq!(Kind::of_id("prj_0190a1b2c3d40000a1b2c3d4e5f6"), Some(Kind::Project));
        assert_eq!(Kind::of_id("env_0190a1b2c3d40000a1b2c3d4e5f6"), Some(Kind::Environment));
        assert_eq!(Kind::of_id("prj_backend"), None);
        assert_eq!(Kind::of_id("backend"), None);
        assert_eq!(Kind::of_id("xyz_0190a1b2c3d40000a1b2c3d4e5f6"), None);
    }

    #[test]
    fn a_name_picks_its_one_resource_and_says_what_to_do_otherwise() {
        let items = [
            json!({"id": "prj_1", "name": "backend", "org_id": "org_a"}),
            json!({"id": "prj_2", "name": "web", "org_id": "org_a"}),
            json!({"id": "prj_3", "name": "web", "org_id": "org_b"}),
        ];
        assert_eq!(pick(Kind::Project, "backend", &items).unwrap(), "prj_1");

        let missing = pick(Kind::Project, "frontend", &items).unwrap_err().to_string();
        assert!(missing.contains("no project has the name `frontend`"), "{missing}");
        assert!(missing.contains("airlock admin projects list"), "{missing}");

        let ambiguous = pick(Kind::Project, "web", &items).unwrap_err().to_string();
        assert!(ambiguous.contains("2 projects have the name `web`"), "{ambiguous}");
        assert!(ambiguous.contains("prj_2 (org org_a)") && ambiguous.contains("prj_3 (org org_b)"));
    }

    #[test]
    fn users_are_named_by_email() {
        let items = [json!({"id": "usr_1", "email": "dev@acme.internal", "name": "Dev"})];
        assert_eq!(pick(Kind::User, "dev@acme.internal", &items).unwrap(), "usr_1");
        assert!(pick(Kind::User, "Dev", &items).is_err());
    }
}
