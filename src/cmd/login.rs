//! `airlock login`: sign in through the site's identity provider without copying tokens. The
//! CLI starts a device authorization grant at the control plane, the user approves it in a
//! browser (any device), and the short-lived session token and its refresh token are kept in
//! a file only the user can read. `airlock admin …` uses and refreshes them when no
//! AIRLOCK_TOKEN is given.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use airlock_api::{
    CliSession, DeviceLoginStart, DeviceLoginState, DeviceLoginStatus, SsoProviders,
};
use airlock_control_plane::client::{Client, Method};
use airlock_control_plane::time::Clock;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  airlock login --url https://cp.acme.internal:8443\n  \
    airlock admin environments list      # uses the stored sign-in, refreshed as needed\n\n\
    The provider must offer the device authorization grant (Keycloak, Entra ID and Okta do;\n\
    ADFS does not). The token file is written with mode 0600."
)]
pub struct Args {
    /// Control plane URL.
    #[arg(long, env = "AIRLOCK_URL", value_name = "URL")]
    url: String,
    /// Identity provider id (`GET /api/v1/auth/sso` lists them); needed when there are several.
    #[arg(long, value_name = "ID")]
    provider: Option<String>,
    /// PEM file with the CA certificate that signed the server's TLS certificate.
    #[arg(long, env = "AIRLOCK_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Where the sign-in is kept; default ~/.config/airlock/credentials.json.
    #[arg(long, env = "AIRLOCK_CREDENTIALS", value_name = "FILE")]
    credentials: Option<PathBuf>,
}

/// What `airlock login` stores.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stored {
    pub url: String,
    pub session: CliSession,
}

/// Where the sign-in is kept: AIRLOCK_CREDENTIALS when set (as `airlock login` takes it),
/// else `$XDG_CONFIG_HOME/airlock/credentials.json` (`~/.config/…`).
pub fn default_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("AIRLOCK_CREDENTIALS").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --credentials")?)
                .join(".config")
        }
    };
    Ok(base.join("airlock").join("credentials.json"))
}

/// Writes `stored` with mode 0600, through a temporary file and a rename, so a crash never
/// leaves half a file and the token is never readable by others, not even for a moment.
pub fn save(path: &Path, stored: &Stored) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("the credentials path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(stored)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The stored session for `url`, refreshed first when it ends within two minutes.
pub fn fresh_token(
    path: &Path,
    url: &str,
    ca_cert: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an airlock credentials file; run `airlock login` again",
            path.display()
        )
    })?;
    if stored.url.trim_end_matches('/') != url.trim_end_matches('/') {
        return Ok(None);
    }
    let now = Clock::system().now();
    if now.plus(Duration::from_secs(120)) < stored.session.expires_at {
        return Ok(Some(stored.session.token));
    }
    if now >= stored.session.refresh_expires_at {
        bail!(
            "your sign-in ended at {}; run `airlock login --url {url}` again",
            stored.session.refresh_expires_at
        );
    }
    let api = Client::new(url, None, ca_cert)?;
    let renewed = api
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            &[],
            Some(&json!({"refresh_token": stored.session.refresh_token})),
        )
        .context("refreshing the stored sign-in failed; run `airlock login` again")?;
    let session: CliSession = serde_json::from_value(renewed)?;
    let token = session.token.clone();
    save(
        path,
        &Stored {
            url: stored.url,
            session,
        },
    )?;
    Ok(Some(token))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let api = Client::new(&args.url, None, args.ca_cert.as_deref())?;
    let offered: SsoProviders =
        serde_json::from_value(api.call(Method::GET, "/api/v1/auth/sso", &[], None)?)?;
    let names = || {
        offered
            .providers
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let provider = match (&args.provider, offered.providers.as_slice()) {
        (Some(id), _) if offered.providers.iter().any(|p| &p.id == id) => id.clone(),
        (Some(id), _) => bail!("this control plane has no identity provider {id:?}; it has: {}", names()),
        (None, []) => bail!("this control plane has no single sign-on configured; use `airlock admin login` with a password"),
        (None, [only]) => only.id.clone(),
        (None, _) => bail!("several identity providers: pick one with --provider ({})", names()),
    };
    let started: DeviceLoginStart = serde_json::from_value(api.call(
        Method::POST,
        &format!("/api/v1/auth/sso/{provider}/device"),
        &[],
        None,
    )?)?;
    match &started.verification_uri_complete {
        Some(link) => eprintln!(
            "Open {link}\nin a browser and confirm the code {}",
            started.user_code
        ),
        None => eprintln!(
            "Open {} in a browser and enter the code {}",
            started.verification_uri, started.user_code
        ),
    }
    let mut interval = Duration::from_secs(started.interval_seconds.max(1));
    let session = loop {
        if Clock::system().now() >= started.expires_at {
            bail!("the code expired before the sign-in was approved; run `airlock login` again");
        }
        std::thread::sleep(interval);
        let state: DeviceLoginState = serde_json::from_value(api.call(
            Method::POST,
            "/api/v1/auth/sso/device/poll",
            &[],
            Some(&json!({"login_id": started.login_id})),
        )?)?;
        match (state.status, state.session) {
            (DeviceLoginStatus::Done, Some(session)) => break session,
            _ => interval = Duration::from_secs(state.interval_seconds.max(1)),
        }
    };
    let path = match args.credentials {
        Some(p) => p,
        None => default_path()?,
    };
    eprintln!(
        "signed in as {} ({}); token kept in {} until {}",
        session.user.email,
        session.user.role.as_str(),
        path.display(),
        session.refresh_expires_at
    );
    save(
        &path,
        &Stored {
            url: args.url,
            session,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_are_written_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/credentials.json");
        let session: CliSession = airlock_api::examples::Example::example();
        let far = Clock::system().now().plus(Duration::from_secs(3600));
        let stored = Stored {
            url: "http://127.0.0.1:1".into(),
            session: CliSession {
                expires_at: far,
                refresh_expires_at: far,
                ..session
            },
        };
        save(&path, &stored).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Still valid: returned as it is, without asking the server.
        let token = fresh_token(&path, "http://127.0.0.1:1/", None).unwrap();
        assert_eq!(token.as_deref(), Some(stored.session.token.as_str()));
        // Another server's sign-in is not used.
        assert_eq!(
            fresh_token(&path, "http://127.0.0.1:2", None).unwrap(),
            None
        );
    }
}
