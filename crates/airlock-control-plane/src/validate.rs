//! Input checks. Each returns a message that says what is wrong and what is accepted; the
//! API adds the field name.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::model::{Delivery, Resources, Task};

pub type Check = Result<(), String>;

/// Names of projects, classes, runners, environments, tasks and secrets.
pub fn name(value: &str) -> Check {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(()).ok_or_else(|| {
        format!("`{value}` is not a valid name: use 1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit")
    })
}

pub fn display_name(value: &str) -> Check {
    if value.trim().is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control)
    {
        return Err("must be 1-200 printable characters".into());
    }
    Ok(())
}

pub fn email(value: &str) -> Check {
    let mut parts = value.split('@');
    let (local, domain) = (parts.next().unwrap_or(""), parts.next());
    let ok = value.len() <= 254
        && !local.is_empty()
        && domain.is_some_and(|d| !d.is_empty() && !d.starts_with('.') && !d.ends_with('.'))
        && parts.next().is_none()
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(())
        .ok_or_else(|| format!("`{value}` is not an email address like dev@example.internal"))
}

/// A git repository URL on the internal network: https, http, ssh or git URLs, or
/// scp-style `git@host:path`.
pub fn repository_url(value: &str) -> Check {
    // A project may start from an empty workspace.
    if value.is_empty() {
        return Ok(());
    }
    let schemes = ["https://", "http://", "ssh://", "git://"];
    let scp_like = value.split_once(':').is_some_and(|(host, path)| {
        host.contains('@') && !host.contains('/') && !path.is_empty() && !path.starts_with("//")
    });
    let with_scheme = schemes
        .iter()
        .any(|s| value.len() > s.len() + 1 && value.starts_with(s));
    let ok = value.len() <= 2048
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && (with_scheme || scp_like);
    ok.then_some(()).ok_or_else(|| {
        format!("`{value}` is not a git repository URL: use https://host/path.git, ssh://git@host/path.git or git@host:path.git")
    })
}

/// An OCI image reference that names its registry: `mirror.internal:5000/team/image:tag`
/// or `...@sha256:<64 hex>`.
pub fn image_reference(value: &str) -> Check {
    let err = || {
        format!(
            "`{value}` is not an image reference on a registry: use REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST], \
             e.g. mirror.internal:5000/devcontainers/base:1.0"
        )
    };
    if value.len() > 1024 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err());
    }
    let (name_tag, digest) = match value.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (value, None),
    };
    if let Some(d) = digest {
        let hex_ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !hex_ok {
            return Err(err());
        }
    }
    let (registry, rest) = name_tag.split_once('/').ok_or_else(err)?;
    if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
        return Err(err());
    }
    let (repository, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (rest, None),
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    (repository.split('/').all(component_ok) && tag_ok)
        .then_some(())
        .ok_or_else(err)
}

pub fn tasks(tasks: &[Task]) -> Check {
    if tasks.len() > 50 {
        return Err("at most 50 tasks".into());
    }
    for (i, t) in tasks.iter().enumerate() {
        name(&t.name).map_err(|e| format!("task {i}: {e}"))?;
        if t.command.trim().is_empty() || t.command.len() > 8192 {
            return Err(format!(
                "task {i} (`{}`): command must be 1-8192 bytes",
                t.name
            ));
        }
    }
    Ok(())
}

pub fn resources(r: &Resources) -> Check {
    let within = |what: &str, v: u32, lo: u32, hi: u32| {
        (lo..=hi)
            .contains(&v)
            .then_some(())
            .ok_or_else(|| format!("{what} is {v}; use {lo} to {hi}"))
    };
    within("cpu_millis", r.cpu_millis, 100, 256_000)?;
    within("memory_mib", r.memory_mib, 128, 4_194_304)?;
    within("disk_gib", r.disk_gib, 1, 65_536)?;
    within("pids", r.pids, 32, 4_194_304)
}

pub fn delivery(d: &Delivery) -> Check {
    match d {
        Delivery::File { path } => {
            let ok = path.starts_with('/')
                && path.len() <= 1024
                && !path.ends_with('/')
                && !path.split('/').any(|c| c == ".." || c == ".")
                && !path.chars().any(char::is_control);
            ok.then_some(()).ok_or_else(|| {
                format!("file path `{path}` must be absolute, name a file, and contain no `.`/`..` parts, e.g. /run/secrets/db-password")
            })
        }
        Delivery::Env { name } => {
            let ok = name.len() <= 128
                && name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            ok.then_some(()).ok_or_else(|| {
                format!("`{name}` is not an environment variable name: use letters, digits and `_`, not starting with a digit")
            })
        }
        Delivery::GitHttps { host, username } => {
            git_host(host)?;
            let ok = !username.is_empty() && username.len() <= 256 && !username.chars().any(char::is_control);
            ok.then_some(()).ok_or_else(|| {
                "the git username must be 1 to 256 characters without control characters".to_string()
            })
        }
        Delivery::GitSsh { host, known_hosts } => {
            git_host(host)?;
            let lines: Vec<&str> = known_hosts.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
            if lines.is_empty() || known_hosts.len() > 16 * 1024 {
                return Err(format!(
                    "known_hosts must hold the git server's host key line(s) (as `ssh-keyscan {host}` prints them, checked by you), at most 16 KiB"
                ));
            }
            for line in lines {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let key = fields.get(1..).map(|k| k.join(" ")).unwrap_or_default();
                if fields.len() < 3 || ssh_public_key(&key).is_err() {
                    return Err(format!("known_hosts line `{line}` is not `HOST KEYTYPE BASE64` (the format of ~/.ssh/known_hosts)"));
                }
            }
            Ok(())
        }
    }
}

/// A git server's host name, with an optional port: what git's credential protocol calls
/// `host`, and what ssh connects to.
fn git_host(host: &str) -> Check {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['-', '.']);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    (name_ok && port_ok).then_some(()).ok_or_else(|| {
        format!("git host `{host}` must be a host name with an optional port, e.g. git.site.internal or git.site.internal:8443")
    })
}

/// The value a git delivery carries: a token git sends in a credential line, or an OpenSSH
/// private key the runner's agent signs with.
pub fn git_secret_value(delivery: &Delivery, value: &str) -> Check {
    match delivery {
        Delivery::GitHttps { .. } if value.contains(['\n', '\0']) => {
            Err("a git token must be one line (git's credential protocol carries it on one line)".into())
        }
        Delivery::GitSsh { .. } if !value.trim_start().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") => Err(
            "the SSH key must be an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`, as `ssh-keygen -t ed25519` writes it), without a passphrase".into(),
        ),
        _ => Ok(()),
    }
}

pub const MAX_SECRET_BYTES: usize = 64 * 1024;

pub fn secret_value(value: &str) -> Check {
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "value must be 1 to {MAX_SECRET_BYTES} bytes; it is {}",
            value.len()
        ));
    }
    Ok(())
}

const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Parses an OpenSSH public key line; returns the normalized `type base64` form (comment
/// dropped) and its `SHA256:` fingerprint.
pub fn ssh_public_key(line: &str) -> Result<(String, String), String> {
    let err = |why: &str| {
        format!(
            "not an OpenSSH public key ({why}); paste the one line of your ~/.ssh/id_ed25519.pub"
        )
    };
    let mut parts = line.split_whitespace();
    let (kind, body) = (
        parts.next().unwrap_or(""),
        parts
            .next()
            .ok_or_else(|| err("expected `TYPE BASE64 [COMMENT]`"))?,
    );
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(err(&format!("unsupported key type `{kind}`")));
    }
    let blob = STANDARD
        .decode(body)
        .map_err(|_| err("the key body is not base64"))?;
    let embedded = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| blob.get(4..4 + len));
    if embedded != Some(kind.as_bytes()) {
        return Err(err("the key body does not match its type"));
    }
    let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob)));
    Ok((format!("{kind} {body}"), fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert!(image_reference("mirror.internal:5000/devcontainers/base:1.0").is_ok());
        assert!(image_reference(&"localhost/x@sha256:".to_string().add64()).is_ok());
        assert!(image_reference("ubuntu:22.04").is_err(), "no registry");
        assert!(image_reference("mirror.internal/UPPER:1").is_err());
        assert!(image_reference("mirror.internal/x:").is_err());
    }

    trait Add64 {
        fn add64(self) -> String;
    }
    impl Add64 for String {
        fn add64(self) -> String {
            format!("{self}{}", "a".repeat(64))
        }
    }

    #[test]
    fn repository_urls() {
        assert!(repository_url("https://git.internal/team/app.git").is_ok());
        assert!(repository_url("git@git.internal:team/app.git").is_ok());
        assert!(repository_url("ftp://x/y").is_err());
        assert!(repository_url("https://").is_err());
        assert!(repository_url("").is_ok(), "no repository: an empty workspace");
    }

    #[test]
    fn ssh_keys_are_parsed_and_fingerprinted() {
        // ssh-keygen -t ed25519; fingerprint from `ssh-keygen -lf`.
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHLsNi6edQQ/hM0oqVME9cMFy8ucKYuiHhGjKDBsYmDK dev@laptop";
        let (normalized, fp) = ssh_public_key(line).unwrap();
        assert_eq!(
            normalized,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHLsNi6edQQ/hM0oqVME9cMFy8ucKYuiHhGjKDBsYmDK"
        );
        assert_eq!(fp, "SHA256:73C2gbyrFCFpIFi9M5Vr8wDEzSKyMTkePRwehuq2QdM");
        assert!(ssh_public_key(
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHLsNi6edQQ/hM0oqVME9cMFy8ucKYuiHhGjKDBsYmDK"
        )
        .is_err());
        assert!(ssh_public_key("hello").is_err());
    }

    #[test]
    fn secret_delivery() {
        assert!(delivery(&Delivery::File {
            path: "/run/secrets/db".into()
        })
        .is_ok());
        assert!(delivery(&Delivery::File {
            path: "run/secrets/db".into()
        })
        .is_err());
        assert!(delivery(&Delivery::File {
            path: "/run/../etc/passwd".into()
        })
        .is_err());
        assert!(delivery(&Delivery::Env {
            name: "DB_PASSWORD".into()
        })
        .is_ok());
        assert!(delivery(&Delivery::Env { name: "1X".into() }).is_err());
    }
}
