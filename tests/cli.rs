//! The command line's own surface: completions, manual pages, warnings about the environment.

mod common;

use std::process::Command;

use common::{airlock, ok, stdout};

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
