//! `airlock login` end to end: a standalone control plane with single sign-on from its
//! airlock.toml, node's certified `oidc-provider` as the site's identity provider, the CLI's
//! device sign-in approved in the provider's own pages, and the stored sign-in used by
//! `airlock admin`.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::time::Duration;

use airlock_testkit::oidc::{browser, walk, Idp};
use common::{airlock, ok, stdout};
use serde_json::json;

const CLIENT_SECRET: &str = "airlock-login-test-secret";

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn airlock_login_signs_in_through_the_provider_and_admin_uses_the_stored_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let users = d.join("users.json");
    std::fs::write(&users, json!({"dana": {"email": "dana@acme.internal", "name": "Dana", "groups": ["developers"], "amr": ["pwd"]}}).to_string()).unwrap();
    let clients = json!([{
        "client_id": "airlock",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": ["http://127.0.0.1:9/unused"],
        "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
        "response_types": ["code"],
    }]);
    let idp = Idp::start(0, "key-1", &users, &clients);

    // The control plane: initialised, then served with [sso] from its airlock.toml.
    ok(airlock().args(["control-plane", "gen-kek", "--out"]).arg(d.join("kek")));
    ok(airlock().args(["admin", "init", "--org", "acme", "--owner", "owner@acme.internal", "--data-dir"]).arg(d.join("site")));
    std::fs::write(d.join("client-secret"), CLIENT_SECRET).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    std::fs::write(
        d.join("airlock.toml"),
        format!(
            "[control_plane]\npublic_url = \"{url}\"\n\n[sso]\nlocal_passwords = false\n\n[[sso.providers]]\nid = \"acme\"\n\
             issuer = \"{}\"\nclient_id = \"airlock\"\nclient_secret_file = \"{}\"\n\n\
             [[sso.providers.mappings]]\ngroup = \"developers\"\norg = \"acme\"\nrole = \"member\"\n",
            idp.issuer,
            d.join("client-secret").display()
        ),
    )
    .unwrap();
    let mut serve = airlock()
        .args(["control-plane", "serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(d.join("site"))
        .arg("--kek-file")
        .arg(d.join("kek"))
        .arg("--config")
        .arg(d.join("airlock.toml"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(d.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}{}", std::fs::read_to_string(d.join("serve.log")).unwrap_or_default());
    let _serve = Killed(serve);

    // `airlock login` says where to approve; the user approves in the provider's pages.
    let credentials = d.join("config/credentials.json");
    let mut login = airlock()
        .args(["login", "--url", &url, "--credentials"])
        .arg(&credentials)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(login.stderr.take().unwrap());
    let mut first = String::new();
    said.read_line(&mut first).unwrap();
    let link = first.trim().strip_prefix("Open ").unwrap_or_else(|| panic!("no link to open: {first:?}")).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_, status, page, _) = runtime.block_on(walk(&browser(), &link, "dana"));
    assert_eq!(status, 200, "{page}");
    let done = airlock_testkit::wait_for("airlock login to finish", Duration::from_secs(60), || login.try_wait().unwrap().ok_or("still polling"));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut said, &mut rest).unwrap();
    assert!(done.success(), "{first}{rest}");
    assert!(rest.contains("signed in as dana@acme.internal (member)"), "{rest}");
    let mode = std::fs::metadata(&credentials).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the stored sign-in is readable by its owner only");

    // `airlock admin` uses it, with no token given; the user was created at sign-in.
    let whoami = stdout(&ok(airlock()
        .args(["admin", "whoami"])
        .env_remove("AIRLOCK_TOKEN")
        .env("AIRLOCK_URL", &url)
        .env("AIRLOCK_CREDENTIALS", &credentials)));
    assert!(whoami.contains("dana@acme.internal"), "{whoami}");
    drop(idp);
}
