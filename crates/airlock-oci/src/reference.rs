//! Image references: `registry[:port]/repository[:tag][@sha256:hex]`.
//!
//! A runner on an air-gapped network has no default registry, so the registry part is
//! required (Docker's rule: the first component is a registry when it holds a `.` or a `:`
//! or is `localhost`).

use std::fmt;

use crate::error::EngineError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`; when set it is what gets pulled, the tag is informative.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference, EngineError> {
        let bad = |reason: &str| EngineError::InvalidReference { reference: reference.to_string(), reason: reason.to_string() };
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|r| bad(&r))?;
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("it must name a registry, e.g. `mirror.example:5000/devcontainers/base:1`"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad("the first component must be a registry host (with a `.` or a port, or `localhost`): there is no default registry here"));
        }
        if !registry.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
            return Err(bad("the registry host has characters a host name cannot have"));
        }
        // A `:` after the last `/` starts the tag.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        if let Some(tag) = &tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !tag.starts_with(['.', '-']);
            if !ok {
                return Err(bad("the tag must be 1-128 letters, digits, `_`, `.` or `-`"));
            }
        }
        let components_ok = repository.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        });
        if !components_ok {
            return Err(bad("repository path components must be lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry: registry.to_string(), repository: repository.to_string(), tag, digest })
    }

    /// What to put after `/manifests/`: the digest if there is one, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The same repository pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference { digest: Some(digest.to_string()), ..self.clone() }
    }

    /// The registry host without the port, for the allow list.
    pub fn host(&self) -> &str {
        host_of(&self.registry)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `host:port` → `host` (bracketed IPv6 kept whole).
pub fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.split_once(']').map(|(h, _)| &registry[..h.len() + 1]).unwrap_or(registry);
    }
    registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry)
}

/// Accepts only `sha256:<64 lowercase hex>`: the one algorithm airlock verifies.
pub fn check_digest(digest: &str) -> Result<&str, String> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| format!("digest `{digest}` is not sha256 (the only algorithm supported)"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest `{digest}` is not 64 lowercase hex digits"));
    }
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = Reference::parse("127.0.0.1:5000/devcontainers/base:tiny").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "devcontainers/base", Some("tiny")));
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.manifest_ref(), "tiny");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("mirror.example/repo@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.tag, None);
        assert_eq!(Reference::parse("localhost/x").unwrap().tag.as_deref(), Some("latest"));
        assert_eq!(Reference::parse("localhost:5000/a/b:1").unwrap().to_string(), "localhost:5000/a/b:1");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "ubuntu:22.04",
            "devcontainers/base",
            "reg.example/Repo:1",
            "reg.example/a//b",
            "reg.example/a/../b",
            "reg.example/a:bad tag",
            "reg.example/a@sha256:abc",
            "reg.example/a@md5:00",
            "reg.example/",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
