//! `AIRLOCK_<SECTION>_<KEY>` overrides. Only the keys of the configuration file are read;
//! other `AIRLOCK_*` variables (`AIRLOCK_URL`, `AIRLOCK_TOKEN`, …) belong to the CLI and are
//! left alone.

use crate::{Config, ConfigError};

pub const ENV_PREFIX: &str = "AIRLOCK_";

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    Integer,
    /// Comma-separated in the variable.
    List,
}

/// (section, key, kind); section "" is the top level.
const KEYS: &[(&str, &str, Kind)] = &[
    ("", "data_dir", Kind::Text),
    ("site", "name", Kind::Text),
    ("site", "signing_key", Kind::Text),
    ("mirror", "enabled", Kind::Bool),
    ("mirror", "listen", Kind::Text),
    ("mirror", "public_url", Kind::Text),
    ("mirror", "tls_cert", Kind::Text),
    ("mirror", "tls_key", Kind::Text),
    ("mirror", "allow_push", Kind::Bool),
    ("mirror", "push_namespaces", Kind::List),
    ("mirror", "push_max_blob_bytes", Kind::Integer),
    ("mirror", "push_session_expiry_seconds", Kind::Integer),
    ("mirror", "push_free_space_reserve_bytes", Kind::Integer),
    ("mirror", "push_max_sessions_per_token", Kind::Integer),
    ("mirror", "trusted_keys", Kind::List),
    ("mirror", "threshold", Kind::Integer),
    ("control_plane", "enabled", Kind::Bool),
    ("control_plane", "listen", Kind::Text),
    ("control_plane", "public_url", Kind::Text),
    ("control_plane", "tls_cert", Kind::Text),
    ("control_plane", "tls_key", Kind::Text),
    ("control_plane", "kek_files", Kind::List),
    ("control_plane", "inactive_after_seconds", Kind::Integer),
    ("runner", "enabled", Kind::Bool),
    ("runner", "name", Kind::Text),
    ("runner", "capacity", Kind::Integer),
    ("runner", "ssh_listen", Kind::Text),
    ("runner", "ssh_public_host", Kind::Text),
    ("runner", "metrics_listen", Kind::Text),
    ("runner", "uid_base", Kind::Integer),
    ("runner", "runc", Kind::Text),
    ("egress", "allow", Kind::List),
    ("sso", "local_passwords", Kind::Bool),
    ("sso", "session_idle_seconds", Kind::Integer),
    ("sso", "session_absolute_seconds", Kind::Integer),
];

#[cfg(test)]
/// Keys that are tables of their own, set only in the file.
const FILE_ONLY: &[(&str, &str)] = &[("sso", "providers"), ("runner", "network")];

/// The variable name for a key, e.g. `AIRLOCK_CONTROL_PLANE_LISTEN`.
pub fn variable_name(section: &str, key: &str) -> String {
    let path = if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}_{key}")
    };
    format!("{ENV_PREFIX}{}", path.to_ascii_uppercase())
}

/// Every configuration variable, e.g. `AIRLOCK_MIRROR_LISTEN`.
pub fn variable_names() -> impl Iterator<Item = String> {
    KEYS.iter().map(|(section, key, _)| variable_name(section, key))
}

pub(crate) fn apply(
    config: &mut Config,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut table = toml::Table::try_from(&*config).expect("configuration serializes to TOML");
    let mut changed = false;
    for (name, value) in vars {
        let Some(&(section, key, kind)) = KEYS
            .iter()
            .find(|(section, key, _)| variable_name(section, key) == name)
        else {
            continue;
        };
        let invalid = |message: String| ConfigError::Env {
            name: name.clone(),
            value: value.clone(),
            message,
        };
        let parsed = match kind {
            Kind::Text => toml::Value::String(value.clone()),
            Kind::Bool => match value.as_str() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => return Err(invalid("expected true or false".into())),
            },
            Kind::Integer => value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| invalid("expected a whole number".into()))?,
            Kind::List => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.to_string()))
                    .collect(),
            ),
        };
        let target = if section.is_empty() {
            &mut table
        } else {
            table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("sections are tables")
        };
        target.insert(key.to_string(), parsed);
        changed = true;
        // Check each variable on its own, so the error names the one that is wrong.
        Config::deserialize_table(&table).map_err(invalid)?;
    }
    if changed {
        *config = Config::deserialize_table(&table).map_err(ConfigError::Invalid)?;
    }
    Ok(())
}

impl Config {
    fn deserialize_table(table: &toml::Table) -> Result<Config, String> {
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_in_the_table_reaches_its_field() {
        let config = Config::load(
            None,
            vars(&[
                ("AIRLOCK_DATA_DIR", "/srv/airlock"),
                ("AIRLOCK_MIRROR_LISTEN", "0.0.0.0:443"),
                ("AIRLOCK_MIRROR_TRUSTED_KEYS", "a.pub, b.pub"),
                ("AIRLOCK_MIRROR_THRESHOLD", "2"),
                ("AIRLOCK_CONTROL_PLANE_ENABLED", "false"),
                ("AIRLOCK_RUNNER_CAPACITY", "40"),
                ("AIRLOCK_EGRESS_ALLOW", "git.acme.internal,10.0.0.0/8"),
                ("AIRLOCK_SITE_SIGNING_KEY", "site.key"),
            ]),
        )
        .unwrap();
        assert_eq!(config.data_dir.to_str(), Some("/srv/airlock"));
        assert_eq!(config.mirror.listen.to_string(), "0.0.0.0:443");
        assert_eq!(config.mirror.trusted_keys.len(), 2);
        assert_eq!(config.mirror.threshold, 2);
        assert!(!config.control_plane.enabled);
        assert_eq!(config.runner.capacity, 40);
        assert_eq!(config.egress.allow, ["git.acme.internal", "10.0.0.0/8"]);
        assert_eq!(config.site.signing_key.unwrap().to_str(), Some("site.key"));
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = Config::load(None, vars(&[("AIRLOCK_RUNNER_SSH_LISTEN", "port 22")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AIRLOCK_RUNNER_SSH_LISTEN"), "{err}");
        let err = Config::load(None, vars(&[("AIRLOCK_MIRROR_ALLOW_PUSH", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("true or false"), "{err}");
    }

    #[test]
    fn push_settings_are_read_and_checked() {
        let config = Config::load(
            None,
            vars(&[("AIRLOCK_MIRROR_PUSH_NAMESPACES", "scratch/, team-a"), ("AIRLOCK_MIRROR_PUSH_MAX_BLOB_BYTES", "1000")]),
        )
        .unwrap();
        assert_eq!(config.mirror.push_namespaces, ["scratch/", "team-a"]);
        assert_eq!(config.mirror.push_max_blob_bytes, 1000);
        let err = Config::load(None, vars(&[("AIRLOCK_MIRROR_PUSH_NAMESPACES", "/Scratch")])).unwrap_err().to_string();
        assert!(err.contains("mirror.push_namespaces") && err.contains("/Scratch"), "{err}");
        let err = Config::load(None, vars(&[("AIRLOCK_MIRROR_PUSH_SESSION_EXPIRY_SECONDS", "0")])).unwrap_err().to_string();
        assert!(err.contains("mirror.push_session_expiry_seconds"), "{err}");
        assert_eq!(config.mirror.push_max_sessions_per_token, 64);
        let config = Config::load(None, vars(&[("AIRLOCK_MIRROR_PUSH_MAX_SESSIONS_PER_TOKEN", "2")])).unwrap();
        assert_eq!(config.mirror.push_max_sessions_per_token, 2);
        let err = Config::load(None, vars(&[("AIRLOCK_MIRROR_PUSH_MAX_SESSIONS_PER_TOKEN", "0")])).unwrap_err().to_string();
        assert!(err.contains("mirror.push_max_sessions_per_token"), "{err}");
    }

    #[test]
    fn cli_variables_are_not_configuration() {
        let config = Config::load(
            None,
            vars(&[("AIRLOCK_TOKEN", "alk_x"), ("AIRLOCK_MIRROR_DATA", "/x")]),
        )
        .unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn every_field_has_a_variable() {
        // A key added to the structs but not to KEYS would silently have no override.
        let mut config = Config::default();
        config.site.signing_key = Some("k".into());
        config.mirror.public_url = Some("u".into());
        config.mirror.tls_cert = Some("c".into());
        config.mirror.tls_key = Some("k".into());
        config.control_plane.public_url = Some("u".into());
        config.control_plane.tls_cert = Some("c".into());
        config.control_plane.tls_key = Some("k".into());
        config.runner.ssh_public_host = Some("h".into());
        config.runner.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
        let table = toml::Table::try_from(&config).unwrap();
        let mut fields = Vec::new();
        for (name, value) in &table {
            match value.as_table() {
                Some(section) => fields.extend(section.keys().map(|k| (name.clone(), k.clone()))),
                None => fields.push((String::new(), name.clone())),
            }
        }
        for (section, key) in fields {
            if FILE_ONLY.contains(&(section.as_str(), key.as_str())) {
                continue;
            }
            assert!(
                KEYS.iter().any(|(s, k, _)| *s == section && *k == key),
                "{section}.{key} has no AIRLOCK_ variable"
            );
        }
    }
}
