//! A real OpenID Connect provider for SSO tests: node's certified `oidc-provider` (pinned and
//! installed into `.tools/node` by scripts/install-deps.sh), started by
//! `oidc-provider/provider.mjs` on 127.0.0.1; and a scripted browser that goes through its
//! login, consent and device-confirmation pages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// oidc-provider's entry module, or a panic saying how to install it.
pub fn provider_module() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/node/node_modules/oidc-provider/lib/index.js");
    assert!(path.exists(), "oidc-provider is not installed at {}; run scripts/install-deps.sh test", path.display());
    path
}

/// The identity provider process; killed when dropped.
pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Idp {
    /// Starts the provider on `port` (0: any) with signing key id `kid`, the users in the JSON
    /// file `users` (read at every sign-in) and the client metadata `clients`.
    pub fn start(port: u16, kid: &str, users: &Path, clients: &Value) -> Idp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider/provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("OIDC_PROVIDER_MODULE", provider_module())
            .env("PORT", port.to_string())
            .env("KEY_ID", kid)
            .env("USERS_FILE", users)
            .env("CLIENTS", clients.to_string())
            .env("NODE_ENV", "test")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (install nodejs: scripts/install-deps.sh)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps reading after the first line: a closed pipe would kill the provider (EPIPE).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the provider says where it listens within 30 s");
        let started: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("the provider's first line is its issuer, got {line:?}"));
        Idp { child, issuer: started["issuer"].as_str().unwrap().to_string() }
    }

    pub fn port(&self) -> u16 {
        self.issuer.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Ends the provider (and frees its port, e.g. to restart it with another key).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser: a cookie jar, redirects followed one hop at a time so each is seen.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].replace("&amp;", "&").replace("&#x2F;", "/").replace("&#47;", "/"))
}

/// The first form of a page: its action and its inputs' names and values.
fn first_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = start + html[start..].find("</form>")?;
    let form = &html[start..end];
    let action = attr(&form[..form.find('>')?], "action")?;
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(at) = rest.find("<input") {
        let tag_end = at + rest[at..].find('>').unwrap_or(rest.len() - at);
        let tag = &rest[at..tag_end];
        if let Some(name) = attr(tag, "name") {
            fields.push((name, attr(tag, "value").unwrap_or_default()));
        }
        rest = &rest[tag_end..];
    }
    Some((action, fields))
}

/// Follows redirects and fills in the provider's pages (login as `login`, consent, device
/// confirmation) until a page that is not one of them; returns its URL, status and body, and
/// every URL visited.
pub async fn walk(client: &reqwest::Client, start: &str, login: &str) -> (String, u16, String, Vec<String>) {
    let mut visited = vec![start.to_string()];
    let mut resp = client.get(start).send().await.unwrap();
    for _ in 0..30 {
        let url = resp.url().clone();
        if resp.status().is_redirection() {
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            let next = url.join(&location).unwrap();
            visited.push(next.to_string());
            resp = client.get(next).send().await.unwrap();
            continue;
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        let form = first_form(&body).filter(|_| status == 200 && body.contains("<form"));
        let Some((action, mut fields)) = form else {
            return (url.to_string(), status, body, visited);
        };
        for (name, value) in fields.iter_mut() {
            match name.as_str() {
                "login" => *value = login.to_string(),
                "password" => *value = "any password: the development login page accepts any".to_string(),
                _ => {}
            }
        }
        let target = url.join(&action).unwrap();
        visited.push(target.to_string());
        resp = client.post(target).form(&fields).send().await.unwrap();
    }
    panic!("more than 30 steps: {visited:?}");
}
