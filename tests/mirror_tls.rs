//! `mirror tls issue` and `mirror serve --tls-cert/--tls-key`: clients that trust only the
//! issued CA reach the mirror under the upstream names it answers as (curl with `--resolve`
//! standing in for split-horizon DNS) and under its own name (skopeo).

mod common;
mod mirror_support;

use std::fs;
use std::process::Command;

use common::*;
use mirror_support::*;
use serde_json::json;

const UPDATE_HOST: &str = "update.code.visualstudio.com";

fn issue(dir: &std::path::Path, names: &[&str]) -> String {
    let mut cmd = airlock();
    cmd.args(["mirror", "tls", "issue", "--out"]).arg(dir);
    for name in names {
        cmd.args(["--name", name]);
    }
    stdout(&ok(&mut cmd))
}

#[test]
fn update_api_over_tls_as_update_code_visualstudio_com() {
    let fixture = Fixture::build();
    let tls = fixture.dir.path().join("tls");
    let out = issue(&tls, &["localhost", "mirror.test"]);
    assert!(out.contains("created a new CA"), "{out}");
    for name in [UPDATE_HOST, "open-vsx.org", "data.services.jetbrains.com", "mcr.microsoft.com", "mirror.test"] {
        assert!(out.lines().any(|l| l.trim() == name), "{name} missing from\n{out}");
    }
    let (ca, cert, key) = (tls.join("ca.crt"), tls.join("server.crt"), tls.join("server.key"));
    let server = Server::start(&fixture.data, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let https = |host: &str, path: &str| format!("https://{host}:{}{path}", server.port);
    let trusted = |host: &str, path: &str| Curl::get(&https(host, path)).resolve(host, server.port).arg("--cacert").arg(ca.to_str().unwrap());

    let commits = trusted(UPDATE_HOST, "/api/commits/stable/server-linux-x64").send();
    assert_eq!(commits.status, 200, "{}", commits.text());
    assert_eq!(commits.json(), json!([COMMIT_NEW, COMMIT_OLD]));

    // Links say https and the host the client used; following one gets the bytes it names.
    let update = trusted(UPDATE_HOST, &format!("/api/update/server-linux-x64/stable/{COMMIT_OLD}")).send().json();
    let url = update["url"].as_str().unwrap();
    assert_eq!(url, https(UPDATE_HOST, &format!("/commit:{COMMIT_NEW}/server-linux-x64/stable")));
    let archive = Curl::get(url).resolve(UPDATE_HOST, server.port).arg("--cacert").arg(ca.to_str().unwrap()).send();
    assert_eq!(archive.status, 200);
    assert_eq!(sha256_hex(&archive.body), update["sha256hash"].as_str().unwrap());
    assert_eq!(archive.body, fixture.file("server-new-x64"));

    // Other mirrored hosts and the mirror's own names are in the same certificate.
    assert_eq!(trusted("mcr.microsoft.com", "/v2/").send().status, 200);
    assert_eq!(trusted("open-vsx.org", "/api/acme/hello").send().json()["version"], "1.1.0");
    assert_eq!(trusted("mirror.test", "/releases/stable/manifest.json").send().status, 200);
    // HTTP/2 (ALPN) works too: the authority stands in for Host.
    let h2 = trusted(UPDATE_HOST, "/api/latest/server-linux-x64/stable").arg("--http2").send();
    assert_eq!(h2.json()["url"].as_str().unwrap(), https(UPDATE_HOST, &format!("/commit:{COMMIT_NEW}/server-linux-x64/stable")));

    // Without the CA, or for a name the certificate does not carry, clients refuse.
    let (succeeded, stderr, _) = Curl::get(&https(UPDATE_HOST, "/api/commits/stable/server-linux-x64")).resolve(UPDATE_HOST, server.port).run();
    assert!(!succeeded, "an untrusted CA must be refused");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    let (succeeded, stderr, _) = trusted("example.org", "/v2/").run();
    assert!(!succeeded, "a name outside the certificate must be refused");
    assert!(stderr.contains("example.org") || stderr.to_lowercase().contains("certificate"), "{stderr}");

    // A real OCI client over TLS on the mirror's own name, trusting only the CA.
    let certs = fixture.dir.path().join("skopeo-certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let raw = ok(Command::new("skopeo").args(["inspect", "--raw", "--cert-dir"]).arg(&certs).arg(format!(
        "docker://localhost:{}/release-file/airlock-cli:0.2.0-linux-x64",
        server.port
    )));
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["layers"][0]["digest"], format!("sha256:{}", fixture.sha256("cli-0.2.0")));
}

#[test]
fn tls_issue_reuses_its_ca_and_serve_refuses_bad_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    issue(&tls, &["mirror.test"]);
    let ca = fs::read(tls.join("ca.crt")).unwrap();
    let first_server_cert = fs::read(tls.join("server.crt")).unwrap();
    let again = issue(&tls, &["mirror.test", "mirror2.test"]);
    assert!(again.contains("reused the CA"), "{again}");
    assert!(again.lines().any(|l| l.trim() == "mirror2.test"), "{again}");
    assert_eq!(fs::read(tls.join("ca.crt")).unwrap(), ca, "the CA clients trust stays the same");
    assert_ne!(fs::read(tls.join("server.crt")).unwrap(), first_server_cert);
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        assert_eq!(fs::metadata(tls.join(key)).unwrap().permissions().mode() & 0o777, 0o600, "{key}");
    }

    // The stock tool agrees the new certificate chains to the unchanged CA.
    let verified = ok(Command::new("openssl").arg("verify").arg("-CAfile").arg(tls.join("ca.crt")).arg(tls.join("server.crt")));
    assert!(stdout(&verified).contains("OK"));

    let bad_name = fails(airlock().args(["mirror", "tls", "issue", "--out"]).arg(&tls).args(["--name", "not a name"]));
    assert!(bad_name.contains("not a valid DNS name"), "{bad_name}");

    let data = dir.path().join("mirror");
    let missing = fails(airlock()
        .args(["mirror", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(dir.path().join("nope.crt"))
        .arg("--tls-key")
        .arg(tls.join("server.key")));
    assert!(missing.contains("nope.crt"), "{missing}");
    let wrong_key = fails(airlock()
        .args(["mirror", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(tls.join("server.crt"))
        .arg("--tls-key")
        .arg(tls.join("server.crt")));
    assert!(wrong_key.contains("server.crt"), "{wrong_key}");
    let half = fails(airlock().args(["mirror", "serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).arg("--tls-cert").arg(tls.join("server.crt")));
    assert!(half.contains("--tls-key"), "{half}");
}
