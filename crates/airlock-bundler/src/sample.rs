//! The sample content (`airlock bundle sample`, the demo, the tests), built locally with no
//! network: a tiny devcontainer image (static busybox and its applets) as an OCI image layout,
//! and a release file. The same busybox gives the same digests.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Applets linked in the image's /bin.
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "id", "ps", "ip", "mkdir", "rm", "sleep", "env", "uname", "hostname", "wc",
    "head", "tail", "grep", "sed", "true", "false", "ln", "touch", "chmod", "nc", "stat", "whoami",
];

/// The manifest for [`build`]'s output, relative to the folder it wrote.
pub const SAMPLE_MANIFEST: &str = r#"# The demo's sample bundle: one tiny devcontainer image and one release file, built locally.
[bundle]
name = "sample"
channel = "stable"

[[image]]
name = "devcontainers/base"
tag = "tiny"
source = "oci-layout:./layouts/base:tiny"

[[file]]
kind = "release-file"
name = "airlock-cli"
version = "0.1.0"
platform = "linux-x64"
source = "file:./dist/airlock"
"#;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("the sample image needs a static busybox at {0}: install the Debian package busybox-static")]
    NoBusybox(PathBuf),
    #[error("the devcontainer demo's image needs {0} from this host: install git and openssh-client (scripts/install-deps.sh demo)")]
    MissingProgram(PathBuf),
    #[error("cannot build the sample content in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Writes `OUT/layouts/base` (image `tiny`), `OUT/dist/airlock` (a copy of `release_file`) and
/// `OUT/sample.toml`. Returns the image manifest digest.
pub fn build(out: &Path, busybox: &Path, release_file: &Path) -> Result<String, SampleError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SampleError::Io { path, source }
    };
    let static_busybox = fs::read(busybox)
        .ok()
        .filter(|bytes| is_static_elf(bytes))
        .ok_or_else(|| SampleError::NoBusybox(busybox.to_path_buf()))?;

    let layer = layer_tar(&static_busybox).map_err(io_err(out))?;
    let layer_hex = hex::encode(Sha256::digest(&layer));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/root"}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_hex}"]}},"history":[{{"created_by":"airlock demo sample"}}]}}"#
    );
    let digest = write_layout(&out.join("layouts/base"), "tiny", IMAGE_CONFIG, config.as_bytes(), &[(IMAGE_LAYER, &layer)])?;
    let dist = out.join("dist");
    fs::create_dir_all(&dist).map_err(io_err(&dist))?;
    fs::copy(release_file, dist.join("airlock")).map_err(io_err(release_file))?;
    let manifest = out.join("sample.toml");
    fs::write(&manifest, SAMPLE_MANIFEST).map_err(io_err(&manifest))?;
    Ok(digest)
}

/// The devcontainer demo's entries, relative to the folder [`build_devcontainer_demo`] wrote.
pub const DEVCONTAINER_DEMO_MANIFEST: &str = r#"
# The devcontainer demo: an image with git and ssh, and one devcontainer feature.
[[image]]
name = "devcontainers/base"
tag = "git"
source = "oci-layout:./layouts/git:demo"

[[image]]
name = "airlock-demo/features/hello"
tag = "1"
source = "oci-layout:./layouts/hello-feature:1"
"#;

/// What the demo's feature installs: `hello`, which prints the `greeting` option.
const HELLO_FEATURE_JSON: &str = r#"{
  "id": "hello",
  "version": "1.0.0",
  "name": "Hello",
  "description": "Installs `hello`, which greets in the words the greeting option gives.",
  "options": { "greeting": { "type": "string", "default": "hello" } }
}
"#;
const HELLO_INSTALL_SH: &str = "#!/bin/sh\nset -e\nmkdir -p /usr/local/bin\n\
printf '#!/bin/sh\\necho \"%s, from a devcontainer feature\"\\n' \"$GREETING\" > /usr/local/bin/hello\n\
chmod 755 /usr/local/bin/hello\n";

/// Writes the content of the devcontainer demo under `out`: `layouts/git` (image `demo`: the
/// busybox layer plus `programs` from this host, e.g. git and ssh, with the shared libraries
/// `ldd` lists for them) and `layouts/hello-feature` (a devcontainer feature, tag `1`).
/// [`DEVCONTAINER_DEMO_MANIFEST`] names both.
pub fn build_devcontainer_demo(out: &Path, busybox: &Path, programs: &[&Path]) -> Result<(), SampleError> {
    let static_busybox = fs::read(busybox)
        .ok()
        .filter(|bytes| is_static_elf(bytes))
        .ok_or_else(|| SampleError::NoBusybox(busybox.to_path_buf()))?;
    let io_err = |source| SampleError::Io { path: out.to_path_buf(), source };
    let base = layer_tar(&static_busybox).map_err(io_err)?;
    let tools = host_programs_tar(programs)?;
    let [base_hex, tools_hex] = [&base, &tools].map(|layer| hex::encode(Sha256::digest(layer)));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/root"}},"rootfs":{{"type":"layers","diff_ids":["sha256:{base_hex}","sha256:{tools_hex}"]}},"history":[{{"created_by":"airlock demo sample"}},{{"created_by":"airlock demo: git and ssh from the host"}}]}}"#
    );
    write_layout(&out.join("layouts/git"), "demo", IMAGE_CONFIG, config.as_bytes(), &[(IMAGE_LAYER, &base), (IMAGE_LAYER, &tools)])?;

    let mut tar = tar::Builder::new(Vec::new());
    for (path, text, mode) in [("devcontainer-feature.json", HELLO_FEATURE_JSON, 0o644), ("install.sh", HELLO_INSTALL_SH, 0o755)] {
        let mut h = header(tar::EntryType::Regular, mode, text.len() as u64);
        tar.append_data(&mut h, path, text.as_bytes()).map_err(io_err)?;
    }
    let feature = tar.into_inner().map_err(io_err)?;
    write_layout(
        &out.join("layouts/hello-feature"),
        "1",
        airlock_devcontainer::FEATURE_CONFIG_MEDIA_TYPE,
        b"{}",
        &[(airlock_devcontainer::FEATURE_LAYER_MEDIA_TYPE, &feature)],
    )?;
    Ok(())
}

/// A layer holding `programs` and the shared libraries `ldd` lists for them, at their host
/// paths (folders first, sorted, owner 0, mtime 0).
fn host_programs_tar(programs: &[&Path]) -> Result<Vec<u8>, SampleError> {
    let mut files = std::collections::BTreeSet::new();
    for program in programs {
        if !program.is_file() {
            return Err(SampleError::MissingProgram(program.to_path_buf()));
        }
        files.insert(program.to_path_buf());
        let ldd = std::process::Command::new("ldd").arg(program).output().map_err(|source| SampleError::Io { path: program.to_path_buf(), source })?;
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
                files.insert(PathBuf::from(path));
            }
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    for file in &files {
        dirs.extend(file.ancestors().skip(1).filter(|d| *d != Path::new("/")).map(Path::to_path_buf));
    }
    let mut tar = tar::Builder::new(Vec::new());
    let tar_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SampleError::Io { path, source }
    };
    for dir in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, format!("{}/", dir.strip_prefix("/").unwrap_or(dir).display()), io::empty()).map_err(tar_err(dir))?;
    }
    for file in &files {
        let bytes = fs::read(file).map_err(tar_err(file))?;
        let mut h = header(tar::EntryType::Regular, 0o755, bytes.len() as u64);
        tar.append_data(&mut h, file.strip_prefix("/").unwrap_or(file), bytes.as_slice()).map_err(tar_err(file))?;
    }
    tar.into_inner().map_err(tar_err(Path::new("layer")))
}

const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const IMAGE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Writes an OCI image layout at `layout` holding one manifest (tagged `tag`) of `config` and
/// `layers` (media type, bytes). Returns the manifest's digest.
fn write_layout(layout: &Path, tag: &str, config_type: &str, config: &[u8], layers: &[(&str, &[u8])]) -> Result<String, SampleError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SampleError::Io { path, source }
    };
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let put = |bytes: &[u8]| -> Result<(String, usize), SampleError> {
        let hex = hex::encode(Sha256::digest(bytes));
        let path = blobs.join(&hex);
        fs::write(&path, bytes).map_err(io_err(&path))?;
        Ok((hex, bytes.len()))
    };
    let descriptor = |media_type: &str, (hex, size): (String, usize)| format!(r#"{{"mediaType":"{media_type}","digest":"sha256:{hex}","size":{size}}}"#);
    let mut layer_descriptors = Vec::new();
    for (media_type, bytes) in layers {
        layer_descriptors.push(descriptor(media_type, put(bytes)?));
    }
    let config = descriptor(config_type, put(config)?);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{config},"layers":[{}]}}"#,
        layer_descriptors.join(",")
    );
    let (manifest_hex, manifest_size) = put(manifest.as_bytes())?;
    let write = |path: PathBuf, text: String| fs::write(&path, text).map_err(io_err(&path));
    write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#.into())?;
    write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_hex}","size":{manifest_size},"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#
        ),
    )?;
    Ok(format!("sha256:{manifest_hex}"))
}

/// A 64-bit ELF executable without a program interpreter (the image has no libc to load).
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| bytes.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes.get(at..at + 4).is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) != PT_INTERP)
    })
}

/// The image's only layer: deterministic (sorted, owner 0, mtime 0).
fn layer_tar(busybox: &[u8]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = |path: &str, mode: u32| -> io::Result<()> {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut h, path, io::empty())
    };
    for (path, mode) in [("bin/", 0o755), ("etc/", 0o755), ("root/", 0o700), ("tmp/", 0o1777), ("workspace/", 0o755)] {
        dir(path, mode)?;
    }
    let mut links: Vec<&str> = APPLETS.to_vec();
    links.sort_unstable();
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    tar.append_data(&mut h, "bin/busybox", busybox)?;
    for applet in links {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for (path, text) in [
        ("etc/group", "root:x:0:\n"),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        tar.append_data(&mut h, path, text.as_bytes())?;
    }
    tar.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_busybox_same_digest_and_a_clear_error_without_it() {
        let busybox = Path::new("/bin/busybox");
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let release = a.path().join("release");
        fs::write(&release, b"release").unwrap();
        let first = build(a.path(), busybox, &release).unwrap();
        let second = build(b.path(), busybox, &release).unwrap();
        assert_eq!(first, second);
        assert!(a.path().join("layouts/base/blobs/sha256").join(first.trim_start_matches("sha256:")).exists());
        let err = build(a.path(), &release, &release).unwrap_err().to_string();
        assert!(err.contains("busybox-static"), "{err}");
        // A dynamically linked program is refused too: the image has no libc.
        assert!(build(a.path(), Path::new("/bin/ls"), &release).is_err());
    }
}
