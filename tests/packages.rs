//! Python and npm packages end to end, with the real clients: real wheels, an sdist and npm
//! tarballs built here (`python -m build`, `npm pack`), a stand-in upstream with PyPI's and
//! npm's wire shapes, lock files written by uv and npm against it, `bundle lock` / `create`,
//! import into a mirror, and then `pip install --require-hashes`, `uv pip install` and
//! `npm ci` against the mirror with the stand-in gone. The clients come from
//! scripts/install-deps.sh (`.tools/pkg-venv`, Debian's npm).

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

fn pkg_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/pkg-venv");
    assert!(
        venv.join("bin/uv").exists(),
        "{} has no uv: run scripts/install-deps.sh",
        venv.display()
    );
    venv
}

/// A packaging command isolated from this machine's pip/uv/npm configuration and caches.
fn isolated(program: impl AsRef<std::ffi::OsStr>, work: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("PIP_")
            || key.starts_with("UV_")
            || key.starts_with("NPM_CONFIG_")
            || key.starts_with("npm_config_")
        {
            cmd.env_remove(key);
        }
    }
    let empty = work.join("empty.conf");
    fs::write(&empty, "").unwrap();
    cmd.env("PIP_CONFIG_FILE", &empty)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("UV_CACHE_DIR", work.join("uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("NPM_CONFIG_USERCONFIG", &empty)
        .env("NPM_CONFIG_CACHE", work.join("npm-cache"))
        .env("NPM_CONFIG_AUDIT", "false")
        .env("NPM_CONFIG_FUND", "false")
        .env("NPM_CONFIG_UPDATE_NOTIFIER", "false");
    cmd
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Two projects, `airlock-alpha` depending on `airlock-beta`, each built into a wheel and an
/// sdist; returns the files.
fn build_python(work: &Path) -> Vec<PathBuf> {
    let dist = work.join("py-dist");
    for (name, module, version, dependency, code) in [
        (
            "airlock-beta",
            "airlock_beta",
            "2.0.0",
            "",
            "def greet():\n    return 'beta'\n",
        ),
        (
            "airlock-alpha",
            "airlock_alpha",
            "1.0.0",
            "\"airlock-beta==2.0.0\"",
            "from airlock_beta import greet\n\ndef hello():\n    return 'alpha+' + greet()\n",
        ),
    ] {
        let project = work.join("py-src").join(name);
        write(
            &project.join("pyproject.toml"),
            &format!(
                "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"{name}\"\nversion = \"{version}\"\nrequires-python = \">=3.8\"\ndependencies = [{dependency}]\n"
            ),
        );
        write(&project.join(module).join("__init__.py"), code);
        ok(isolated(pkg_venv().join("bin/python"), work)
            .args([
                "-m",
                "build",
                "--no-isolation",
                "--sdist",
                "--wheel",
                "--outdir",
            ])
            .arg(&dist)
            .arg(&project));
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    files
}

/// `@airlock/scoped` and `airlock-dep-user` (which depends on it), packed by npm.
fn build_npm(work: &Path) -> Vec<(String, PathBuf)> {
    let out = work.join("npm-dist");
    fs::create_dir_all(&out).unwrap();
    let mut packed = Vec::new();
    for (name, dependencies, code) in [
        (
            "@airlock/scoped",
            json!({}),
            "module.exports = () => 'scoped';\n",
        ),
        (
            "airlock-dep-user",
            json!({ "@airlock/scoped": "^1.0.0" }),
            "module.exports = () => 'user+' + require('@airlock/scoped')();\n",
        ),
    ] {
        let dir = work.join("npm-src").join(name.replace('/', "-"));
        let package = json!({ "name": name, "version": "1.0.0", "main": "index.js", "license": "MIT", "dependencies": dependencies });
        write(
            &dir.join("package.json"),
            &serde_json::to_string_pretty(&package).unwrap(),
        );
        write(&dir.join("index.js"), code);
        let result = ok(isolated("npm", work)
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&out)
            .current_dir(&dir));
        let file = stdout(&result).trim().lines().last().unwrap().to_string();
        packed.push((name.to_string(), out.join(file)));
    }
    packed
}

/// The stand-in upstream: a PEP 691 index under `/simple/` with files under `/files/`, and an
/// npm registry at the root.
fn serve_upstream(stand_in: &StandIn, python: &[PathBuf], npm: &[(String, PathBuf)]) {
    let mut projects: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        Default::default();
    for path in python {
        let filename = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = fs::read(path).unwrap();
        let name = airlock_packages::python::parse_dist_filename(&filename)
            .unwrap()
            .name;
        projects.entry(name).or_default().push(json!({
            "filename": filename,
            "url": format!("/files/{filename}"),
            "hashes": { "sha256": sha256_hex(&bytes) },
            "requires-python": ">=3.8",
        }));
        stand_in.put(
            &format!("/files/{filename}"),
            bytes,
            "application/octet-stream",
        );
    }
    for (name, files) in projects {
        let page = json!({ "meta": { "api-version": "1.1" }, "name": name, "files": files });
        stand_in.put(
            &format!("/simple/{name}/"),
            serde_json::to_vec(&page).unwrap(),
            "application/vnd.pypi.simple.v1+json",
        );
    }
    for (name, path) in npm {
        let bytes = fs::read(path).unwrap();
        let (integrity, shasum) = airlock_packages::npm::dist_hashes(&bytes[..]).unwrap();
        let tarball = airlock_packages::npm::tarball_path(name, "1.0.0");
        let dependencies = if name == "airlock-dep-user" {
            json!({ "@airlock/scoped": "^1.0.0" })
        } else {
            json!({})
        };
        let packument = json!({
            "name": name,
            "dist-tags": { "latest": "1.0.0" },
            "versions": { "1.0.0": {
                "name": name, "version": "1.0.0", "dependencies": dependencies,
                "dist": { "tarball": stand_in.url(&format!("/{tarball}")), "integrity": integrity, "shasum": shasum }
            } }
        });
        for path in [
            format!("/{}", name.replace('/', "%2f")),
            format!("/{}", name.replace('/', "%2F")),
        ] {
            stand_in.put_json(&path, &packument);
        }
        stand_in.put(&format!("/{tarball}"), bytes, "application/octet-stream");
    }
}

struct Fixture {
    work: tempfile::TempDir,
    python: Vec<PathBuf>,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

/// Builds the packages, locks them with uv and npm against the stand-in, and writes a signing key.
fn fixture(stand_in: &StandIn) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let python = build_python(root);
    let npm = build_npm(root);
    serve_upstream(stand_in, &python, &npm);
    let index = stand_in.url("/simple/");

    write(&root.join("requirements.in"), "airlock-alpha\n");
    ok(isolated(pkg_venv().join("bin/uv"), root)
        .args([
            "pip",
            "compile",
            "--no-config",
            "--quiet",
            "--generate-hashes",
            "--python-version",
            "3.11",
            "--index-url",
            &index,
            "-o",
        ])
        .arg(root.join("requirements.txt"))
        .arg(root.join("requirements.in")));
    write(
        &root.join("app-py/pyproject.toml"),
        "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = [\"airlock-alpha==1.0.0\"]\n",
    );
    ok(isolated(pkg_venv().join("bin/uv"), root)
        .args(["lock", "--no-config", "--quiet", "--default-index", &index])
        .current_dir(root.join("app-py")));

    write(
        &root.join("app-js/package.json"),
        &serde_json::to_string_pretty(&json!({ "name": "app", "version": "1.0.0", "dependencies": { "airlock-dep-user": "1.0.0" } })).unwrap(),
    );
    ok(isolated("npm", root)
        .args([
            "install",
            "--package-lock-only",
            "--registry",
            &stand_in.url("/"),
        ])
        .current_dir(root.join("app-js")));
    ok(airlock().args(["keygen", "--out"]).arg(root.join("key")));
    Fixture { work, python }
}

/// `bundle lock` then `bundle create` of a manifest in the fixture folder.
fn bundle(f: &Fixture, manifest: &str, body: &str, sequence: &str) -> PathBuf {
    let manifest_path = f.path(manifest);
    write(&manifest_path, body);
    let out = f.path(&manifest.replace(".toml", ".airlock.tar.zst"));
    ok(airlock().args([
        "bundle",
        "lock",
        "--manifest",
        manifest_path.to_str().unwrap(),
        "--cache-dir",
        &f.arg("cache"),
    ]));
    ok(airlock()
        .args([
            "bundle",
            "create",
            "--manifest",
            manifest_path.to_str().unwrap(),
            "--cache-dir",
            &f.arg("cache"),
        ])
        .args([
            "--key",
            &f.arg("key.key"),
            "--out",
            out.to_str().unwrap(),
            "--created",
            CREATED,
            "--sequence",
            sequence,
        ]));
    out
}

/// The requirements of `requirements.txt` split into one file per project (a block starts at
/// each unindented requirement line).
fn split_requirements(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut blocks = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with([' ', '#']) && line.contains("==") {
            current = Some(line.split("==").next().unwrap().to_string());
        }
        if let Some(name) = &current {
            blocks
                .entry(name.clone())
                .or_insert_with(String::new)
                .push_str(&format!("{line}\n"));
        }
    }
    blocks
}

#[test]
fn pip_uv_and_npm_install_from_the_mirror_what_two_bundles_carried() {
    let stand_in = StandIn::start();
    let f = fixture(&stand_in);
    let requirements = fs::read_to_string(f.path("requirements.txt")).unwrap();
    let blocks = split_requirements(&requirements);
    assert_eq!(
        blocks.keys().collect::<Vec<_>>(),
        ["airlock-alpha", "airlock-beta"],
        "{requirements}"
    );
    write(&f.path("req-alpha.txt"), &blocks["airlock-alpha"]);
    write(&f.path("req-beta.txt"), &blocks["airlock-beta"]);

    // Bundle 1: airlock-beta and the npm packages; bundle 2: airlock-alpha. The mirror's
    // index merges them.
    let first = bundle(
        &f,
        "first.toml",
        &format!(
            "[bundle]\nname = \"first\"\nchannel = \"stable\"\n\n[[python]]\nlock = \"req-beta.txt\"\nindex_url = \"{}\"\n\n[[npm]]\nlock = \"app-js/package-lock.json\"\nregistry = \"{}\"\n",
            stand_in.url("/simple"),
            stand_in.base()
        ),
        "1",
    );
    let second = bundle(
        &f,
        "second.toml",
        &format!("[bundle]\nname = \"second\"\nchannel = \"stable\"\n\n[[python]]\nlock = \"req-alpha.txt\"\nindex_url = \"{}\"\n", stand_in.url("/simple")),
        "2",
    );
    let inspect = stdout(&ok(airlock().args(["bundle", "inspect"]).arg(&first)));
    assert!(inspect.contains("packages by ecosystem:"), "{inspect}");
    assert!(
        inspect.contains("npm: 2 packages, 2 files") && inspect.contains("@airlock/scoped 1.0.0"),
        "{inspect}"
    );
    assert!(
        inspect.contains("python: 1 packages, 2 files")
            && inspect.contains("airlock-beta 2.0.0  (py3-none-any, sdist)"),
        "{inspect}"
    );

    let data = f.path("mirror");
    for bundle in [&first, &second] {
        ok(airlock()
            .args(["mirror", "import"])
            .arg(bundle)
            .args(["--trusted-key", &f.arg("key.pub"), "--data-dir"])
            .arg(&data));
    }
    let seen_before = stand_in.seen().len();
    drop(stand_in); // from here on, anything fetched from upstream would fail
    let server = Server::start(&data, &[]);
    let index = server.url("/pypi/simple/");

    // The index, as the clients will see it.
    let page = Curl::get(&server.url("/pypi/simple/Airlock_Alpha/"))
        .header("Accept: text/html")
        .send();
    assert_eq!(page.status, 200);
    let html = page.text();
    let wheel_sha = sha256_hex(
        &fs::read(
            f.python
                .iter()
                .find(|p| p.to_str().unwrap().contains("alpha-1.0.0-py3"))
                .unwrap(),
        )
        .unwrap(),
    );
    assert!(html.contains(&format!("#sha256={wheel_sha}\"")), "{html}");
    assert!(
        html.contains("data-requires-python=\"&gt;=3.8\"")
            && html.contains("data-core-metadata=\"sha256="),
        "{html}"
    );
    let json_page = Curl::get(&server.url("/pypi/simple/airlock-alpha/"))
        .header("Accept: application/vnd.pypi.simple.v1+json")
        .send();
    assert_eq!(
        json_page.header("content-type").as_deref(),
        Some("application/vnd.pypi.simple.v1+json")
    );
    let wheel = json_page.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"].as_str().unwrap().ends_with(".whl"))
        .unwrap()
        .clone();
    let metadata = Curl::get(&format!("{}.metadata", wheel["url"].as_str().unwrap())).send();
    assert!(
        metadata.text().contains("Name: airlock-alpha")
            && metadata
                .text()
                .contains("Requires-Dist: airlock-beta==2.0.0"),
        "{}",
        metadata.text()
    );
    assert_eq!(
        sha256_hex(&metadata.body),
        wheel["core-metadata"]["sha256"].as_str().unwrap()
    );
    let list = Curl::get(&index).send().text();
    assert!(
        list.contains("airlock-alpha") && list.contains("airlock-beta"),
        "{list}"
    );

    // The configuration every environment gets (airlock_packages::clients), used as is: no
    // index flag on any client below.
    let work = f.work.path();
    let clients = f.path("clients");
    fs::create_dir_all(&clients).unwrap();
    let base = server.url("");
    for (name, text) in [
        ("pip.conf", airlock_packages::clients::pip_conf(&base)),
        ("uv.toml", airlock_packages::clients::uv_toml(&base)),
        ("npmrc", airlock_packages::clients::npmrc(&base)),
    ] {
        fs::write(clients.join(name), text).unwrap();
    }

    // pip, with every hash required, into a fresh venv; then the code runs.
    ok(isolated("python3", work)
        .args(["-m", "venv"])
        .arg(f.path("pip-env")));
    ok(isolated(f.path("pip-env/bin/pip"), work)
        .env("PIP_CONFIG_FILE", clients.join("pip.conf"))
        .args(["install", "--no-cache-dir", "--require-hashes", "-r"])
        .arg(f.path("requirements.txt")));
    let run = ok(Command::new(f.path("pip-env/bin/python"))
        .args(["-c", "import airlock_alpha; print(airlock_alpha.hello())"]));
    assert_eq!(stdout(&run).trim(), "alpha+beta");

    // uv, into another fresh venv.
    let uv = pkg_venv().join("bin/uv");
    ok(isolated(&uv, work)
        .args(["venv", "--no-config", "--quiet", "--python", "python3"])
        .arg(f.path("uv-env")));
    ok(isolated(&uv, work)
        .env("UV_CONFIG_FILE", clients.join("uv.toml"))
        .args(["pip", "install", "--require-hashes", "--python"])
        .arg(f.path("uv-env/bin/python"))
        .arg("-r")
        .arg(f.path("requirements.txt")));
    let run = ok(Command::new(f.path("uv-env/bin/python"))
        .args(["-c", "import airlock_alpha; print(airlock_alpha.hello())"]));
    assert_eq!(stdout(&run).trim(), "alpha+beta");

    // npm ci from the lock made against the stand-in: npm puts the registry's host in place of
    // the lock's (`replace-registry-host`; by default it does so for registry.npmjs.org).
    let app = f.path("npm-app");
    fs::create_dir_all(&app).unwrap();
    for file in ["package.json", "package-lock.json"] {
        fs::copy(f.path("app-js").join(file), app.join(file)).unwrap();
    }
    ok(isolated("npm", work)
        .env("NPM_CONFIG_GLOBALCONFIG", clients.join("npmrc"))
        .args(["ci", "--replace-registry-host", "always"])
        .current_dir(&app));
    let run = ok(Command::new("node")
        .args(["-e", "console.log(require('airlock-dep-user')())"])
        .current_dir(&app));
    assert_eq!(stdout(&run).trim(), "user+scoped");

    // The registry's answers: abbreviated and full packuments, scoped names either way.
    let abbreviated = Curl::get(&server.url("/npm/@airlock%2fscoped"))
        .header("Accept: application/vnd.npm.install-v1+json")
        .send();
    assert_eq!(
        abbreviated.header("content-type").as_deref(),
        Some("application/vnd.npm.install-v1+json")
    );
    let doc = abbreviated.json();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    let tarball = fs::read(
        fs::read_dir(f.path("npm-dist"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_str().unwrap().contains("scoped"))
            .unwrap(),
    )
    .unwrap();
    let (integrity, shasum) = airlock_packages::npm::dist_hashes(&tarball[..]).unwrap();
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["integrity"],
        integrity.as_str()
    );
    assert_eq!(doc["versions"]["1.0.0"]["dist"]["shasum"], shasum.as_str());
    let full = Curl::get(&server.url("/npm/@airlock/scoped")).send().json();
    assert_eq!(full["versions"]["1.0.0"]["_id"], "@airlock/scoped@1.0.0");
    assert_eq!(full["versions"]["1.0.0"]["license"], "MIT");

    // Never imported: a quick 404 to each client, which says so.
    assert_eq!(
        Curl::get(&server.url("/pypi/simple/not-carried/"))
            .send()
            .status,
        404
    );
    assert_eq!(
        Curl::get(&server.url("/npm/not-carried")).send().status,
        404
    );
    let err = fails(isolated(f.path("pip-env/bin/pip"), work).args([
        "install",
        "--no-cache-dir",
        "--index-url",
        &index,
        "not-carried",
    ]));
    assert!(
        err.contains("No matching distribution found for not-carried"),
        "{err}"
    );
    let err = fails(
        isolated(&uv, work)
            .args([
                "pip",
                "install",
                "--no-config",
                "--index-url",
                &index,
                "--python",
            ])
            .arg(f.path("uv-env/bin/python"))
            .arg("not-carried"),
    );
    assert!(
        err.contains("not-carried") && err.contains("not found"),
        "{err}"
    );
    let err = fails(
        isolated("npm", work)
            .args(["install", "--registry", &server.url("/npm/"), "not-carried"])
            .current_dir(&app),
    );
    assert!(err.contains("E404") && err.contains("not-carried"), "{err}");
    assert!(seen_before > 0);
}

#[test]
fn a_uv_lock_pins_every_file_and_unpinned_or_altered_packages_are_refused() {
    let stand_in = StandIn::start();
    let f = fixture(&stand_in);
    let lock = |manifest: &str, body: String| {
        write(&f.path(manifest), &body);
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
    };
    let header = "[bundle]\nname = \"pkgs\"\nchannel = \"stable\"\n";

    // uv.lock: every wheel and sdist with the sha256 uv wrote.
    ok(&mut lock(
        "from-uv.toml",
        format!("{header}\n[[python]]\nlock = \"app-py/uv.lock\"\n"),
    ));
    let text = fs::read_to_string(f.path("from-uv.lock")).unwrap();
    let locked: toml::Value = toml::from_str(&text).unwrap();
    let files = locked["file"].as_array().unwrap();
    assert_eq!(files.len(), 4, "{text}");
    for file in files {
        assert_eq!(file["kind"].as_str(), Some("python-package"));
        assert_eq!(file["verified_by"].as_str(), Some("lock-hash"));
    }
    assert!(
        text.contains("[[package_lock]]") && text.contains("path = \"app-py/uv.lock\""),
        "{text}"
    );

    // A changed package lock makes the airlock lock stale.
    let uv_lock = f.path("app-py/uv.lock");
    let original = fs::read_to_string(&uv_lock).unwrap();
    fs::write(&uv_lock, format!("{original}\n# edited\n")).unwrap();
    let err = fails(
        airlock()
            .args([
                "bundle",
                "create",
                "--manifest",
                &f.arg("from-uv.toml"),
                "--cache-dir",
                &f.arg("cache"),
            ])
            .args([
                "--key",
                &f.arg("key.key"),
                "--out",
                &f.arg("stale.airlock.tar.zst"),
            ]),
    );
    assert!(
        err.contains("different version of the package lock") && err.contains("uv.lock"),
        "{err}"
    );
    fs::write(&uv_lock, original).unwrap();

    // A requirement without a hash is refused with the file and line...
    write(
        &f.path("unpinned.txt"),
        "# pinned by hand\nairlock-beta==2.0.0\n",
    );
    let manifest = |extra: &str| {
        format!(
            "{header}\n[[python]]\nlock = \"unpinned.txt\"\nindex_url = \"{}\"\n{extra}",
            stand_in.url("/simple")
        )
    };
    let err = fails(&mut lock("unpinned.toml", manifest("")));
    assert!(
        err.contains("unpinned.txt line 2") && err.contains("no --hash"),
        "{err}"
    );
    // ... unless the manifest allows hashing on first fetch, which the lock and bundle record.
    ok(&mut lock(
        "unpinned.toml",
        manifest("allow_unhashed = true\n"),
    ));
    let text = fs::read_to_string(f.path("unpinned.lock")).unwrap();
    assert!(
        text.contains("verified_by = \"first-fetch\"")
            && text.contains("vnd.airlock.package.hashed-on-first-fetch"),
        "{text}"
    );

    // A tarball that does not match the lock's integrity is refused, naming the lock line.
    let scoped = airlock_packages::npm::tarball_path("@airlock/scoped", "1.0.0");
    stand_in.put(
        &format!("/{scoped}"),
        b"not the tarball npm locked".to_vec(),
        "application/octet-stream",
    );
    let err = fails(&mut lock(
        "npm.toml",
        format!(
            "{header}\n[[npm]]\nlock = \"app-js/package-lock.json\"\nregistry = \"{}\"\n",
            stand_in.base()
        ),
    ));
    assert!(
        err.contains("package-lock.json line") && err.contains("but the lock pins sha512-"),
        "{err}"
    );
}

#[test]
fn a_tampered_package_file_in_a_bundle_is_refused_at_import() {
    let stand_in = StandIn::start();
    let f = fixture(&stand_in);
    let signed = bundle(
        &f,
        "tamper.toml",
        &format!("[bundle]\nname = \"tamper\"\nchannel = \"stable\"\n\n[[python]]\nlock = \"requirements.txt\"\nindex_url = \"{}\"\n", stand_in.url("/simple")),
        "1",
    );
    let wheel = f
        .python
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .unwrap();
    let digest = sha256_hex(&fs::read(wheel).unwrap());
    let mut entries = unpack(&signed);
    let entry = entries
        .iter_mut()
        .find(|e| e.name() == format!("blobs/sha256/{digest}"))
        .expect("the wheel is a blob of the bundle");
    let last = entry.data.len() - 1;
    entry.data[last] ^= 0xff;
    let tampered = f.path("tampered.airlock.tar.zst");
    repack(&entries, &[], &tampered);
    let data = f.path("tampered-mirror");
    let err = fails(
        airlock()
            .args(["mirror", "import"])
            .arg(&tampered)
            .args(["--trusted-key", &f.arg("key.pub"), "--data-dir"])
            .arg(&data),
    );
    assert!(err.contains(&digest), "{err}");
    let server = Server::start(&data, &[]);
    assert_eq!(
        Curl::get(&server.url("/pypi/simple/airlock-alpha/"))
            .send()
            .status,
        404
    );
}
