//! Rust crates end to end, with the real cargo: two tiny crates packed here with `cargo
//! package` (one depending on the other), a stand-in upstream serving them as a sparse
//! registry in place of crates.io, a `Cargo.lock` written by `cargo generate-lockfile`
//! against it, `bundle lock` / `create`, import into a mirror, and then `cargo build` of the
//! project through source replacement to the mirror with the stand-in gone. Every cargo
//! runs with a CARGO_HOME the test owns.

mod common;
mod mirror_support;
mod upstreams;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mirror_support::{Curl, Server};
use serde_json::json;
use upstreams::StandIn;

/// cargo with `home` as CARGO_HOME, none of this machine's cargo settings, and its builds
/// under `work`.
fn cargo(home: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") || key.starts_with("RUSTFLAGS") || key == "RUSTC_WRAPPER" {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_HOME", home)
        .env("CARGO_TARGET_DIR", work.join("target"))
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_NET_RETRY", "0");
    cmd
}

/// A CARGO_HOME whose crates.io is replaced by the sparse registry at `index`.
fn cargo_home(dir: &Path, index: &str) -> PathBuf {
    write(
        &dir.join("config.toml"),
        &format!(
            "[source.crates-io]\nreplace-with = \"site\"\n\n[source.site]\nregistry = \"sparse+{index}\"\n"
        ),
    );
    dir.to_path_buf()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn crate_project(dir: &Path, name: &str, dependencies: &str, code: &str) {
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"airlock test crate\"\n\n[dependencies]\n{dependencies}"
        ),
    );
    write(&dir.join("src/lib.rs"), code);
}

struct Fixture {
    work: tempfile::TempDir,
    /// The packed `.crate` files, by name.
    crates: Vec<(String, PathBuf)>,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

/// Packs airlock-beta, serves it, packs airlock-alpha (whose packing resolves beta from the
/// stand-in), serves it, and locks an application using alpha.
fn fixture(stand_in: &StandIn) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    stand_in.put_json(
        "/index/config.json",
        &json!({ "dl": stand_in.url("/crates/{crate}/{crate}-{version}.crate") }),
    );
    let home = cargo_home(&root.join("upstream-home"), &stand_in.url("/index/"));
    let mut crates = Vec::new();
    for (name, index_path, dependencies, deps, code) in [
        (
            "airlock-beta",
            "ai/rl/airlock-beta",
            "",
            json!([]),
            "pub fn greet() -> &'static str {\n    \"beta\"\n}\n",
        ),
        (
            "airlock-alpha",
            "ai/rl/airlock-alpha",
            "airlock-beta = \"0.1\"\n",
            json!([{ "name": "airlock-beta", "req": "^0.1", "features": [], "optional": false,
                     "default_features": true, "target": null, "kind": "normal" }]),
            "pub fn hello() -> String {\n    format!(\"alpha+{}\", airlock_beta::greet())\n}\n",
        ),
    ] {
        let dir = root.join("crates-src").join(name);
        crate_project(&dir, name, dependencies, code);
        ok(cargo(&home, root)
            .args(["package", "--no-verify", "--allow-dirty", "--quiet"])
            .current_dir(&dir));
        let packed = root.join(format!("target/package/{name}-0.1.0.crate"));
        let bytes = fs::read(&packed).unwrap();
        let line = json!({ "name": name, "vers": "0.1.0", "deps": deps, "cksum": sha256_hex(&bytes),
                           "features": {}, "yanked": false });
        stand_in.put(
            &format!("/index/{index_path}"),
            format!("{line}\n").into_bytes(),
            "text/plain",
        );
        stand_in.put(
            &format!("/crates/{name}/{name}-0.1.0.crate"),
            bytes,
            "application/octet-stream",
        );
        crates.push((name.to_string(), packed));
    }
    let app = root.join("app");
    write(
        &app.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nairlock-alpha = \"0.1\"\n",
    );
    write(
        &app.join("src/main.rs"),
        "fn main() {\n    println!(\"{}\", airlock_alpha::hello());\n}\n",
    );
    ok(cargo(&home, root)
        .args(["generate-lockfile", "--quiet"])
        .current_dir(&app));
    ok(airlock().args(["keygen", "--out"]).arg(root.join("key")));
    Fixture { work, crates }
}

fn manifest(stand_in: &StandIn, extra: &str) -> String {
    format!(
        "[bundle]\nname = \"crates\"\nchannel = \"stable\"\n\n[[cargo]]\nlock = \"app/Cargo.lock\"\ndownload_url = \"{}\"\n{extra}",
        stand_in.url("/crates/{crate}/{crate}-{version}.crate")
    )
}

fn bundle_lock(f: &Fixture, manifest: &str) -> Command {
    let mut cmd = airlock();
    cmd.args([
        "bundle",
        "lock",
        "--manifest",
        &f.arg(manifest),
        "--cache-dir",
        &f.arg("cache"),
    ]);
    cmd
}

fn bundle_create(f: &Fixture, manifest: &str, out: &str) -> Command {
    let mut cmd = airlock();
    cmd.args([
        "bundle",
        "create",
        "--manifest",
        &f.arg(manifest),
        "--cache-dir",
        &f.arg("cache"),
    ])
    .args([
        "--key",
        &f.arg("key.key"),
        "--out",
        &f.arg(out),
        "--created",
        CREATED,
        "--sequence",
        "1",
    ]);
    cmd
}

#[test]
fn cargo_builds_from_the_mirror_what_a_bundle_carried() {
    let stand_in = StandIn::start();
    let f = fixture(&stand_in);
    let lock = fs::read_to_string(f.path("app/Cargo.lock")).unwrap();
    assert!(
        lock.contains("source = \"registry+https://github.com/rust-lang/crates.io-index\"")
            && lock.contains("checksum = "),
        "{lock}"
    );
    write(&f.path("crates.toml"), &manifest(&stand_in, ""));
    ok(&mut bundle_lock(&f, "crates.toml"));
    let locked = fs::read_to_string(f.path("crates.lock")).unwrap();
    assert_eq!(
        locked.matches("kind = \"cargo-crate\"").count(),
        2,
        "{locked}"
    );
    assert_eq!(
        locked.matches("verified_by = \"lock-hash\"").count(),
        2,
        "{locked}"
    );
    ok(&mut bundle_create(
        &f,
        "crates.toml",
        "crates.airlock.tar.zst",
    ));
    let bundle = f.path("crates.airlock.tar.zst");
    let inspect = stdout(&ok(airlock().args(["bundle", "inspect"]).arg(&bundle)));
    assert!(
        inspect.contains("cargo: 2 packages, 2 files") && inspect.contains("airlock-alpha 0.1.0"),
        "{inspect}"
    );

    let data = f.path("mirror");
    ok(airlock()
        .args(["mirror", "import"])
        .arg(&bundle)
        .args(["--trusted-key", &f.arg("key.pub"), "--data-dir"])
        .arg(&data));
    drop(stand_in); // from here on, anything fetched from upstream would fail
    let server = Server::start(&data, &[]);

    // The index, as cargo will read it.
    let config = Curl::get(&server.url("/cargo/index/config.json"))
        .send()
        .json();
    assert_eq!(
        config["dl"],
        server.url("/cargo/crates/{crate}/{version}/download")
    );
    let alpha = Curl::get(&server.url("/cargo/index/ai/rl/airlock-alpha")).send();
    assert_eq!(alpha.status, 200);
    let entry: serde_json::Value = serde_json::from_str(alpha.text().trim()).unwrap();
    let alpha_bytes = fs::read(&f.crates[1].1).unwrap();
    assert_eq!(entry["cksum"], sha256_hex(&alpha_bytes));
    assert_eq!(entry["deps"][0]["name"], "airlock-beta");
    assert_eq!(entry["deps"][0]["req"], "0.1");
    let download = Curl::get(&server.url("/cargo/crates/airlock-alpha/0.1.0/download")).send();
    assert_eq!(download.body, alpha_bytes);
    assert_eq!(
        Curl::get(&server.url("/cargo/index/no/t-/not-carried"))
            .send()
            .status,
        404
    );
    assert_eq!(
        Curl::get(&server.url("/cargo/index/xx/yy/airlock-alpha"))
            .send()
            .status,
        404
    );

    // cargo, with crates.io replaced by the mirror through the configuration every environment
    // gets (airlock_packages::clients), in a fresh CARGO_HOME: the lock made against the
    // stand-in builds as it is (`--locked`), and the program runs.
    let root = f.work.path();
    let home = f.path("mirror-home");
    write(&home.join("config.toml"), &airlock_packages::clients::cargo_config(&server.url("")));
    let app = f.path("app");
    ok(cargo(&home, root)
        .args(["fetch", "--locked"])
        .current_dir(&app));
    ok(cargo(&home, root)
        .args(["build", "--locked", "--offline", "--quiet"])
        .current_dir(&app));
    let run = ok(&mut Command::new(f.path("target/debug/app")));
    assert_eq!(stdout(&run).trim(), "alpha+beta");

    // A crate no bundle carried: cargo's own clear not-found.
    let other = f.path("other");
    write(
        &other.join("Cargo.toml"),
        "[package]\nname = \"other\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nnot-carried = \"1\"\n",
    );
    write(&other.join("src/main.rs"), "fn main() {}\n");
    let err = fails(
        cargo(&home, root)
            .args(["generate-lockfile"])
            .current_dir(&other),
    );
    assert!(
        err.contains("no matching package named `not-carried` found"),
        "{err}"
    );
}

#[test]
fn crates_without_checksum_or_with_altered_bytes_are_refused() {
    let stand_in = StandIn::start();
    let f = fixture(&stand_in);
    let lock = fs::read_to_string(f.path("app/Cargo.lock")).unwrap();

    // Upstream bytes that differ from the lock's checksum: nothing is packed
    // (before anything below puts the crates in the content cache).
    write(&f.path("crates.toml"), &manifest(&stand_in, ""));
    ok(&mut bundle_lock(&f, "crates.toml"));
    stand_in.put(
        "/crates/airlock-beta/airlock-beta-0.1.0.crate",
        b"not the crate cargo locked".to_vec(),
        "application/octet-stream",
    );
    let beta_sha = sha256_hex(&fs::read(&f.crates[0].1).unwrap());
    let err = fails(&mut bundle_create(
        &f,
        "crates.toml",
        "altered.airlock.tar.zst",
    ));
    assert!(err.contains(&beta_sha), "{err}");
    assert!(!f.path("altered.airlock.tar.zst").exists());

    // Packages without a checksum: the first (airlock-alpha) is refused naming its line...
    let unpinned: String = lock
        .lines()
        .filter(|l| !l.starts_with("checksum"))
        .map(|l| format!("{l}\n"))
        .collect();
    write(&f.path("unpinned/Cargo.lock"), &unpinned);
    let body = manifest(&stand_in, "").replace("app/Cargo.lock", "unpinned/Cargo.lock");
    write(&f.path("unpinned.toml"), &body);
    let err = fails(&mut bundle_lock(&f, "unpinned.toml"));
    let alpha_line = unpinned
        .lines()
        .position(|l| l == "name = \"airlock-alpha\"")
        .unwrap(); // the `[[package]]` header is the line before: 1-based, that is this index
    assert!(
        err.contains(&format!("Cargo.lock line {alpha_line}"))
            && err.contains("airlock-alpha 0.1.0: has no checksum"),
        "{err}"
    );
    // ... unless the manifest allows hashing on first fetch, which the lock records.
    write(
        &f.path("unpinned.toml"),
        &format!("{body}allow_unhashed = true\n"),
    );
    ok(&mut bundle_lock(&f, "unpinned.toml"));
    let locked = fs::read_to_string(f.path("unpinned.lock")).unwrap();
    assert!(
        locked.contains("verified_by = \"first-fetch\"")
            && locked.contains("vnd.airlock.package.hashed-on-first-fetch"),
        "{locked}"
    );

    // A git source cannot be carried.
    let git = lock.replacen(
        "source = \"registry+https://github.com/rust-lang/crates.io-index\"",
        "source = \"git+https://git.example/beta#0123456789abcdef\"",
        1,
    );
    write(&f.path("git/Cargo.lock"), &git);
    write(
        &f.path("git.toml"),
        &manifest(&stand_in, "").replace("app/Cargo.lock", "git/Cargo.lock"),
    );
    let err = fails(&mut bundle_lock(&f, "git.toml"));
    assert!(
        err.contains("git source") && err.contains("cannot be carried"),
        "{err}"
    );
}
