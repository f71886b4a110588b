//! The development container formats airlock reads: a repository's `devcontainer.json`, a
//! feature's `devcontainer-feature.json`, feature references, the environment a feature's
//! `install.sh` sees, and the spec's feature install order. Formats only: no network, no
//! containers (the bundler fetches, the runner installs).

mod config;
mod feature;
mod json;
mod vars;

use std::path::{Path, PathBuf};

pub use config::{
    Build, DevContainer, ForwardPort, HostRequirements, LifecycleCommand, Parsed, PortAttributes,
    LIFECYCLE_PROPERTIES,
};
pub use feature::{
    feature_env, feature_metadata, feature_metadata_at, install_order, option_env_name,
    FeatureMetadata, FeatureOption, FeatureOptionKind, FeatureOptionValue, FeatureRef,
    ResolvedFeature, FEATURE_CONFIG_MEDIA_TYPE, FEATURE_LAYER_MEDIA_TYPE, FEATURE_METADATA_FILE,
};
pub use json::MAX_FILE_BYTES;
pub use vars::{substitute, Variables};

/// Why a devcontainer or feature file was refused. Every variant names the file (or the
/// feature) and the property, and says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevcontainerError {
    #[error("{origin}: {size} bytes is over the {limit}-byte limit for a devcontainer file; check that it is the right file")]
    TooLarge {
        origin: String,
        size: usize,
        limit: usize,
    },
    #[error("{origin}:{line}:{column}: not valid JSON with comments: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: `{property}` must be {expected}, found {found}")]
    WrongType {
        origin: String,
        property: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{origin}: `{property}`: {message}")]
    InvalidValue {
        origin: String,
        property: String,
        message: String,
    },
    #[error(
        "{origin}: builds its image ({how}); airlock does not build images on the high side: build the image on the \
         connected side, push it to a registry the bundler reads, and name it in `image`"
    )]
    NeedsBuild { origin: String, how: String },
    #[error("{origin}: names no `image`; set `image` to the container image to start from (e.g. `mcr.microsoft.com/devcontainers/base:bookworm`)")]
    NoImage { origin: String },
    #[error("feature `{feature}`: option `{option}` is not declared by the feature (declared: {})", list(.declared))]
    UnknownOption {
        feature: String,
        option: String,
        declared: Vec<String>,
    },
    #[error("feature `{feature}`: option `{option}` is `{value}`, which is not one of its allowed values ({})", list(.allowed))]
    OptionNotInEnum {
        feature: String,
        option: String,
        value: String,
        allowed: Vec<String>,
    },
    #[error("feature `{feature}`: option `{option}` must be {expected}, found `{value}`")]
    OptionType {
        feature: String,
        option: String,
        expected: &'static str,
        value: String,
    },
    #[error("feature `{feature}` depends on `{dependency}`, which is not among the resolved features (resolve `dependsOn` transitively first)")]
    MissingDependency { feature: String, dependency: String },
    #[error("features depend on each other in a cycle: {}; break the cycle in `dependsOn`/`installsAfter`", .features.join(" -> "))]
    DependencyCycle { features: Vec<String> },
    #[error("`overrideFeatureInstallOrder` names `{id}`, which is not a feature of this devcontainer (use the id without its version, e.g. `ghcr.io/devcontainers/features/node`)")]
    UnknownOverride { id: String },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses a `devcontainer.json`. `origin` names the file in errors and reports.
pub fn parse(text: &str, origin: &str) -> Result<Parsed, DevcontainerError> {
    config::parse(text, origin)
}

/// Finds the devcontainer file of a checked-out repository, where the spec's tools look:
/// `.devcontainer/devcontainer.json`, then `.devcontainer.json`.
pub fn find(repo_root: &Path) -> Option<PathBuf> {
    [
        repo_root.join(".devcontainer").join("devcontainer.json"),
        repo_root.join(".devcontainer.json"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_prefers_the_devcontainer_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find(dir.path()), None);
        std::fs::write(dir.path().join(".devcontainer.json"), "{}").unwrap();
        assert_eq!(
            find(dir.path()),
            Some(dir.path().join(".devcontainer.json"))
        );
        std::fs::create_dir(dir.path().join(".devcontainer")).unwrap();
        std::fs::write(dir.path().join(".devcontainer/devcontainer.json"), "{}").unwrap();
        assert_eq!(
            find(dir.path()),
            Some(dir.path().join(".devcontainer/devcontainer.json"))
        );
    }
}
