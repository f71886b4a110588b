//! `oscal/ssp-draft.json`: an OSCAL system security plan draft. airlock fills in what it
//! knows (components, boundary, network flows, users and roles from RBAC, inventory from
//! imported bundles, by-component statements); the site completes the rest: categorization
//! (FIPS 199, SP 800-60 information type impacts), the baseline it is assessed against,
//! responsible people for system roles, and the authorization itself.

use serde_json::{json, Value};

use airlock_control_plane::rbac::Role;

use crate::controls;
use crate::facts::{Component, Facts};
use crate::oscal::{airlock_prop, component_uuid, finish, metadata, prop, protocols};
use crate::state::State;
use crate::text;
use crate::uuid::v5;
use crate::Files;

pub const PATH: &str = "oscal/ssp-draft.json";
/// A placeholder baseline (NIST's resolved HIGH baseline catalog): the authorizing official
/// selects the real one. A direct URL, so tools resolve it without the SSP's back matter.
pub const BASELINE_HREF: &str =
    "https://raw.githubusercontent.com/usnistgov/oscal-content/main/nist.gov/SP800-53/rev5/json/NIST_SP-800-53_rev5_HIGH-baseline-resolved-profile_catalog-min.json";

/// What each role may do, as the control plane's permission table grants it.
fn privileges(role: &str) -> (&'static str, &'static str, Vec<&'static str>) {
    match role {
        "owner" => ("Org owner", "privileged", vec!["manage users including owners", "manage org policy", "manage projects, classes, runners and secrets", "manage every environment", "read the audit log", "site administration in the site org"]),
        "admin" => ("Org admin", "privileged", vec!["manage users other than owners", "manage org policy", "manage projects, classes, runners and secrets", "manage every environment", "read the audit log", "site administration in the site org"]),
        "member" => ("Developer", "non-privileged", vec!["read org, projects, classes and secret metadata", "create environments and manage their own", "manage their own tokens, password and SSH keys"]),
        "auditor" => ("Auditor", "non-privileged", vec!["read org, users, runners, environments and secret metadata", "read and verify the audit log", "scrape metrics in the site org"]),
        _ => ("Runner", "privileged", vec!["read the environments assigned to it", "read those environments' secret values", "report environment phases, events and SSH sessions"]),
    }
}

const ROLE_IDS: [&str; 5] = ["owner", "admin", "member", "auditor", "runner"];

fn users(state: &State) -> Vec<Value> {
    let cp = state.control_plane.present();
    ROLE_IDS
        .iter()
        .map(|&role| {
            let (title, level, functions) = privileges(role);
            let accounts = match cp {
                Some(cp) if role == "runner" => cp.runners.len().to_string(),
                Some(cp) => cp.users.iter().filter(|u| u.role.as_str() == role && !u.disabled).count().to_string(),
                None => "unknown (control plane data absent)".into(),
            };
            json!({
                "uuid": v5(&format!("user-type/{role}")),
                "title": title,
                "role-ids": [role],
                "props": [
                    prop("type", "internal"),
                    prop("privilege-level", level),
                    airlock_prop("active-accounts", accounts),
                ],
                "authorized-privileges": [{
                    "title": format!("{title} permissions"),
                    "functions-performed": functions,
                }],
            })
        })
        .collect()
}

/// Parties (one per account) and the role each holds.
fn parties(state: &State) -> (Vec<Value>, Vec<Value>) {
    let Some(cp) = state.control_plane.present() else { return (Vec::new(), Vec::new()) };
    let mut users: Vec<_> = cp.users.iter().collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let parties = users
        .iter()
        .map(|u| {
            let org = cp.orgs.iter().find(|o| o.id == u.org_id).map_or(u.org_id.clone(), |o| o.name.clone());
            json!({
                "uuid": v5(&format!("party/{}", u.id)),
                "type": "person",
                "name": u.name,
                "email-addresses": [u.email],
                "props": [
                    airlock_prop("account-id", u.id.clone()),
                    airlock_prop("org", org),
                    airlock_prop("account-status", if u.disabled { "disabled" } else { "active" }),
                ],
            })
        })
        .collect();
    let responsible = Role::ALL
        .iter()
        .filter_map(|role| {
            let uuids: Vec<String> =
                users.iter().filter(|u| u.role == *role && !u.disabled).map(|u| v5(&format!("party/{}", u.id))).collect();
            (!uuids.is_empty()).then(|| json!({"role-id": role.as_str(), "party-uuids": uuids}))
        })
        .collect();
    (parties, responsible)
}

fn inventory(state: &State) -> Vec<Value> {
    let Some(m) = state.mirror.present() else { return Vec::new() };
    m.artifacts
        .iter()
        .map(|a| {
            let art = &a.record.artifact;
            let mut props = vec![
                prop("asset-id", art.digest.to_string()),
                prop("asset-type", "software"),
                prop("software-name", art.name.clone()),
                prop("version", art.version.clone()),
                airlock_prop("artifact-kind", art.kind.as_str()),
                airlock_prop("repository", format!("{}:{}", art.repository, art.tag)),
                airlock_prop("bundle-id", a.record.bundle_id.clone()),
                airlock_prop("imported", a.record.imported.clone()),
            ];
            if let Some(platform) = &art.platform {
                props.push(airlock_prop("platform", platform.clone()));
            }
            if let Some(file) = &a.file {
                props.push(airlock_prop("file-sha256", file.sha256.clone()));
            }
            json!({
                "uuid": v5(&format!("artifact/{}/{}/{}", art.kind, art.repository, art.tag)),
                "description": format!("{} {} {} from {}, served by the mirror as {}:{}", art.kind, art.name, art.version, art.upstream, art.repository, art.tag),
                "props": props,
                "implemented-components": [{"component-uuid": component_uuid(Component::Mirror)}],
            })
        })
        .collect()
}

fn system_components(state: &State, facts: &Facts) -> Vec<Value> {
    let mut list = vec![json!({
        "uuid": v5(&format!("this-system/{}", state.config.site.name)),
        "type": "this-system",
        "title": state.config.site.name,
        "description": "airlock as deployed at this site: the mirror, control plane and runner inside the enclave, fed by bundles from the bundler on the connected side.",
        "status": {"state": "under-development", "remarks": "Draft: the site sets the operational state when the system is authorized."},
    })];
    for component in Component::ALL {
        let enabled = match component {
            Component::Mirror => Some(state.config.mirror.enabled),
            Component::ControlPlane => Some(state.config.control_plane.enabled),
            Component::Runner => Some(state.config.runner.enabled),
            Component::Bundler => None,
        };
        let status = match enabled {
            Some(true) => json!({"state": "operational"}),
            Some(false) => json!({"state": "other", "remarks": "Disabled in the configuration."}),
            None => json!({"state": "other", "remarks": "Runs on the connected side, outside the authorization boundary; its bundles are verified on import."}),
        };
        let mut value = json!({
            "uuid": component_uuid(component),
            "type": "software",
            "title": component.title(),
            "description": component.description(),
            "purpose": component.purpose(),
            "props": [prop("version", env!("CARGO_PKG_VERSION"))],
            "status": status,
        });
        let protocols = protocols(component, facts);
        if !protocols.is_empty() {
            value["protocols"] = json!(protocols);
        }
        list.push(value);
    }
    list
}

pub fn boundary_statement(state: &State) -> String {
    format!(
        "The authorization boundary of {} holds the airlock mirror, control plane and runner and the hosts they run on inside the enclave, with their data folder {}. \
         No network path crosses the boundary: software enters only as signed bundles carried by hand on removable media and verified by the mirror before import. \
         Inside, the components listen on the addresses in tables/ports-protocols-services.csv and may connect only to each other, to loopback and to the egress allow-list ({}). \
         The bundler runs on the connected side, outside the boundary.",
        state.config.site.name,
        state.config.data_dir.display(),
        crate::statements::egress(state)
    )
}

pub fn write(state: &State, facts: &Facts, diagram: &str, files: &mut Files) {
    let (parties, responsible) = parties(state);
    let mut meta = metadata(state, format!("System security plan (draft): {}", state.config.site.name));
    meta["roles"] = json!(ROLE_IDS.iter().map(|r| json!({"id": r, "title": privileges(r).0})).collect::<Vec<_>>());
    if !parties.is_empty() {
        meta["parties"] = json!(parties);
    }
    if !responsible.is_empty() {
        meta["responsible-parties"] = json!(responsible);
    }
    let implemented: Vec<Value> = controls::implemented(state, facts)
        .iter()
        .map(|imp| {
            json!({
                "uuid": v5(&format!("ssp/control/{}", imp.control.id)),
                "control-id": imp.control.id,
                "by-components": imp.statements.iter().map(|s| json!({
                    "component-uuid": component_uuid(s.component),
                    "uuid": v5(&format!("ssp/control/{}/component/{}", imp.control.id, s.component.key())),
                    "description": s.text,
                    "implementation-status": {"state": s.status.as_str()},
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let diagram = format!("../{diagram}");
    let mut implementation = json!({
        "users": users(state),
        "components": system_components(state, facts),
        "remarks": "Users are the control plane's roles (owner, admin, member, auditor) and runner credentials; parties in the metadata are the accounts found, by role.",
    });
    let inventory = inventory(state);
    if !inventory.is_empty() {
        implementation["inventory-items"] = json!(inventory);
    }
    let doc = json!({
        "system-security-plan": {
            "uuid": "",
            "metadata": meta,
            "import-profile": {
                "href": BASELINE_HREF,
                "remarks": "Placeholder: NIST's resolved HIGH baseline. Replace it with the baseline (or tailored profile) the authorizing official sets. CM-14 and SR-4 are rev5 controls outside every baseline.",
            },
            "system-characteristics": {
                "system-ids": [{"identifier-type": "https://ietf.org/rfc/rfc4122", "id": v5(&format!("system/{}", state.config.site.name))}],
                "system-name": state.config.site.name,
                "system-name-short": "airlock",
                "description": "Cloud development environments for a network with no route to the internet: developers work in isolated environments started from images and tools that entered the enclave only as signed, verified bundles.",
                "system-information": {"information-types": [
                    {"uuid": v5("information-type/source-code"), "title": "Source code and build artifacts", "description": "Code that developers clone from internal repositories into their environments, and what they build from it."},
                    {"uuid": v5("information-type/identity"), "title": "Identity and access data", "description": "Accounts, roles, password hashes, token hashes, SSH public keys and runner credentials in the control plane."},
                    {"uuid": v5("information-type/secrets"), "title": "Secrets", "description": "Values the control plane delivers to environments (encrypted at rest with AES-256-GCM)."},
                    {"uuid": v5("information-type/audit"), "title": "Audit records", "description": "The control plane's hash-chained audit log and the mirror's import history."},
                    {"uuid": v5("information-type/mirrored-software"), "title": "Mirrored software", "description": "Container images, IDE servers, editor extensions and release files imported from signed bundles."},
                ]},
                "status": {"state": "under-development", "remarks": "Draft generated by airlock; the site completes it and sets the state."},
                "authorization-boundary": {
                    "description": boundary_statement(state),
                    "diagrams": [{
                        "uuid": v5("diagram/boundary"),
                        "description": "Components, listeners and flows inside the boundary, and the bundle path across the air gap.",
                        "caption": "airlock authorization boundary",
                        "links": [{"href": diagram, "rel": "diagram"}],
                    }],
                },
                "network-architecture": {"description": format!(
                    "Listeners and flows (tables/ports-protocols-services.csv): {}",
                    facts.flows.iter().map(|f| format!("{} {} {} ({})", f.name, f.direction, f.endpoint, f.protocol)).collect::<Vec<_>>().join("; ")
                )},
                "remarks": "To be completed by the site: security sensitivity level, security impact level, FIPS 199 categorization and SP 800-60 impacts of each information type, and the authorization date.",
            },
            "system-implementation": implementation,
            "control-implementation": {
                "description": "By-component statements generated from the live configuration and state; the site adds its own (policies, procedures, physical and personnel controls) and the controls inherited from its hosting.",
                "implemented-requirements": implemented,
            },
        }
    });
    files.insert(PATH.into(), text::json(&finish("ssp", "system-security-plan", doc)));
}
