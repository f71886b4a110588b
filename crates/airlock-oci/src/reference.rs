//! Image references: `registry[:port]/repository[:tag][@sha256:hex]`, and the OCI grammar of
//! repository names and tags.
//!
//! airlock has no default registry (a runner on an air-gapped network has none to fall back
//! to, and the bundler must say where an image comes from), so the registry part is required
//! (Docker's rule: the first component is a registry when it holds a `.` or a `:` or is
//! `localhost`).

use std::fmt;

use crate::digest::Digest;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// When set it is what gets pulled; the tag is informative.
    pub digest: Option<Digest>,
}

/// Why a reference was refused: `reason` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{reference}`: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

/// A repository name outside the OCI grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid repository name (lowercase letters, digits and `._-`, components separated by `/`)")]
pub struct NameError {
    pub name: String,
}

impl Reference {
    /// Parses a reference with Docker's default: neither tag nor digest means `:latest`.
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_explicit(reference).map(|mut r| {
            if r.tag.is_none() && r.digest.is_none() {
                r.tag = Some("latest".to_string());
            }
            r
        })
    }

    /// Parses a reference as written, without defaults: with neither tag nor digest both
    /// stay `None` (for places where the tag must be spelled out).
    pub fn parse_explicit(reference: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason: &str| ReferenceError { reference: reference.to_string(), reason: reason.to_string() };
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest.parse::<Digest>().map_err(|_| {
                    bad(&format!("digest `{digest}` is not `sha256:` followed by 64 lowercase hex digits (the only algorithm supported)"))
                })?;
                (rest, Some(digest))
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
        if tag.as_deref().is_some_and(|tag| !is_valid_tag(tag)) {
            return Err(bad("the tag must be 1-128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"));
        }
        if validate_repository(repository).is_err() {
            return Err(bad("repository path components must be lowercase letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit"));
        }
        Ok(Reference { registry: registry.to_string(), repository: repository.to_string(), tag, digest })
    }

    /// What to put after `/manifests/`: the digest if there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// The registry host without the port, for allow lists.
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

/// OCI repository grammar: lowercase path components separated by `/`.
pub fn validate_repository(name: &str) -> Result<(), NameError> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
            && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
            && b.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(x))
    };
    if name.len() > 255 || !name.split('/').all(component_ok) {
        return Err(NameError { name: name.to_string() });
    }
    Ok(())
}

/// OCI tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
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
    fn explicit_references_keep_a_missing_tag_missing() {
        let r = Reference::parse_explicit("localhost/x").unwrap();
        assert_eq!((r.tag, r.digest), (None, None));
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

    #[test]
    fn repository_names_follow_the_oci_grammar() {
        assert!(validate_repository("devcontainers/base").is_ok());
        assert!(validate_repository("release-file/airlock-cli").is_ok());
        for bad in ["Upper/case", "trailing/", "/lead", "a//b", "a/-b", "x/../y"] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }
}
