//! Reading airlock.toml: defaults, overrides, and the errors a typo gets.

use airlock_config::Config;

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("airlock.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_stay_on_loopback_and_allow_no_egress() {
    let config = Config::load(None, Vec::new()).unwrap();
    assert!(config.mirror.listen.ip().is_loopback());
    assert!(config.control_plane.listen.ip().is_loopback());
    assert!(config.runner.ssh_listen.ip().is_loopback());
    assert!(config.egress.allow.is_empty());
    assert_eq!(config.mirror_url(), "http://127.0.0.1:5000");
    assert_eq!(config.mirror_dir(), std::path::Path::new("./airlock-data/mirror"));
}

#[test]
fn the_file_is_read_and_variables_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "data_dir = \"/var/lib/airlock\"\n[mirror]\nlisten = \"10.0.0.5:5000\"\n\
         tls_cert = \"s.crt\"\ntls_key = \"s.key\"\n[egress]\nallow = [\"git.acme.internal\"]\n",
    );
    let config = Config::load(
        Some(&path),
        vec![("AIRLOCK_MIRROR_LISTEN".into(), "10.0.0.6:5000".into())],
    )
    .unwrap();
    assert_eq!(config.data_dir, std::path::Path::new("/var/lib/airlock"));
    assert_eq!(config.mirror_url(), "https://10.0.0.6:5000");
    assert_eq!(config.egress.allow, ["git.acme.internal"]);
}

#[test]
fn a_misspelt_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[mirror]\nlisen = \"127.0.0.1:5000\"\n");
    let err = Config::load(Some(&path), Vec::new()).unwrap_err().to_string();
    assert!(err.contains("lisen") && err.contains("airlock.toml"), "{err}");
}

#[test]
fn half_a_tls_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[control_plane]\ntls_cert = \"c.pem\"\n");
    let err = Config::load(Some(&path), Vec::new()).unwrap_err().to_string();
    assert!(err.contains("control_plane.tls_key"), "{err}");
}

#[test]
fn the_canonical_form_is_stable_and_follows_changes() {
    let a = Config::default();
    let mut b = Config::default();
    assert_eq!(a.canonical_json(), b.canonical_json());
    b.egress.allow.push("10.0.0.0/8".into());
    assert_ne!(a.canonical_json(), b.canonical_json());
}
