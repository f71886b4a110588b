//! How unmodified package clients are pointed at a mirror with no flags: the configuration
//! files an environment gets (each at the lowest precedence its client has, so a project's own
//! settings still win) and the variable that names npm's global configuration file.

/// The mirror's PyPI simple index under `base` (`http(s)://host[:port]`).
pub fn pypi_index(base: &str) -> String {
    format!("{}/pypi/simple/", base.trim_end_matches('/'))
}

/// The mirror's npm registry under `base`.
pub fn npm_registry(base: &str) -> String {
    format!("{}/npm/", base.trim_end_matches('/'))
}

/// The mirror's sparse cargo index under `base`, as cargo names a registry.
pub fn cargo_index(base: &str) -> String {
    format!("sparse+{}/cargo/index/", base.trim_end_matches('/'))
}

/// pip's site-wide `/etc/pip.conf`.
pub fn pip_conf(base: &str) -> String {
    format!("[global]\nindex-url = {}\n", pypi_index(base))
}

/// uv's system-level `/etc/uv/uv.toml`.
pub fn uv_toml(base: &str) -> String {
    format!("[[index]]\nurl = \"{}\"\ndefault = true\n", pypi_index(base))
}

/// npm's global `npmrc` (named by `NPM_CONFIG_GLOBALCONFIG`, see [`variables`]).
pub fn npmrc(base: &str) -> String {
    format!("registry={}\n", npm_registry(base))
}

/// cargo's configuration at `/.cargo/config.toml`, the last directory cargo looks in: crates.io
/// replaced by the mirror.
pub fn cargo_config(base: &str) -> String {
    format!(
        "[source.crates-io]\nreplace-with = \"airlock-mirror\"\n\n[source.airlock-mirror]\nregistry = \"{}\"\n",
        cargo_index(base)
    )
}

/// Where npm's global configuration file is put in an environment.
pub const NPMRC_PATH: &str = "/etc/airlock/npmrc";

/// Every file an environment gets: (absolute path inside, contents).
pub fn config_files(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("/etc/pip.conf", pip_conf(base)),
        ("/etc/uv/uv.toml", uv_toml(base)),
        (NPMRC_PATH, npmrc(base)),
        ("/.cargo/config.toml", cargo_config(base)),
    ]
}

/// The variables an environment gets: npm's global configuration file (its own default is
/// under node's install prefix, which differs between images).
pub fn variables() -> Vec<(&'static str, String)> {
    vec![("NPM_CONFIG_GLOBALCONFIG", NPMRC_PATH.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_points_at_the_mirror_paths() {
        let files = config_files("http://mirror.site.internal:5000/");
        let text = |path: &str| files.iter().find(|(p, _)| *p == path).map(|(_, t)| t.clone()).unwrap();
        assert_eq!(text("/etc/pip.conf"), "[global]\nindex-url = http://mirror.site.internal:5000/pypi/simple/\n");
        assert!(text("/etc/uv/uv.toml").contains("url = \"http://mirror.site.internal:5000/pypi/simple/\"\ndefault = true"));
        assert_eq!(text(NPMRC_PATH), "registry=http://mirror.site.internal:5000/npm/\n");
        assert!(text("/.cargo/config.toml").contains("registry = \"sparse+http://mirror.site.internal:5000/cargo/index/\""));
        assert!(files.iter().all(|(path, _)| path.starts_with('/')));
    }
}
