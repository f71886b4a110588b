//! `--data-dir`: the site's data folder on every command, each command finding its
//! component's part below it (see `airlock_config::SiteDir`).

use std::path::PathBuf;

use airlock_config::{Component, SiteDir};

#[derive(clap::Args, Clone, Debug)]
pub struct SiteArgs {
    /// The site's data folder, holding mirror/, control-plane/ and runner/ (as `airlock
    /// server` keeps them); each command uses its component's part.
    #[arg(long = "data-dir", value_name = "DIR", env = "AIRLOCK_DATA_DIR", default_value = "./airlock-data")]
    pub data_dir: PathBuf,
}

impl SiteArgs {
    pub fn site(&self) -> SiteDir {
        SiteDir::new(&self.data_dir)
    }

    /// The component's folder, or why this site folder cannot be used.
    pub fn folder(&self, component: Component) -> anyhow::Result<PathBuf> {
        Ok(self.site().component(component)?)
    }
}

/// For the commands whose `--data-dir` is optional (they work through the API without it).
pub fn component_folder(site: &std::path::Path, component: Component) -> anyhow::Result<PathBuf> {
    Ok(SiteDir::new(site).component(component)?)
}
