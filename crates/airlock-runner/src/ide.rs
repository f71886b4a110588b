//! IDEs from the mirror, mounted read-only into environments (docs/ide.md).
//!
//! Every IDE kind the mirror carries (VS Code server and CLI by commit, code-server, JetBrains
//! backends) is an OCI artifact with one archive layer, in repository `<kind>/<name>` with tag
//! `<version>-<platform>`. The runner pulls it through the same verified client as images,
//! unpacks it once per manifest digest into `DATA/images/ide/<hex>/` (completed in a temporary
//! folder and renamed), and every environment that uses it sees that one folder through its own
//! ID-mapped, read-only mount at `/opt/airlock/ide/<name>` (see `rootfs.rs`). The user's home
//! gets symbolic links in the layout the clients look for, so nothing is downloaded or copied.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use airlock_oci::{Digest, ManifestLinks, Reference};
use airlock_ssh_gateway::ExecRequest;
use flate2::read::MultiGzDecoder;

use crate::error::EngineError;
use crate::image::{sync_dir, unique, Budgeted, ImageStore, TempPath};
use crate::progress::EngineEvent;
use crate::unpack::{self, Compression};

/// Where the IDE trees appear inside every environment.
pub const IDE_ROOT: &str = "/opt/airlock/ide";

/// A tree from the mirror mounted read-only into an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdeMount {
    /// Folder under [`IDE_ROOT`], e.g. `vscode-server-<commit>`: letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// The unpacked tree on the host ([`crate::engine::Engine::pull_ide`]).
    pub tree: PathBuf,
    /// Symbolic links made in the session user's home: (path below the home, path below the
    /// mount). An existing file or folder at that path is left alone (the user's own install).
    pub home_links: Vec<(String, String)>,
}

/// What to pull from the mirror for one IDE, and what to say when the mirror lacks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdeArtifact {
    /// `registry/<kind>/<name>:<tag>`.
    pub reference: String,
    pub mount: String,
    pub home_links: Vec<(String, String)>,
    /// What brings it to the mirror: the offline-manifest lines for the release officer.
    pub manifest_lines: String,
}

/// The VS Code server for `commit`, where Remote-SSH looks for it: the CLI-based install
/// (`~/.vscode-server/cli/servers/Stable-<commit>/server`) and the legacy script
/// (`~/.vscode-server/bin/<commit>`).
pub fn vscode_server(registry: &str, commit: &str) -> IdeArtifact {
    let platform = format!("server-linux-{}", vscode_arch());
    IdeArtifact {
        reference: format!("{registry}/vscode-server/vscode-server:{commit}-{platform}"),
        mount: format!("vscode-server-{commit}"),
        home_links: vec![
            (
                format!(".vscode-server/cli/servers/Stable-{commit}/server"),
                String::new(),
            ),
            (format!(".vscode-server/bin/{commit}"), String::new()),
        ],
        manifest_lines: airlock_api::ide::vscode_manifest_lines(commit, &platform),
    }
}

/// The VS Code CLI for `commit` (`~/.vscode-server/code-<commit>`), which current Remote-SSH
/// clients run first; without it they fall back to downloading it.
pub fn vscode_cli(registry: &str, commit: &str) -> IdeArtifact {
    let platform = format!("cli-alpine-{}", vscode_arch());
    IdeArtifact {
        reference: format!("{registry}/vscode-server/vscode-server:{commit}-{platform}"),
        mount: format!("vscode-cli-{commit}"),
        home_links: vec![(format!(".vscode-server/code-{commit}"), "code".into())],
        manifest_lines: airlock_api::ide::vscode_manifest_lines(commit, &platform),
    }
}

/// code-server (the browser IDE), the release archive for this platform.
pub fn code_server(registry: &str, version: &str) -> IdeArtifact {
    let platform = format!("linux-{}", oci_arch());
    IdeArtifact {
        reference: format!("{registry}/code-server/code-server:{version}-{platform}"),
        mount: format!("code-server-{version}"),
        home_links: Vec::new(),
        manifest_lines: format!(
            "[[file]]\nkind = \"code-server\"\nname = \"code-server\"\nversion = \"{version}\"\nplatform = \"{platform}\"\nsource = \"file:code-server-{version}-{platform}.tar.gz\""
        ),
    }
}

/// A JetBrains backend (`name` as the bundler names it, e.g. `goland`), for Gateway.
pub fn jetbrains(registry: &str, name: &str, version: &str) -> IdeArtifact {
    let platform = if cfg!(target_arch = "aarch64") {
        "linuxARM64"
    } else {
        "linux"
    };
    IdeArtifact {
        reference: format!("{registry}/jetbrains-ide/{name}:{version}-{platform}"),
        mount: format!("jetbrains-{name}-{version}"),
        home_links: Vec::new(),
        manifest_lines: format!(
            "[[jetbrains]]\nproducts = [\"<product code of {name}>\"]\nversion = \"{version}\"\nplatforms = [\"{platform}\"]"
        ),
    }
}

fn vscode_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x64"
    }
}

fn oci_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// A mount name, link path or link target that is safe to write into a shell line and a path.
pub(crate) fn check_mount(m: &IdeMount) -> Result<(), String> {
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    };
    let relative = |s: &str| {
        plain(s) && !s.starts_with('/') && !s.split('/').any(|part| part == ".." || part == ".")
    };
    if m.name.is_empty() || m.name.contains('/') || !plain(&m.name) || m.name.starts_with('.') {
        return Err(format!(
            "IDE mount name `{}` must be letters, digits, `.`, `_` or `-`",
            m.name
        ));
    }
    for (link, target) in &m.home_links {
        if link.is_empty() || !relative(link) || !(target.is_empty() || relative(target)) {
            return Err(format!("IDE link `{link}` -> `{target}` must be relative paths of letters, digits, `.`, `_`, `-` and `/`"));
        }
    }
    Ok(())
}

/// The shell lines that make the links of `mounts` in `$HOME`, run as the session user.
pub(crate) fn link_script(mounts: &[IdeMount]) -> String {
    let mut script = String::from(
        "set -e\nlink() { d=\"$HOME/$1\"; mkdir -p \"${d%/*}\"; if [ -L \"$d\" ] || [ ! -e \"$d\" ]; then ln -sfn \"$2\" \"$d\"; fi; }\n",
    );
    for m in mounts {
        for (link, target) in &m.home_links {
            let target = if target.is_empty() {
                format!("{IDE_ROOT}/{}", m.name)
            } else {
                format!("{IDE_ROOT}/{}/{target}", m.name)
            };
            script.push_str(&format!("link '{link}' '{target}'\n"));
        }
    }
    script
}

/// The session that starts code-server (mounted as `mount`) in the background on the
/// environment's loopback: the mirror's gallery, no telemetry, no update checks, no auth of
/// its own (whoever reaches the port came through the gateway or, later, the authenticated
/// proxy), the workspace opened. Its log is `~/.local/share/code-server/airlock.log`. No
/// `nohup`: a session without a terminal sends no hangup, and minimal images lack the tool.
pub fn code_server_launch(mount: &str, mirror_base_url: &str) -> ExecRequest {
    let port = airlock_api::ide::CODE_SERVER_PORT;
    let command = format!(
        "mkdir -p \"$HOME/.local/share/code-server\" && cd /workspace 2>/dev/null; \
         {IDE_ROOT}/{mount}/bin/code-server --bind-addr 127.0.0.1:{port} --auth none \
         --disable-telemetry --disable-update-check /workspace \
         > \"$HOME/.local/share/code-server/airlock.log\" 2>&1 < /dev/null &"
    );
    ExecRequest {
        command: Some(command),
        env: vec![("EXTENSIONS_GALLERY".into(), gallery(mirror_base_url))],
        ..ExecRequest::default()
    }
}

/// code-server's `EXTENSIONS_GALLERY`, pointing at the mirror's Open VSX-style gallery.
pub fn gallery(mirror_base_url: &str) -> String {
    let m = mirror_base_url;
    serde_json::json!({
        "serviceUrl": format!("{m}/vscode/gallery"),
        "itemUrl": format!("{m}/vscode/item"),
        "resourceUrlTemplate": format!("{m}/vscode/asset/{{publisher}}/{{name}}/{{version}}/Microsoft.VisualStudio.Code.WebResources/{{path}}"),
    })
    .to_string()
}

/// Whether an engine error is the registry saying the artifact is not there.
pub fn is_not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::Registry { message, .. } if message.starts_with("HTTP 404"))
}

impl ImageStore {
    /// Pulls an artifact whose one layer is an archive and unpacks it once; returns the tree
    /// (the archive's single top folder, when it has one, as upstream archives do).
    pub(crate) fn pull_tree(
        &self,
        reference: &str,
        progress: &mut dyn FnMut(EngineEvent),
    ) -> Result<PathBuf, EngineError> {
        let r = Reference::parse(reference)?;
        self.client.check_allowed(&r)?;
        let pinned = r.digest.map(|d| d.to_string());
        let (body, digest) = self.fetch_manifest(&r, &r.manifest_ref(), pinned.as_deref())?;
        let hex = digest
            .parse::<Digest>()
            .map_err(|e| EngineError::InvalidReference {
                reference: reference.into(),
                reason: e.to_string(),
            })?
            .hex();
        let dir = self.root.join("ide").join(&hex);
        let tree = self.locks.with(&format!("ide:{digest}"), || {
            if !dir.is_dir() {
                self.unpack_tree(&r, reference, &body, &dir, progress)?;
            }
            Ok::<_, EngineError>(tree_root(&dir))
        })?;
        progress(EngineEvent::ImageReady {
            digest,
            rootfs: tree.clone(),
        });
        Ok(tree)
    }

    fn unpack_tree(
        &self,
        r: &Reference,
        reference: &str,
        body: &[u8],
        dir: &Path,
        progress: &mut dyn FnMut(EngineEvent),
    ) -> Result<(), EngineError> {
        let bad = |reason: String| EngineError::Manifest {
            reference: reference.to_string(),
            reason,
        };
        let manifest: ManifestLinks = serde_json::from_slice(body)
            .map_err(|e| bad(format!("the manifest is not valid JSON: {e}")))?;
        let [layer] = manifest.layers.as_slice() else {
            return Err(bad(format!(
                "an IDE artifact has one archive layer, this one has {}",
                manifest.layers.len()
            )));
        };
        let compression = match layer.media_type.as_str() {
            "application/gzip" | "application/x-gzip" => Compression::Gzip,
            "application/x-tar" => Compression::None,
            "application/zstd" => Compression::Zstd,
            // A devcontainer feature (features distribution spec): a plain tar.
            "application/vnd.devcontainers.layer.v1+tar" => Compression::None,
            other => unpack::compression_of(other).map_err(|_| {
                bad(format!(
                    "layer type `{other}` is not a tar archive (gzip, zstd or plain)"
                ))
            })?,
        };
        self.ensure_blob(r, layer, progress)?;
        let blob = self.blob_path(&layer.digest);
        let file = io::BufReader::with_capacity(
            256 << 10,
            File::open(&blob).map_err(EngineError::io("open", &blob))?,
        );
        let decoded: Box<dyn Read> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(file)
                    .map_err(EngineError::io("decompress", &blob))?,
            ),
        };
        let tmp = TempPath(self.root.join("tmp").join(format!("ide-{}", unique())));
        fs::create_dir(&tmp.0).map_err(EngineError::io("create", &tmp.0))?;
        let budgeted = Budgeted {
            inner: decoded,
            count: 0,
            limit: self.max_unpacked,
        };
        unpack::apply_layer(&tmp.0, budgeted, Compression::None).map_err(|source| {
            EngineError::Layer {
                image: reference.to_string(),
                layer: layer.digest.to_string(),
                source,
            }
        })?;
        let handle = File::open(&tmp.0).map_err(EngineError::io("open", &tmp.0))?;
        rustix::fs::syncfs(&handle).map_err(|e| EngineError::io("sync", &tmp.0)(e.into()))?;
        fs::rename(&tmp.0, dir).map_err(EngineError::io(
            format!("rename {} to", tmp.0.display()),
            dir,
        ))?;
        std::mem::forget(tmp);
        sync_dir(dir.parent().expect("ide trees have a parent"))?;
        tracing::info!(artifact = reference, "IDE unpacked");
        Ok(())
    }
}

/// The archive's single top folder (`vscode-server-linux-x64/`), or the folder itself.
fn tree_root(dir: &Path) -> PathBuf {
    let entries: Vec<_> = fs::read_dir(dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    match entries.as_slice() {
        [only] if only.file_type().is_ok_and(|t| t.is_dir()) => only.path(),
        _ => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_quoted_paths_and_hostile_names_are_refused() {
        let m = IdeMount {
            name: "vscode-server-abc".into(),
            tree: PathBuf::from("/x"),
            home_links: vscode_server("r", "abc").home_links,
        };
        assert!(check_mount(&m).is_ok());
        let script = link_script(&[m.clone()]);
        assert!(script.contains("link '.vscode-server/cli/servers/Stable-abc/server' '/opt/airlock/ide/vscode-server-abc'"), "{script}");
        assert!(
            script.contains("link '.vscode-server/bin/abc' '/opt/airlock/ide/vscode-server-abc'"),
            "{script}"
        );
        for (name, link) in [
            ("a b", "x"),
            ("..", "x"),
            ("ok", "../etc/passwd"),
            ("ok", "/etc"),
            ("ok", "x';rm -rf /;'"),
        ] {
            let bad = IdeMount {
                name: name.into(),
                tree: PathBuf::from("/x"),
                home_links: vec![(link.into(), String::new())],
            };
            assert!(check_mount(&bad).is_err(), "{name} {link}");
        }
    }

    #[test]
    fn a_missing_commit_names_the_manifest_lines_that_bring_it() {
        let a = vscode_server(
            "mirror.internal",
            "0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2",
        );
        assert!(a.reference.starts_with("mirror.internal/vscode-server/vscode-server:0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2-server-linux-"));
        assert!(
            a.manifest_lines
                .contains("commit = \"0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2\""),
            "{}",
            a.manifest_lines
        );
    }
}
