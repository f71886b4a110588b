//! Site backup and restore: a running site with environments, secrets and audit records is
//! backed up online, the file opens with the stock `age` tool and the identity, and restores
//! into an empty folder where everything reads back, secrets decrypt with the KEK and the
//! audit chain verifies. A tampered file, another signer or another backup key is refused
//! with a clear error and nothing written.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airlock_control_plane::client::{Client, Method};
use airlock_control_plane::model::SealedValue;
use airlock_control_plane::secrets::{Kek, Keyring};
use airlock_control_plane::store::Store;
use common::{airlock, fails, ok};
use serde_json::{json, Value};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

/// `airlock server` with only the control plane on `data`, and its URL.
fn control_plane(dir: &Path, data: &Path, kek: &Path) -> (Server, String) {
    let config = dir.join(format!(
        "airlock-{}.toml",
        data.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mirror]\nenabled = false\n[control_plane]\nlisten = \"127.0.0.1:0\"\nkek_files = [\"{}\"]\n[runner]\nenabled = false\n",
            data.display(),
            kek.display()
        ),
    )
    .unwrap();
    let mut child = airlock()
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("control plane listening on ") {
            url = u.to_string();
        }
        if line == "airlock server ready" {
            break;
        }
    }
    assert!(
        !url.is_empty(),
        "the control plane did not start on {}",
        data.display()
    );
    (server, url)
}

fn age_keygen(path: &Path) -> String {
    let out = Command::new("age-keygen").arg("-o").arg(path).output();
    let out = out.unwrap_or_else(|e| {
        panic!("age-keygen is missing ({e}): run scripts/install-deps.sh (Debian package `age`)")
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(public.stdout).unwrap().trim().to_string()
}

fn is_empty_or_missing(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

#[test]
fn a_running_site_is_backed_up_and_restored_into_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| -> PathBuf { dir.path().join(name) };
    let kek = at("kek");
    let (server, url) = control_plane(dir.path(), &at("site"), &kek);
    let token = std::fs::read_to_string(at("site/control-plane/owner-token"))
        .unwrap()
        .trim()
        .to_string();
    let api = Client::new(&url, Some(token.clone()), None).unwrap();
    let call = |m: Method, p: &str, b: Option<&Value>| {
        api.call(m, p, &[], b)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let class = call(
        Method::POST,
        "/api/v1/classes",
        Some(
            &json!({"name": "small", "resources": {"cpu_millis": 500, "memory_mib": 128, "disk_gib": 1, "pids": 64}}),
        ),
    );
    let project = call(
        Method::POST,
        "/api/v1/projects",
        Some(&json!({
            "name": "app", "repository_url": "", "image": "mirror.acme.internal/devcontainers/base:tiny", "class_id": class["id"],
        })),
    );
    let env = call(
        Method::POST,
        "/api/v1/environments",
        Some(&json!({"project_id": project["id"]})),
    );
    let canary = "s3cr3t-canary-value";
    let secret = call(
        Method::POST,
        "/api/v1/secrets",
        Some(&json!({"name": "api-key", "scope": {"kind": "org"}, "value": canary})),
    );

    // Keys: the site signing key, the backup key (age), and others an attacker or a mix-up brings.
    airlock_bundle::write_key_pair(&at("site"), None, false).unwrap();
    airlock_bundle::write_key_pair(&at("other"), None, false).unwrap();
    let recipient = age_keygen(&at("backup-identity.txt"));
    age_keygen(&at("other-identity.txt"));
    let backup = at("site.backup");
    ok(airlock()
        .args([
            "admin",
            "backup",
            "--url",
            &url,
            "--token",
            &token,
            "--recipient",
            &recipient,
        ])
        .arg("--out")
        .arg(&backup)
        .arg("--signing-key")
        .arg(at("site.key")));
    drop(server);

    // The stock age tool opens it with the identity; the KEK is not in it, the sealed secret is.
    let kek_bytes = std::fs::read(&kek).unwrap();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(at("backup-identity.txt"))
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plain["format"], "airlock-site-backup/1");
    let raw = std::fs::read(&backup).unwrap();
    for haystack in [&out.stdout, &raw] {
        assert!(
            !haystack
                .windows(canary.len())
                .any(|w| w == canary.as_bytes()),
            "the secret's value is in clear"
        );
        assert!(
            !haystack
                .windows(kek_bytes.len())
                .any(|w| w == kek_bytes.as_slice()),
            "the KEK is in the backup"
        );
    }

    let restore = |file: &Path, identity: &str, trusted: &str, data: &Path| {
        let mut cmd = airlock();
        cmd.args(["admin", "restore", "--in"])
            .arg(file)
            .arg("--identity")
            .arg(at(identity))
            .arg("--trusted-key")
            .arg(at(trusted))
            .arg("--data-dir")
            .arg(data);
        cmd
    };
    // Hostile and mistaken restores: refused, nothing written.
    let tampered = at("tampered.backup");
    let mut bytes = raw.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&tampered, &bytes).unwrap();
    std::fs::copy(at("site.backup.minisig"), at("tampered.backup.minisig")).unwrap();
    let refused = at("refused");
    let message = fails(&mut restore(
        &tampered,
        "backup-identity.txt",
        "site.pub",
        &refused,
    ));
    assert!(
        message.contains("signature does not verify") && message.contains("altered"),
        "{message}"
    );
    let message = fails(&mut restore(
        &backup,
        "backup-identity.txt",
        "other.pub",
        &refused,
    ));
    assert!(message.contains("signature does not verify"), "{message}");
    let message = fails(&mut restore(
        &backup,
        "other-identity.txt",
        "site.pub",
        &refused,
    ));
    assert!(
        message.contains("cannot decrypt") && message.contains("another backup key"),
        "{message}"
    );
    assert!(
        is_empty_or_missing(&refused),
        "a refused restore wrote into {}",
        refused.display()
    );

    // The real restore, into an empty folder.
    let restored = at("restored");
    ok(&mut restore(
        &backup,
        "backup-identity.txt",
        "site.pub",
        &restored,
    ));
    let message = fails(&mut restore(
        &backup,
        "backup-identity.txt",
        "site.pub",
        &restored,
    ));
    assert!(
        message.contains("not empty") && message.contains("fresh folder"),
        "{message}"
    );

    // Secrets decrypt with the site's KEK.
    let store = Store::open(&restored.join("control-plane")).unwrap();
    let sealed: SealedValue = store
        .get(&format!("sealed/{}", secret["id"].as_str().unwrap()))
        .unwrap()
        .expect("the sealed secret is restored");
    let keyring = Keyring::new(Kek::from_file(&kek).unwrap(), Vec::new());
    assert_eq!(
        keyring
            .open(secret["id"].as_str().unwrap(), &sealed)
            .unwrap(),
        canary.as_bytes()
    );
    store.close().unwrap();

    // The restored site serves what the old one had, and its audit chain verifies.
    let (server, url) = control_plane(dir.path(), &restored, &kek);
    let api = Client::new(&url, Some(token), None).unwrap();
    let call = |m: Method, p: &str| {
        api.call(m, p, &[], None)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let back = call(
        Method::GET,
        &format!("/api/v1/environments/{}", env["id"].as_str().unwrap()),
    );
    assert_eq!(back["project_id"], project["id"]);
    assert_eq!(
        call(
            Method::GET,
            &format!("/api/v1/secrets/{}", secret["id"].as_str().unwrap())
        )["name"],
        "api-key"
    );
    let report = call(Method::GET, "/api/v1/audit/verify");
    assert_eq!(report["ok"], true, "{report}");
    let records = call(Method::GET, "/api/v1/audit");
    let actions: Vec<&str> = records["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"site.backup") && actions.contains(&"environment.create"),
        "{actions:?}"
    );
    drop(server);
}
