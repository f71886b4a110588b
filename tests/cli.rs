//! The command line's own surface: completions, manual pages, warnings about the environment.

mod common;

use std::process::Command;

use common::{airlock, fails, ok, stdout, MirrorServer, Sample};

#[test]
fn bash_completions_load_and_complete_subcommands() {
    let script = stdout(&ok(airlock().args(["completions", "bash"])));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &script).unwrap();
    // Load the script into a real bash and ask it to complete `airlock mir`.
    let probe = format!(
        "source {}; COMP_WORDS=(airlock mir); COMP_CWORD=1; COMP_LINE='airlock mir'; COMP_POINT=11; _airlock airlock mir airlock; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.path().display()
    );
    let out = stdout(&ok(Command::new("bash").args(["-c", &probe])));
    assert_eq!(out.trim(), "mirror", "{out}");
    for shell in ["zsh", "fish"] {
        let script = stdout(&ok(airlock().args(["completions", shell])));
        assert!(script.contains("mirror") && script.contains("data-dir"), "{shell}: {script}");
    }
}

#[test]
fn manual_pages_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&ok(airlock().arg("man").arg("--out").arg(dir.path())));
    assert!(out.starts_with("wrote "), "{out}");
    let page = std::fs::read_to_string(dir.path().join("airlock-mirror-import.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH airlock-mirror-import 1"), "{page}");
    assert!(page.contains("airlock mirror import"), "the synopsis names the command as typed: {page}");
    for page in ["airlock.1", "airlock-demo.1", "airlock-admin.1", "airlock-bundle-create.1", "airlock-completions.1"] {
        assert!(dir.path().join(page).is_file(), "{page} missing");
    }
}

#[test]
fn a_misspelt_variable_is_named_with_the_one_meant() {
    let dir = tempfile::tempdir().unwrap();
    let out = airlock()
        .args(["mirror", "history", "--data-dir"])
        .arg(dir.path())
        .env("AIRLOCK_MIRROR_LISTN", "0.0.0.0:443")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: AIRLOCK_MIRROR_LISTN is not a variable airlock reads; did you mean AIRLOCK_MIRROR_LISTEN?"),
        "{err}"
    );
}

/// `admin` pointed at the wrong server, the wrong scheme or without the site's CA: each error
/// names the cause and the flag that fixes it.
#[test]
fn admin_connection_errors_name_the_cause_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = MirrorServer::start(&dir.path().join("mirror"), &[]);
    let admin = |url: &str, extra: &[&str]| fails(airlock().args(["admin", "users", "list", "--url", url, "--token", "alk_pat_x"]).args(extra).env_remove("AIRLOCK_CA_CERT"));

    let err = admin(&mirror.url(""), &[]);
    assert!(err.contains("not as an airlock control plane") && err.contains("--url (AIRLOCK_URL)"), "{err}");
    let err = admin(&format!("https://{}", mirror.addr), &[]);
    assert!(err.contains("does not answer in TLS") && err.contains("http://"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = admin(&format!("http://{closed}"), &[]);
    assert!(err.contains("nothing is listening at http://127.0.0.1:"), "{err}");

    let tls = dir.path().join("tls");
    ok(airlock().args(["mirror", "tls", "issue", "--name", "localhost", "--out"]).arg(&tls));
    let secure = MirrorServer::start(
        &dir.path().join("secure"),
        &["--tls-cert", tls.join("server.crt").to_str().unwrap(), "--tls-key", tls.join("server.key").to_str().unwrap()],
    );
    let https = format!("https://localhost:{}", secure.port);
    let err = admin(&https, &[]);
    assert!(err.contains("not signed by a CA this client trusts") && err.contains("--ca-cert FILE or AIRLOCK_CA_CERT"), "{err}");
    // With the CA it gets through TLS, and then says the server is not a control plane.
    let err = admin(&https, &["--ca-cert", tls.join("ca.crt").to_str().unwrap()]);
    assert!(err.contains("not as an airlock control plane"), "{err}");
    // The wrong file of the set is named for what it is.
    let err = admin(&https, &["--ca-cert", tls.join("ca.key").to_str().unwrap()]);
    assert!(err.contains("it is a private key, not a certificate"), "{err}");
    ok(airlock().arg("keygen").arg("--out").arg(dir.path().join("signer")).env("AIRLOCK_KEY_PASSWORD", "pw"));
    let err = admin(&https, &["--ca-cert", dir.path().join("signer.pub").to_str().unwrap()]);
    assert!(err.contains("it is a minisign key"), "{err}");
}

#[test]
fn mirror_serve_names_a_busy_address_and_accepts_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = fails(airlock().args(["mirror", "serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"]).arg(dir.path()));
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("--listen (mirror.listen in airlock.toml)"),
        "{err}"
    );
    assert!(!err.contains("content store"), "the store is not to blame: {err}");
    drop(taken);
    let mut cmd = airlock();
    cmd.args(["mirror", "serve", "--listen", "localhost:0", "--data-dir"]).arg(dir.path());
    let server = MirrorServer::spawn(cmd);
    assert!(server.addr.starts_with("127.0.0.1:"));
    let err = fails(airlock().args(["mirror", "serve", "--listen", "mirror.acme.internal:443", "--data-dir"]).arg(dir.path()));
    assert!(err.contains("is not an IP address"), "{err}");
}

/// Files that are not bundles are named for what they are, and the mirror stays unchanged.
#[test]
fn importing_a_file_that_is_not_a_bundle_says_what_it_is() {
    let sample = Sample::new();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("content.tar");
    ok(Command::new("tar").arg("cf").arg(&tar).arg("-C").arg(sample.dir.path()).arg("sample.toml"));
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty.airlock.tar.zst", Vec::new(), "the file is empty (0 bytes), not an airlock bundle"),
        ("random.bin", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(), "are not a zstd frame"),
        ("content.tar", std::fs::read(&tar).unwrap(), "it is an uncompressed tar archive"),
        ("key.pub", std::fs::read(sample.path("key.pub")).unwrap(), "it is a minisign key or signature"),
        ("notes.json", b"{\"bundle\": 1}".to_vec(), "it is a JSON file"),
    ];
    let mirror = dir.path().join("mirror");
    for (name, bytes, expected) in cases {
        let file = dir.path().join(format!("in-{name}"));
        std::fs::write(&file, bytes).unwrap();
        let err = fails(airlock().args(["mirror", "import"]).arg(&file).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&mirror));
        assert!(err.contains(expected) && err.contains("the mirror is unchanged"), "{name}: {err}");
        if !expected.contains("empty") {
            assert!(err.contains("a bundle is the zstd-compressed tar (NAME.airlock.tar.zst)"), "{name}: {err}");
        }
    }
    let history = stdout(&ok(airlock().args(["mirror", "history", "--data-dir"]).arg(&mirror)));
    assert!(history.contains("refused") && !history.contains("null"), "refusals without a sequence print `-`: {history}");
    assert!(history.ends_with('\n'));
}

/// Commands that report a result print it as one JSON document with `--output json`, and
/// keep progress notes off standard output.
#[test]
fn results_are_json_with_output_json() {
    let sample = Sample::new();
    let out = sample.path("json.airlock.tar.zst");
    let created = ok(sample.create_command("sample.toml", &out).args(["--created", "2030-01-01T00:00:00Z", "--sequence", "3", "--output", "json"]));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).expect("bundle create prints JSON");
    assert_eq!(created["sequence"], 3);
    assert_eq!(created["bundle"].as_str(), Some(out.to_str().unwrap()));
    assert!(created["size"].as_u64().unwrap() > 0 && created["artifacts"].as_u64().unwrap() > 0, "{created}");

    let data = tempfile::tempdir().unwrap();
    ok(airlock().args(["mirror", "import"]).arg(&out).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(data.path()));
    let gc = ok(airlock().args(["mirror", "gc", "--dry-run", "--output", "json", "--data-dir"]).arg(data.path()));
    let gc: serde_json::Value = serde_json::from_slice(&gc.stdout).expect("mirror gc prints JSON");
    assert_eq!((gc["dry_run"].as_bool(), gc["removed"].as_array().map(Vec::len)), (Some(true), Some(0)), "{gc}");
    assert!(gc["kept"].as_u64().unwrap() > 0, "{gc}");

    let tls = ok(airlock().args(["mirror", "tls", "issue", "--name", "mirror.acme.internal", "--output", "json", "--out"]).arg(data.path().join("tls")));
    let tls: serde_json::Value = serde_json::from_slice(&tls.stdout).expect("mirror tls issue prints JSON");
    assert_eq!(tls["reused_ca"], false);
    assert!(tls["dns_names"].as_array().unwrap().iter().any(|n| n == "mirror.acme.internal"), "{tls}");
    assert!(std::path::Path::new(tls["server_cert"].as_str().unwrap()).is_file());
}

/// `--data-dir` is the site folder on every command; a component's own folder, as some
/// commands took it before, is refused with the move that fixes it instead of silently
/// starting an empty component beside it.
#[test]
fn data_dir_names_the_site_folder_on_every_command() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let site = tempfile::tempdir().unwrap();
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(site.path()));
    assert!(site.path().join("mirror/metadata").is_dir(), "the mirror's part is mirror/ of the site folder");
    ok(airlock().args(["admin", "init", "--org", "acme", "--owner", "admin@acme.internal", "--data-dir"]).arg(site.path()));
    assert!(site.path().join("control-plane/db").exists(), "the control plane's part is control-plane/");
    // The same folder means the same mirror to every command, and the AIRLOCK_DATA_DIR default.
    let listed = stdout(&ok(airlock().args(["mirror", "ls"]).env("AIRLOCK_DATA_DIR", site.path())));
    assert!(listed.contains("devcontainers/base"), "{listed}");

    let old_mirror = site.path().join("mirror");
    let err = fails(airlock().args(["mirror", "ls", "--data-dir"]).arg(&old_mirror));
    assert!(err.contains("holds a mirror's content store directly"), "{err}");
    assert!(err.contains(&format!("mv {} NEW/mirror", old_mirror.display())), "{err}");
    let old_cp = site.path().join("control-plane");
    let err = fails(airlock().args(["admin", "audit", "verify", "--data-dir"]).arg(&old_cp));
    assert!(err.contains("holds a control plane's database directly"), "{err}");
    let err = fails(airlock().args(["mirror", "ls"]).env("AIRLOCK_MIRROR_DATA", &old_mirror).arg("--data-dir").arg(site.path()));
    assert!(err.contains("AIRLOCK_MIRROR_DATA") && err.contains("AIRLOCK_DATA_DIR"), "{err}");
    // Nothing was created inside the folders that were refused.
    assert!(!old_mirror.join("mirror").exists() && !old_cp.join("control-plane").exists());
}
