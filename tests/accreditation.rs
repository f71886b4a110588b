//! `airlock docs accreditation` on a live site, driven like a user: a mirror with an imported
//! bundle (an image, a release file, a VS Code extension), a control plane with an org,
//! users in every role, a project, a runner and secrets, and a site signing key. Every
//! generated document is checked by independent validators (trestle, cyclonedx-python-lib,
//! pyspdxtools) installed by `scripts/install-deps.sh test` into .tools/venv; the package's
//! signature by the stock `minisign`, its manifest by `sha256sum -c`.

mod common;
mod mirror_support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use common::{airlock, fails, ok, stdout, Sample};
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const REQUIRED: &[&str] = &[
    "ac-2", "ac-3", "ac-6", "au-2", "au-3", "au-8", "au-9", "au-10", "au-12", "cm-2", "cm-7", "cm-8", "cm-11", "cm-14", "ia-2",
    "ia-5", "sc-7", "sc-8", "sc-12", "sc-13", "sc-28", "sc-39", "si-7", "sr-4", "sr-11",
];

/// The validators' python, from the venv `make test` (scripts/install-deps.sh test) makes.
fn validator() -> Command {
    let python = Path::new(ROOT).join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/install-deps.sh test` (make test does) to install the accreditation validators",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(ROOT).join("scripts/validate-accreditation.py"));
    cmd
}

/// Runs the validators; returns (all valid, output).
fn validate(args: &[&Path]) -> (bool, String) {
    let mut cmd = validator();
    for arg in args {
        cmd.arg(arg);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "the validators could not run ({:?}):\n{text}", out.status);
    (out.status.success(), text)
}

fn validate_one(kind: &str, file: &Path) -> (bool, String) {
    let flag = PathBuf::from(format!("--{kind}"));
    validate(&[&flag, file])
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn docs(out: &Path) -> Command {
    let mut cmd = airlock();
    cmd.args(["docs", "accreditation", "--out"]).arg(out);
    cmd
}

/// A control plane server, killed when dropped.
struct ControlPlane {
    child: Child,
    url: String,
}

impl ControlPlane {
    fn start(data: &Path, kek: &Path) -> ControlPlane {
        let mut child = airlock()
            .args(["control-plane", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--kek-file")
            .arg(kek)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("control plane did not start: {line:?}")).to_string();
        ControlPlane { child, url }
    }

    /// An admin command against this server.
    fn admin(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = airlock()
            .arg("admin")
            .args(args)
            .env("AIRLOCK_URL", &self.url)
            .env("AIRLOCK_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Initializes the control plane of a site folder; returns the owner's token.
fn init_control_plane(data: &Path, kek: &Path) -> String {
    ok(airlock().args(["control-plane", "gen-kek", "--out"]).arg(kek));
    let out = ok(airlock().args(["admin", "init", "--org", "acme", "--owner", "admin@acme.internal", "--data-dir"]).arg(data));
    stdout(&out).trim().to_string()
}

/// One live site shared by the tests (built once): its folders live under the target's
/// test folder, replaced on every run.
struct Site {
    root: PathBuf,
    /// Package generated with the site's configuration and key.
    package: PathBuf,
    kek_id: String,
}

impl Site {
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("airlock.toml")
    }

    fn write_config(&self, path: &Path, egress: &[&str]) {
        let text = format!(
            "data_dir = {data:?}\n\n[site]\nname = \"Test enclave\"\nsigning_key = {key:?}\n\n\
             [mirror]\nlisten = \"127.0.0.1:5000\"\ntrusted_keys = [{trusted:?}]\nthreshold = 1\n\n\
             [control_plane]\nlisten = \"127.0.0.1:8443\"\nkek_files = [{kek:?}]\n\n\
             [runner]\nssh_listen = \"127.0.0.1:2222\"\n\n[egress]\nallow = {egress:?}\n",
            data = self.path("data").display().to_string(),
            key = self.path("site.key").display().to_string(),
            trusted = self.path("sample/key.pub").display().to_string(),
            kek = self.path("kek").display().to_string(),
        );
        fs::write(path, text).unwrap();
    }
}

/// Held while a test reads the site's data folders with a process of its own (sled admits
/// one process at a time, and a copy must not overlap another reader).
static SITE_DATA: Mutex<()> = Mutex::new(());

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(build_site)
}

fn build_site() -> Site {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("accreditation-site");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();

    // The sample bundle plus a VS Code extension, signed with the sample key.
    let sample = Sample::new();
    let vsix = mirror_support::vsix(&mirror_support::package_json("acme", "hello", "1.0.0", &[], &[]), false);
    fs::create_dir_all(sample.path("content")).unwrap();
    fs::write(sample.path("content/acme.hello-1.0.0.vsix"), vsix).unwrap();
    let mut manifest = fs::read_to_string(sample.path("sample.toml")).unwrap();
    manifest.push_str("\n[[file]]\nkind = \"vscode-extension\"\nname = \"acme.hello\"\nversion = \"1.0.0\"\nsource = \"file:./content/acme.hello-1.0.0.vsix\"\n");
    fs::write(sample.path("sample.toml"), manifest).unwrap();
    let bundle = sample.create("sample", &[]);
    fs::create_dir_all(root.join("sample")).unwrap();
    fs::copy(sample.path("key.pub"), root.join("sample/key.pub")).unwrap();
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(root.join("data")));

    // The control plane: users in every role, a project, a runner, two secrets.
    let data = root.join("data");
    let token = init_control_plane(&data, &root.join("kek"));
    let cp = ControlPlane::start(&data, &root.join("kek"));
    let json_of = |args: &[&str], stdin: Option<&str>| -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_slice(&cp.admin(&token, &all, stdin).stdout).unwrap()
    };
    for (email, role) in [("ops@acme.internal", "admin"), ("dev@acme.internal", "member"), ("dev2@acme.internal", "member"), ("audit@acme.internal", "auditor")] {
        cp.admin(&token, &["users", "create", "--email", email, "--role", role, "--password-stdin"], Some("correct horse battery\n"));
    }
    let class = json_of(&["classes", "create", "--name", "small", "--cpu-millis", "2000", "--memory-mib", "4096", "--disk-gib", "20", "--pids", "1024"], None);
    let project = json_of(
        &[
            "projects", "create", "--name", "backend", "--repository-url", "https://git.acme.internal/backend.git", "--image",
            "127.0.0.1:5000/devcontainers/base:tiny", "--class-id", class["id"].as_str().unwrap(),
        ],
        None,
    );
    cp.admin(&token, &["runners", "create", "--name", "rack-1", "--capacity", "4"], None);
    cp.admin(&token, &["secrets", "create", "--name", "db", "--project-id", project["id"].as_str().unwrap()], Some("hunter2-value\n"));
    let org_secret = json_of(&["secrets", "create", "--name", "registry-token"], Some("s3cret\n"));
    let kek_id = org_secret["kek_id"].as_str().expect("secrets carry their KEK id").to_string();
    drop(cp);

    ok(airlock().arg("keygen").arg("--out").arg(root.join("site")));
    let site = Site { package: root.join("package"), root, kek_id };
    site.write_config(&site.config(), &["git.acme.internal", "10.20.0.0/24"]);
    // Serving with the site configuration pins its trust anchor into the mirror.
    drop(common::MirrorServer::start(&site.path("data"), &["--config", site.config().to_str().unwrap()]));
    ok(docs(&site.package).arg("--config").arg(site.config()));
    site
}

/// Every file of a package, by relative path.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().display().to_string(), fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn component<'a>(doc: &'a Value, key: &str) -> &'a Value {
    doc["component-definition"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"] == format!("airlock {key}"))
        .unwrap_or_else(|| panic!("no component {key}"))
}

fn statement<'a>(doc: &'a Value, key: &str, control: &str) -> &'a str {
    component(doc, key)["control-implementations"][0]["implemented-requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["control-id"] == control)
        .unwrap_or_else(|| panic!("{key} has no {control}"))["description"]
        .as_str()
        .unwrap()
}

#[test]
fn the_package_of_a_live_site_is_valid_signed_and_states_the_live_facts() {
    let site = site();
    let pkg = &site.package;

    // Independent validators accept every document.
    let (valid, report) = validate(&[pkg]);
    assert!(valid, "{report}");
    for expected in ["ok oscal", "component-definition.json", "ssp-draft.json", "ok cyclonedx", "ok spdx"] {
        assert!(report.contains(expected), "{expected} not validated:\n{report}");
    }

    // The stock tools check the signature and every file.
    ok(Command::new("minisign").args(["-Vm", "MANIFEST.sha256", "-p"]).arg(site.path("site.pub")).current_dir(pkg));
    let checked = stdout(&ok(Command::new("sha256sum").args(["-c", "MANIFEST.sha256"]).current_dir(pkg)));
    let listed = fs::read_to_string(pkg.join("MANIFEST.sha256")).unwrap();
    assert_eq!(checked.lines().count(), listed.lines().count());
    assert_eq!(listed.lines().count(), files(pkg).len() - 2, "every file but the manifest and its signature is listed");

    // Statements carry the live configuration and state.
    let cd = json_file(&pkg.join("oscal/component-definition.json"));
    let sc28 = statement(&cd, "control plane", "sc-28");
    assert!(sc28.contains(&site.kek_id) && sc28.contains("2 secrets under"), "{sc28}");
    let sc7 = statement(&cd, "runner", "sc-7");
    assert!(sc7.contains("10.20.0.0/24, git.acme.internal") && sc7.contains("127.0.0.1:2222"), "{sc7}");
    assert!(statement(&cd, "mirror", "sc-7").contains("127.0.0.1:5000"));
    let key_id = fs::read_to_string(site.path("sample/key.pub")).unwrap().lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let cm14 = statement(&cd, "mirror", "cm-14");
    assert!(cm14.contains(&format!("at least 1 of the 1 distinct keys {key_id} named by mirror.trusted_keys")), "{cm14}");
    let ac2 = statement(&cd, "control plane", "ac-2");
    assert!(ac2.contains("1 owner, 1 admin, 2 members and 1 auditor") && ac2.contains("rack-1 (capacity 4"), "{ac2}");
    assert!(statement(&cd, "control plane", "sc-8").contains("TLS is not configured"), "honest about TLS");
    assert!(statement(&cd, "control plane", "sc-13").contains("none of these libraries is a FIPS 140-3 validated module"));

    // The SSP: roles from RBAC, the accounts holding them, inventory from the bundle.
    let ssp = &json_file(&pkg.join("oscal/ssp-draft.json"))["system-security-plan"];
    let roles: Vec<&str> = ssp["metadata"]["roles"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(roles, ["owner", "admin", "member", "auditor", "runner"]);
    let members = ssp["metadata"]["responsible-parties"].as_array().unwrap().iter().find(|r| r["role-id"] == "member").unwrap();
    assert_eq!(members["party-uuids"].as_array().unwrap().len(), 2);
    let inventory = ssp["system-implementation"]["inventory-items"].as_array().unwrap();
    assert_eq!(inventory.len(), 3, "image, release file and extension");
    assert!(ssp["system-implementation"]["components"].as_array().unwrap().iter().any(|c| c["type"] == "this-system"));

    // SBOMs: one pair per imported bundle, image/extension package URLs, sha256 throughout.
    let history = json_file(&pkg.join("evidence/bundle-imports.json"));
    let bundle_id = history["records"][0]["bundle_id"].as_str().unwrap();
    assert_eq!(history["records"][0]["signers"][0]["key_id"], key_id.as_str());
    let cdx = json_file(&pkg.join(format!("sbom/{bundle_id}.cdx.json")));
    assert_eq!((cdx["bomFormat"].as_str(), cdx["specVersion"].as_str()), (Some("CycloneDX"), Some("1.6")));
    let comps = cdx["components"].as_array().unwrap();
    let image = comps.iter().find(|c| c["type"] == "container").unwrap();
    assert!(image["purl"].as_str().unwrap().starts_with("pkg:oci/base@sha256%3A"), "{}", image["purl"]);
    assert_eq!(image["hashes"][0]["alg"], "SHA-256");
    let extension = comps.iter().find(|c| c["purl"].as_str().is_some_and(|p| p.starts_with("pkg:vscode-extension/"))).unwrap();
    assert_eq!(extension["purl"], "pkg:vscode-extension/acme/hello@1.0.0");
    assert!(comps.iter().any(|c| c["type"] == "application" && c["name"] == "airlock-cli"));
    let crypto: Vec<&str> = comps.iter().filter(|c| c["type"] == "cryptographic-asset").map(|c| c["name"].as_str().unwrap()).collect();
    for name in ["Ed25519", "BLAKE2b-512", "SHA-256", "AES-256-GCM", "Argon2id"] {
        assert!(crypto.contains(&name), "{name} in {crypto:?}");
    }
    let spdx = json_file(&pkg.join(format!("sbom/{bundle_id}.spdx.json")));
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert!(spdx["packages"].as_array().unwrap().iter().skip(1).all(|p| p["checksums"][0]["algorithm"] == "SHA256"));

    // Tables: versions from the lockfile, every listener, every audit action seen.
    let lock = fs::read_to_string(Path::new(ROOT).join("Cargo.lock")).unwrap();
    let crypto_csv = fs::read_to_string(pkg.join("tables/crypto-inventory.csv")).unwrap();
    let aes = lock.split("[[package]]").find(|p| p.contains("name = \"aes-gcm\"\nversion = \"0.10")).unwrap();
    let aes_version = aes.lines().find_map(|l| l.strip_prefix("version = \"")).unwrap().trim_end_matches('"');
    assert!(crypto_csv.contains(&format!("aes-gcm {aes_version}")), "{crypto_csv}");
    let ports = fs::read_to_string(pkg.join("tables/ports-protocols-services.csv")).unwrap();
    for expected in ["127.0.0.1:5000", "127.0.0.1:8443", "127.0.0.1:2222", "admin.sock", "git.acme.internal", "removable media"] {
        assert!(ports.contains(expected), "{expected} in\n{ports}");
    }
    let events = fs::read_to_string(pkg.join("tables/audit-events.csv")).unwrap();
    assert!(events.lines().any(|l| l.starts_with("control plane audit log,user.create,") && l.ends_with(",4 success")), "{events}");
    assert!(fs::read_to_string(pkg.join("tables/audit-events.md")).unwrap().starts_with("# Audit event catalog"));

    // Evidence: the head is the one `airlock admin audit verify` reports; the baseline hash
    // covers the baseline file byte for byte.
    let verify: Value = {
        let _data = SITE_DATA.lock().unwrap_or_else(|p| p.into_inner());
        let out = ok(airlock().args(["admin", "audit", "verify", "--output", "json", "--data-dir"]).arg(site.path("data")));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let evidence = json_file(&pkg.join("evidence/audit-chain-verification.json"));
    assert_eq!(evidence["status"], "verified");
    assert_eq!(evidence["head"], verify["head"]);
    ok(Command::new("sha256sum").args(["-c", "configuration-baseline.sha256"]).current_dir(pkg.join("evidence")));

    let readme = fs::read_to_string(pkg.join("README.md")).unwrap();
    assert!(readme.contains("## Authorization boundary") && readme.contains("minisign -Vm MANIFEST.sha256"), "{readme}");
    assert!(fs::read_to_string(pkg.join("diagrams/boundary.dot")).unwrap().starts_with("digraph airlock {"));
}

#[test]
fn every_control_id_is_a_real_sp800_53_rev5_id() {
    let nist = Path::new(ROOT).join("../shared/reference/nist");
    let catalog = json_file(&nist.join("NIST_SP-800-53_rev5_HIGH-baseline-resolved-profile_catalog-min.json"));
    fn ids(value: &Value, out: &mut Vec<String>) {
        for key in ["groups", "controls"] {
            for item in value[key].as_array().into_iter().flatten() {
                if let Some(id) = item["id"].as_str() {
                    out.push(id.to_string());
                }
                ids(item, out);
            }
        }
    }
    let mut high = Vec::new();
    ids(&catalog["catalog"], &mut high);
    let mut in_baselines = String::new();
    for level in ["LOW", "MODERATE", "HIGH"] {
        in_baselines.push_str(&fs::read_to_string(nist.join(format!("NIST_SP-800-53_rev5_{level}-baseline_profile.json"))).unwrap());
    }
    let pkg = &site().package;
    let cd = json_file(&pkg.join("oscal/component-definition.json"));
    let ssp = json_file(&pkg.join("oscal/ssp-draft.json"));
    let mut used: Vec<String> = Vec::new();
    for c in cd["component-definition"]["components"].as_array().unwrap() {
        for r in c["control-implementations"][0]["implemented-requirements"].as_array().unwrap() {
            used.push(r["control-id"].as_str().unwrap().to_string());
        }
    }
    for r in ssp["system-security-plan"]["control-implementation"]["implemented-requirements"].as_array().unwrap() {
        used.push(r["control-id"].as_str().unwrap().to_string());
    }
    for id in &used {
        if !high.contains(id) {
            // Outside the HIGH catalog: must be one of the rev5 controls no baseline selects.
            assert!(["cm-14", "sr-4"].contains(&id.as_str()), "{id} is not an SP 800-53 rev5 control id");
            assert!(!in_baselines.contains(&format!("\"{id}\"")), "{id} is in a baseline profile but not in the HIGH catalog");
        }
    }
    for id in REQUIRED {
        assert!(used.iter().any(|u| u == id), "{id} is not implemented anywhere");
    }
}

#[test]
fn the_same_state_gives_the_same_files_and_a_changed_configuration_changes_the_statements() {
    let site = site();
    let _data = SITE_DATA.lock().unwrap_or_else(|p| p.into_inner());
    let again = site.path("package-again");
    ok(docs(&again).arg("--config").arg(site.config()));
    let first = files(&site.package);
    let second = files(&again);
    assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>());
    for (path, bytes) in &first {
        assert!(bytes == &second[path], "{path} differs between two runs on the same state");
    }

    let changed_config = site.path("changed.toml");
    site.write_config(&changed_config, &["git.acme.internal", "nexus.acme.internal"]);
    let changed = site.path("package-changed");
    ok(docs(&changed).arg("--config").arg(&changed_config));
    let before = json_file(&site.package.join("oscal/component-definition.json"));
    let after = json_file(&changed.join("oscal/component-definition.json"));
    let (sc7_before, sc7_after) = (statement(&before, "runner", "sc-7"), statement(&after, "runner", "sc-7"));
    assert_ne!(sc7_before, sc7_after);
    assert!(sc7_after.contains("nexus.acme.internal") && !sc7_after.contains("10.20.0.0/24"), "{sc7_after}");
    assert_eq!(statement(&before, "control plane", "sc-28"), statement(&after, "control plane", "sc-28"), "unrelated statements stay");

    // Per-subject UUIDs stay; the document's own UUID follows its content.
    let uuids = |doc: &Value| -> Vec<String> {
        let mut out = Vec::new();
        for c in doc["component-definition"]["components"].as_array().unwrap() {
            out.push(c["uuid"].as_str().unwrap().to_string());
            for r in c["control-implementations"][0]["implemented-requirements"].as_array().unwrap() {
                out.push(r["uuid"].as_str().unwrap().to_string());
            }
        }
        out
    };
    assert_eq!(uuids(&before), uuids(&after));
    assert_ne!(before["component-definition"]["uuid"], after["component-definition"]["uuid"]);
    let bundle_sbom = |dir: &Path| files(dir).into_iter().filter(|(p, _)| p.starts_with("sbom/")).collect::<Vec<_>>();
    assert_eq!(bundle_sbom(&site.package), bundle_sbom(&changed), "SBOMs do not depend on egress");

    // A later run replaces the package as a whole; a folder that is not a package is refused.
    ok(docs(&changed).arg("--config").arg(site.config()));
    assert_eq!(files(&changed), first);
    let foreign = site.path("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let refused = fails(docs(&foreign).arg("--config").arg(site.config()));
    assert!(refused.contains("not an accreditation package"), "{refused}");
    assert_eq!(fs::read_to_string(foreign.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn the_validators_reject_a_broken_uuid_a_missing_description_and_a_wrong_hash_algorithm() {
    let site = site();
    let broken = site.path("broken");
    fs::create_dir_all(&broken).unwrap();
    let pkg = &site.package;
    let write = |name: &str, value: &Value| -> PathBuf {
        let path = broken.join(name);
        fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    };

    let mut cd = json_file(&pkg.join("oscal/component-definition.json"));
    cd["component-definition"]["components"][0]["uuid"] = json!("not-a-uuid-0000");
    let bad_uuid = write("bad-uuid.json", &cd);

    let mut ssp = json_file(&pkg.join("oscal/ssp-draft.json"));
    let by_component = &mut ssp["system-security-plan"]["control-implementation"]["implemented-requirements"][0]["by-components"][0];
    by_component.as_object_mut().unwrap().remove("description").expect("has a description");
    let no_description = write("no-description.json", &ssp);

    let cdx_path = fs::read_dir(pkg.join("sbom")).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(".cdx.json")).unwrap();
    let mut cdx = json_file(&cdx_path);
    let hashed = cdx["components"].as_array_mut().unwrap().iter_mut().find(|c| c.get("hashes").is_some()).unwrap();
    hashed["hashes"][0]["alg"] = json!("SHA256X");
    let bad_alg = write("bad-alg.cdx.json", &cdx);

    let spdx_path = PathBuf::from(cdx_path.to_string_lossy().replace(".cdx.json", ".spdx.json"));
    let mut spdx = json_file(&spdx_path);
    spdx["packages"][1]["checksums"][0]["algorithm"] = json!("SHA256X");
    let bad_spdx = write("bad-alg.spdx.json", &spdx);

    for (kind, file, why) in [
        ("oscal", &bad_uuid, "a broken UUID"),
        ("oscal", &no_description, "a missing description"),
        ("cyclonedx", &bad_alg, "hash algorithm SHA256X"),
        ("spdx", &bad_spdx, "checksum algorithm SHA256X"),
    ] {
        let (valid, report) = validate_one(kind, file);
        assert!(!valid, "{kind} validator accepted {why}:\n{report}");
        assert!(report.contains(&format!("invalid {kind}")), "{report}");
    }
}

#[test]
fn without_a_key_or_any_state_the_package_says_what_it_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("package");
    let run = ok(docs(&out)
        .arg("--data-dir")
        .arg(tmp.path().join("empty"))
        .env_remove("AIRLOCK_SITE_SIGNING_KEY")
        .env("SOURCE_DATE_EPOCH", "1893456000"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("MANIFEST.sha256 is not signed"), "{stderr}");
    assert!(stderr.contains("mirror: no mirror data") && stderr.contains("control plane: no control plane database"), "{stderr}");
    assert!(!out.join("MANIFEST.sha256.minisig").exists());
    ok(Command::new("sha256sum").args(["-c", "MANIFEST.sha256"]).current_dir(&out));
    let readme = fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("**`MANIFEST.sha256` is not signed**"), "{readme}");
    assert!(readme.contains("- Mirror: **absent**") && readme.contains("- Control plane: **absent**"), "{readme}");
    assert!(!tmp.path().join("empty").exists(), "reading state created nothing");
    assert_eq!(fs::read_dir(out.join("sbom")).map(|d| d.count()).unwrap_or(0), 0, "no bundle, no SBOM");
    let (valid, report) = validate(&[&out]);
    assert!(valid, "{report}");
    let evidence = json_file(&out.join("evidence/audit-chain-verification.json"));
    assert_eq!(evidence["status"], "absent");
    // With no recorded state change, SOURCE_DATE_EPOCH gives the documents their time.
    let cd = json_file(&out.join("oscal/component-definition.json"));
    assert_eq!(cd["component-definition"]["metadata"]["last-modified"], "2030-01-01T00:00:00Z");
}

#[test]
fn a_running_mirror_is_read_through_its_socket_and_a_running_control_plane_is_named() {
    let site = site();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();

    // A copy of the site's mirror, served: read through its admin socket, the same artifacts.
    {
        let _data = SITE_DATA.lock().unwrap_or_else(|p| p.into_inner());
        ok(Command::new("cp").arg("-a").arg(site.path("data/mirror")).arg(data.join("mirror")));
    }
    let mirror = mirror_support::Server::start(&data, &[]);
    let out = tmp.path().join("package");
    ok(docs(&out).arg("--data-dir").arg(&data));
    drop(mirror);
    let imports = json_file(&out.join("evidence/bundle-imports.json"));
    assert_eq!(imports["read_through"], "the running mirror's admin socket");
    let sbom = |dir: &Path| -> Value {
        let path = fs::read_dir(dir.join("sbom")).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(".cdx.json")).unwrap();
        json_file(&path)["components"].clone()
    };
    assert_eq!(sbom(&out), sbom(&site.package));

    // A control plane holding its database: a clear error naming it, then success once stopped.
    init_control_plane(&data, &tmp.path().join("kek"));
    let cp = ControlPlane::start(&data, &tmp.path().join("kek"));
    let refused = fails(docs(&out).arg("--data-dir").arg(&data));
    assert!(refused.contains("in use by a running control plane") && refused.contains("stop it"), "{refused}");
    assert!(out.join("MANIFEST.sha256").exists(), "the previous package is left as it was");
    drop(cp);
    ok(docs(&out).arg("--data-dir").arg(&data));
    assert_eq!(json_file(&out.join("evidence/audit-chain-verification.json"))["status"], "verified");
}

/// The key id of a minisign public key file (the end of its comment line).
fn key_id(public: &Path) -> String {
    fs::read_to_string(public).unwrap().lines().next().unwrap().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn the_trust_statement_is_what_imports_enforce_with_the_site_anchor() {
    // Issue 14: mirror.trusted_keys/threshold are the trust anchor of every import, and the
    // package states exactly that rule, from the record the imports check.
    let sample = Sample::new();
    ok(airlock().arg("keygen").arg("--out").arg(sample.path("officer")));
    ok(airlock().arg("keygen").arg("--out").arg(sample.path("stranger")));
    let (release, officer) = (sample.path("key.pub"), sample.path("officer.pub"));
    let data = sample.path("data");
    let config = sample.path("airlock.toml");
    fs::write(
        &config,
        format!("data_dir = {:?}\n\n[mirror]\ntrusted_keys = [{:?}, {:?}]\nthreshold = 2\n", data.display().to_string(), release.display().to_string(), officer.display().to_string()),
    )
    .unwrap();
    let one = sample.create("one", &["--sequence", "5"]);
    let officer_key = sample.path("officer.key").display().to_string();
    let both = sample.create("both", &["--sequence", "6", "--key", &officer_key]);
    let older_one = sample.create("older-one", &["--sequence", "4", "--created", "2026-11-02T00:00:00Z"]);
    let older_both = sample.create("older-both", &["--sequence", "4", "--key", &officer_key]);
    let import = |bundle: &Path, keys: &[&Path], extra: &[&str]| {
        let mut cmd = airlock();
        cmd.args(["mirror", "import"]).arg(bundle).arg("--data-dir").arg(&data).args(extra);
        for key in keys {
            cmd.arg("--trusted-key").arg(key);
        }
        cmd
    };

    let server = common::MirrorServer::start(&data, &["--config", config.to_str().unwrap()]);
    // The importer's own key cannot replace the anchor, through the server's socket …
    let err = fails(&mut import(&one, &[&release], &[]));
    assert!(err.contains("mirror.trusted_keys and mirror.threshold in") && err.contains("1 of the required 2 trusted keys"), "{err}");
    ok(&mut import(&both, &[], &[]));
    // … an override needs the anchor's threshold too …
    let err = fails(&mut import(&older_one, &[&release], &["--allow-downgrade"]));
    assert!(err.contains("1 of the required 2"), "{err}");
    // … and command-line keys add a requirement of their own.
    let err = fails(&mut import(&older_both, &[&sample.path("stranger.pub")], &["--allow-downgrade"]));
    assert!(err.contains("--trusted-key and --threshold of this import: 0 of the required 1"), "{err}");
    ok(&mut import(&older_both, &[], &["--allow-downgrade"]));
    drop(server);
    // Without the server, and without the configuration, the pinned anchor still holds.
    let err = fails(&mut import(&one, &[&release], &[]));
    assert!(err.contains("1 of the required 2"), "{err}");

    let history: Value = serde_json::from_slice(&ok(airlock().args(["mirror", "history", "--output", "json", "--data-dir"]).arg(&data)).stdout).unwrap();
    let records = history.as_array().unwrap();
    assert_eq!((records[0]["action"].as_str(), records[0]["result"].as_str()), (Some("trust-anchor"), Some("pinned")));
    let overridden = records.iter().find(|r| r["result"] == "imported" && r["sequence"] == 4).unwrap();
    assert!(overridden["overrides"][0].as_str().unwrap().contains("downgrade from sequence 6 to 4"), "{overridden}");
    assert_eq!(overridden["signers"].as_array().unwrap().len(), 2, "{overridden}");

    // The statement names the rule the imports above followed.
    let out = sample.path("package");
    ok(docs(&out).arg("--config").arg(&config));
    let cd = json_file(&out.join("oscal/component-definition.json"));
    let mut ids = [key_id(&release), key_id(&officer)];
    ids.sort();
    let rule = format!("requires valid signatures from at least 2 of the 2 distinct keys {}, {} named by mirror.trusted_keys and mirror.threshold in {}", ids[0], ids[1], config.display());
    for control in ["cm-14", "sr-11"] {
        let text = statement(&cd, "mirror", control);
        assert!(text.contains(&rule), "{control}: {text}");
    }
    let status = |control: &str| {
        component(&cd, "mirror")["control-implementations"][0]["implemented-requirements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["control-id"] == control)
            .unwrap()["props"]
            .to_string()
    };
    assert!(status("cm-14").contains("implemented"), "{}", status("cm-14"));
}
