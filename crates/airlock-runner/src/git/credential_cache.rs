//! The daemon side of git's `credential-cache` protocol (git's credential-cache.c and
//! credential-cache--daemon.c): the client connects, writes `action=ACTION`, `timeout=N` and the
//! credential git describes (`protocol=https`, `host=…`, …) as `key=value` lines, shuts down its
//! writing side, and copies whatever the daemon answers to git (`username=…`, `password=…`).
//! An empty answer means "nothing here": git then tries its next helper or fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::{CredentialSource, GitCredential};

/// A request is a handful of short lines; anything longer is not git.
const MAX_REQUEST: u64 = 64 * 1024;

pub(super) fn answer(conn: UnixStream, source: &CredentialSource, missed: &dyn Fn(&str)) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Request::default();
    for line in BufReader::new((&conn).take(MAX_REQUEST)).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        match key {
            "action" => request.action = value.to_string(),
            "protocol" => request.protocol = value.to_string(),
            "host" => request.host = value.to_string(),
            _ => {}
        }
    }
    // `store` and `erase` are ignored on purpose: the credential lives with the control plane,
    // and keeping what git hands back (or dropping it on git's say) would make this socket a
    // cache of secrets in the runner's memory that outlives a revocation.
    if request.action != "get" || request.host.is_empty() {
        return Ok(());
    }
    // Only over TLS: a token is never offered for plain http.
    if request.protocol != "https" {
        return Ok(());
    }
    let found = match source() {
        Ok(credentials) => credentials.into_iter().find_map(|c| match c {
            GitCredential::Https { host, username, token } if host.eq_ignore_ascii_case(&request.host) => Some((username, token)),
            _ => None,
        }),
        Err(e) => {
            tracing::warn!(host = request.host, error = %e, "cannot fetch git credentials");
            None
        }
    };
    match found {
        Some((username, token)) => {
            let mut conn = conn;
            conn.write_all(format!("username={username}\npassword={token}\n").as_bytes())?;
        }
        None => missed(&request.host),
    }
    Ok(())
}

#[derive(Default)]
struct Request {
    action: String,
    protocol: String,
    host: String,
}
