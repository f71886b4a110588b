//! The site's data folder: one folder, one meaning on every command (`--data-dir`,
//! `data_dir`, `AIRLOCK_DATA_DIR`), holding each component's part:
//!
//! ```text
//! DATA/
//!   mirror/          content store and metadata
//!   control-plane/   the control plane's database
//!   runner/          the runner's credential, image cache and environments
//! ```
//!
//! Earlier versions took a component's own folder on some commands. Such a folder given as
//! the site folder is recognised by what it holds and refused with the fix, because using
//! it would silently start an empty component beside the real one.

use std::path::{Path, PathBuf};

/// A component of the site, with the folder it owns below the site folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Mirror,
    ControlPlane,
    Runner,
}

impl Component {
    pub fn folder(self) -> &'static str {
        match self {
            Component::Mirror => "mirror",
            Component::ControlPlane => "control-plane",
            Component::Runner => "runner",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Component::Mirror => "a mirror's content store",
            Component::ControlPlane => "a control plane's database",
            Component::Runner => "a runner's state",
        }
    }

    /// Entries only this component writes at the top of its own folder.
    fn markers(self) -> &'static [&'static str] {
        match self {
            Component::Mirror => &["metadata", "staging"],
            // sled's own files.
            Component::ControlPlane => &["conf", "db"],
            Component::Runner => &["runner.lock", "credential.json"],
        }
    }

    const ALL: [Component; 3] = [Component::Mirror, Component::ControlPlane, Component::Runner];
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "{site} holds {what} directly (found {marker}), but --data-dir / data_dir names the site \
         folder, which keeps the {component} in {site}/{folder}/. Pass the folder above it if it \
         is already named `{folder}`, or move it: mkdir NEW && mv {site} NEW/{folder}, then use \
         --data-dir NEW",
        site = .site.display(),
        marker = .marker.display(),
        what = .component.describe(),
        component = .component.folder(),
        folder = .component.folder()
    )]
    ComponentFolder { site: PathBuf, component: Component, marker: PathBuf },
}

/// The site's data folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteDir {
    root: PathBuf,
}

impl SiteDir {
    pub fn new(root: impl Into<PathBuf>) -> SiteDir {
        SiteDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder `component` keeps its state in, after checking that the site folder is not
    /// itself a component's folder from the old layout.
    pub fn component(&self, component: Component) -> Result<PathBuf, LayoutError> {
        self.check()?;
        Ok(self.root.join(component.folder()))
    }

    pub fn mirror(&self) -> Result<PathBuf, LayoutError> {
        self.component(Component::Mirror)
    }

    pub fn control_plane(&self) -> Result<PathBuf, LayoutError> {
        self.component(Component::ControlPlane)
    }

    pub fn runner(&self) -> Result<PathBuf, LayoutError> {
        self.component(Component::Runner)
    }

    /// Refuses a site folder that is a component's own folder.
    pub fn check(&self) -> Result<(), LayoutError> {
        for component in Component::ALL {
            for marker in component.markers() {
                let path = self.root.join(marker);
                if path.symlink_metadata().is_ok() {
                    return Err(LayoutError::ComponentFolder { site: self.root.clone(), component, marker: path });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_site_shaped_folder_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let site = SiteDir::new(dir.path());
        assert_eq!(site.mirror().unwrap(), dir.path().join("mirror"));
        std::fs::create_dir_all(dir.path().join("mirror/metadata")).unwrap();
        std::fs::create_dir_all(dir.path().join("control-plane")).unwrap();
        std::fs::write(dir.path().join("control-plane/conf"), b"").unwrap();
        assert_eq!(site.control_plane().unwrap(), dir.path().join("control-plane"));
        assert_eq!(site.runner().unwrap(), dir.path().join("runner"));
    }

    #[test]
    fn a_component_folder_given_as_the_site_is_named_with_the_fix() {
        for (marker, component) in [("metadata", "mirror"), ("db", "control-plane"), ("runner.lock", "runner")] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(marker), b"").unwrap();
            let message = SiteDir::new(dir.path()).mirror().unwrap_err().to_string();
            assert!(message.contains(&format!("found {}", dir.path().join(marker).display())), "{message}");
            assert!(message.contains(&format!("{}/{component}/", dir.path().display())), "{message}");
            assert!(message.contains(&format!("mv {} NEW/{component}", dir.path().display())), "{message}");
        }
    }
}
