//! Keys and signatures interchange with the stock `minisign` tool in both directions.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn minisign() -> Command {
    Command::new("minisign")
}

/// Extracts one entry of a bundle with GNU tar.
fn extract(sample: &Sample, bundle: &std::path::Path, entry: &str) -> std::path::PathBuf {
    let dir = sample.path("x");
    fs::create_dir_all(&dir).unwrap();
    ok(Command::new("tar").arg("--zstd").arg("-xf").arg(bundle).arg("-C").arg(&dir).arg(entry));
    dir.join(entry)
}

#[test]
fn stock_minisign_verifies_the_embedded_signature() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let manifest = extract(&sample, &bundle, "airlock-bundle.json");
    let signature = extract(&sample, &bundle, "airlock-bundle.json.minisig");
    let out = ok(minisign().arg("-Vm").arg(&manifest).arg("-p").arg(sample.path("key.pub")).arg("-x").arg(&signature));
    let said = stdout(&out);
    assert!(said.contains("Signature and comment signature verified"), "{said}");
    assert!(said.contains("channel=stable sequence=7"), "{said}");

    // And it notices a changed manifest.
    let mut altered = fs::read(&manifest).unwrap();
    altered.push(b' ');
    fs::write(&manifest, altered).unwrap();
    fails(minisign().arg("-Vm").arg(&manifest).arg("-p").arg(sample.path("key.pub")).arg("-x").arg(&signature));
}

#[test]
fn a_stock_minisign_co_signature_meets_a_threshold_of_two() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    // The second officer's key and co-signature, made with the stock tool only.
    let officer = sample.path("officer");
    ok(minisign().args(["-G", "-W", "-p"]).arg(officer.with_extension("pub")).arg("-s").arg(officer.with_extension("key")));
    let manifest = sample.path("to-sign.json");
    fs::write(&manifest, ok(airlock().args(["bundle", "manifest"]).arg(&bundle)).stdout).unwrap();
    let cosig = sample.path("officer.minisig");
    ok(minisign().arg("-Sm").arg(&manifest).arg("-s").arg(officer.with_extension("key")).arg("-x").arg(&cosig));

    let two_keys = |cmd: &mut Command| {
        cmd.args(["bundle", "verify"])
            .arg(&bundle)
            .arg("--trusted-key")
            .arg(sample.path("key.pub"))
            .arg("--trusted-key")
            .arg(officer.with_extension("pub"))
            .args(["--threshold", "2"]);
    };
    let mut without = airlock();
    two_keys(&mut without);
    let err = fails(&mut without);
    assert!(err.contains("1 of the required 2 trusted keys"), "{err}");

    let mut with = airlock();
    two_keys(&mut with);
    let out = stdout(&ok(with.arg("--signature").arg(&cosig)));
    assert!(out.contains("2 of 2 required"), "{out}");

    // The same key twice does not count as two people.
    let mut same = airlock();
    same.args(["bundle", "verify"])
        .arg(&bundle)
        .arg("--trusted-key")
        .arg(sample.path("key.pub"))
        .arg("--trusted-key")
        .arg(sample.path("key.pub"))
        .args(["--threshold", "2"]);
    let err = fails(&mut same);
    assert!(err.contains("threshold 2 is more than the 1 trusted keys"), "{err}");
}

#[test]
fn a_co_signature_over_other_content_is_rejected_as_tampering() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let officer = sample.path("officer");
    ok(minisign().args(["-G", "-W", "-p"]).arg(officer.with_extension("pub")).arg("-s").arg(officer.with_extension("key")));
    let other = sample.path("other.json");
    fs::write(&other, b"{\"not\": \"this bundle\"}\n").unwrap();
    let cosig = sample.path("officer.minisig");
    ok(minisign().arg("-Sm").arg(&other).arg("-s").arg(officer.with_extension("key")).arg("-x").arg(&cosig));
    let err = fails(
        airlock()
            .args(["bundle", "verify"])
            .arg(&bundle)
            .arg("--trusted-key")
            .arg(sample.path("key.pub"))
            .arg("--trusted-key")
            .arg(officer.with_extension("pub"))
            .arg("--signature")
            .arg(&cosig),
    );
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn keys_made_by_stock_minisign_sign_bundles_and_ours_sign_with_stock_minisign() {
    let sample = Sample::new();
    // Stock key, unencrypted, signs a bundle.
    let stock = sample.path("stock");
    ok(minisign().args(["-G", "-W", "-p"]).arg(stock.with_extension("pub")).arg("-s").arg(stock.with_extension("key")));
    let bundle = sample.path("stock.airlock.tar.zst");
    ok(airlock()
        .args(["bundle", "create", "--manifest"])
        .arg(sample.path("sample.toml"))
        .arg("--key")
        .arg(stock.with_extension("key"))
        .arg("--out")
        .arg(&bundle));
    ok(airlock().args(["bundle", "verify"]).arg(&bundle).arg("--trusted-key").arg(stock.with_extension("pub")));

    // Our unencrypted key in the stock tool.
    let file = sample.path("file.txt");
    fs::write(&file, b"release notes\n").unwrap();
    let sig = sample.path("file.txt.minisig");
    ok(minisign().arg("-Sm").arg(&file).arg("-s").arg(sample.path("key.key")).arg("-x").arg(&sig));
    ok(minisign().arg("-Vm").arg(&file).arg("-p").arg(sample.path("key.pub")).arg("-x").arg(&sig));
}

#[test]
fn password_protected_keys_work_in_both_tools() {
    let sample = Sample::new();
    // Ours, encrypted, used by the stock tool (which reads the password from stdin).
    let ours = sample.path("ours");
    ok(airlock().env("AIRLOCK_KEY_PASSWORD", "correct horse").args(["keygen", "--password", "--out"]).arg(&ours));
    let file = sample.path("file.txt");
    fs::write(&file, b"data\n").unwrap();
    let sig = sample.path("file.txt.minisig");
    let mut child = minisign()
        .arg("-Sm")
        .arg(&file)
        .arg("-s")
        .arg(ours.with_extension("key"))
        .arg("-x")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    assert!(child.wait().unwrap().success(), "stock minisign could not use our encrypted key");
    ok(minisign().arg("-Vm").arg(&file).arg("-p").arg(ours.with_extension("pub")).arg("-x").arg(&sig));

    // Ours, encrypted, signs a bundle with the password from the environment; a wrong
    // password is refused with a message saying so.
    let bundle = sample.path("enc.airlock.tar.zst");
    let create = |password: &str| {
        let mut cmd = airlock();
        cmd.env("AIRLOCK_KEY_PASSWORD", password)
            .args(["bundle", "create", "--manifest"])
            .arg(sample.path("sample.toml"))
            .arg("--key")
            .arg(ours.with_extension("key"))
            .arg("--out")
            .arg(&bundle);
        cmd
    };
    let err = fails(&mut create("wrong"));
    assert!(err.contains("Wrong password"), "{err}");
    assert!(!bundle.exists(), "a failed create left a bundle behind");
    ok(&mut create("correct horse"));
    ok(airlock().args(["bundle", "verify"]).arg(&bundle).arg("--trusted-key").arg(ours.with_extension("pub")));
}
