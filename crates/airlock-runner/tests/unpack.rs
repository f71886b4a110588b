//! Layer application: the whiteout and opaque rules, links, ownership and modes, compression,
//! and the hostile cases, each refused before anything lands outside the root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use airlock_runner::unpack::{apply_layer, compression_of, Compression, UnpackError};

/// Builds a tar layer in memory.
struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer { builder: tar::Builder::new(Vec::new()) }
    }
}

impl Layer {
    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        // Written raw so names tar would refuse to build (`..`) can be made.
        let bytes = path.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        h
    }

    fn dir(mut self, path: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Directory, 0o755, 0);
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    fn file(self, path: &str, content: &[u8]) -> Self {
        self.file_owned(path, content, 0o644, 0)
    }

    fn file_owned(mut self, path: &str, content: &[u8], mode: u32, uid: u64) -> Self {
        let mut h = Self::header(path, tar::EntryType::Regular, mode, content.len() as u64);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_cksum();
        self.builder.append(&h, content).unwrap();
        self
    }

    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(path, kind, 0o777, 0);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    fn device(mut self, path: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Char, 0o600, 0);
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

fn apply(root: &Path, layer: Layer) -> Result<airlock_runner::unpack::Applied, UnpackError> {
    apply_layer(root, &layer.bytes()[..], Compression::None)
}

#[test]
fn files_folders_links_modes_and_owners_land_as_the_layer_says() {
    let root = tempfile::tempdir().unwrap();
    let layer = Layer::default()
        .dir("usr")
        .dir("usr/bin")
        .file_owned("usr/bin/tool", b"#!/bin/sh\n", 0o755, 1000)
        .link(tar::EntryType::Symlink, "bin", "usr/bin")
        .link(tar::EntryType::Link, "usr/bin/tool2", "usr/bin/tool")
        .file("./etc/deep/missing/parents.conf", b"x=1\n")
        .file_owned("usr/bin/su", b"setuid", 0o4755, 0);
    let applied = apply(root.path(), layer).unwrap();
    assert_eq!(applied.entries, 7);
    assert_eq!(fs::metadata(root.path().join("usr/bin/su")).unwrap().permissions().mode() & 0o7777, 0o4755);
    let tool = root.path().join("usr/bin/tool");
    assert_eq!(fs::read(&tool).unwrap(), b"#!/bin/sh\n");
    let meta = fs::metadata(&tool).unwrap();
    assert_eq!((meta.permissions().mode() & 0o7777, meta.uid(), meta.gid()), (0o755, 1000, 1000));
    assert_eq!(fs::read_link(root.path().join("bin")).unwrap(), Path::new("usr/bin"));
    assert_eq!(fs::metadata(root.path().join("usr/bin/tool2")).unwrap().ino(), meta.ino());
    assert_eq!(fs::read(root.path().join("etc/deep/missing/parents.conf")).unwrap(), b"x=1\n");
    // Writing through an in-root relative symlink is fine (merged-usr images do it).
    apply(root.path(), Layer::default().file("bin/other", b"via symlink")).unwrap();
    assert_eq!(fs::read(root.path().join("usr/bin/other")).unwrap(), b"via symlink");
}

#[test]
fn whiteouts_remove_lower_files_and_folders() {
    let root = tempfile::tempdir().unwrap();
    apply(root.path(), Layer::default().file("a/x", b"x").file("a/y", b"y").file("a/sub/z", b"z")).unwrap();
    let applied = apply(root.path(), Layer::default().file("a/.wh.x", b"").file("a/.wh.sub", b"")).unwrap();
    assert_eq!(applied.whiteouts, 2);
    assert!(!root.path().join("a/x").exists());
    assert!(!root.path().join("a/sub").exists());
    assert!(!root.path().join("a/.wh.x").exists(), "the whiteout marker itself was written");
    assert_eq!(fs::read(root.path().join("a/y")).unwrap(), b"y");
}

#[test]
fn an_opaque_folder_hides_lower_content_but_keeps_its_own_layers() {
    let root = tempfile::tempdir().unwrap();
    apply(root.path(), Layer::default().file("cfg/old", b"old").file("cfg/sub/deeper", b"d")).unwrap();
    // This layer writes one file before the marker and one after: both stay.
    let layer = Layer::default().dir("cfg").file("cfg/before", b"b").file("cfg/.wh..wh..opq", b"").file("cfg/after", b"a");
    apply(root.path(), layer).unwrap();
    let mut names: Vec<String> =
        fs::read_dir(root.path().join("cfg")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["after", "before"]);
}

#[test]
fn a_file_replaces_a_folder_and_a_folder_replaces_a_file() {
    let root = tempfile::tempdir().unwrap();
    apply(root.path(), Layer::default().file("p/q", b"q").file("f", b"file")).unwrap();
    apply(root.path(), Layer::default().file("p", b"now a file").dir("f")).unwrap();
    assert_eq!(fs::read(root.path().join("p")).unwrap(), b"now a file");
    assert!(root.path().join("f").is_dir());
}

#[test]
fn device_nodes_are_never_created() {
    let root = tempfile::tempdir().unwrap();
    let applied = apply(root.path(), Layer::default().device("dev/kmsg").file("ok", b"ok")).unwrap();
    assert_eq!(applied.skipped_devices, 1);
    assert!(!root.path().join("dev/kmsg").exists());
    assert!(root.path().join("ok").exists());
}

/// A root inside a sandbox folder, so an escape would land where the test can see it.
fn sandboxed() -> (tempfile::TempDir, std::path::PathBuf) {
    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    (sandbox, root)
}

#[test]
fn a_dotdot_entry_is_refused_and_nothing_lands_outside() {
    let (sandbox, root) = sandboxed();
    let err = apply(&root, Layer::default().file("../escaped", b"owned")).unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    assert!(err.to_string().contains("../escaped"), "{err}");
    assert!(!sandbox.path().join("escaped").exists());
}

#[test]
fn writing_through_a_symlink_that_leaves_the_root_is_refused() {
    for target in ["..", "../..", "/tmp"] {
        let (sandbox, root) = sandboxed();
        apply(&root, Layer::default().link(tar::EntryType::Symlink, "out", target)).unwrap();
        let marker = format!("airlock-escape-{}", std::process::id());
        let err = apply(&root, Layer::default().file(&format!("out/{marker}"), b"owned")).unwrap_err();
        assert!(matches!(err, UnpackError::Escape { .. }), "{target}: {err}");
        assert!(err.to_string().contains("resolves outside the root"), "{err}");
        assert!(!sandbox.path().join(&marker).exists());
        assert!(!Path::new("/tmp").join(&marker).exists());
    }
}

#[test]
fn hardlinks_must_point_at_files_inside_the_root() {
    let (sandbox, root) = sandboxed();
    fs::write(sandbox.path().join("secret"), b"host file").unwrap();
    let err = apply(&root, Layer::default().link(tar::EntryType::Link, "stolen", "../secret")).unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    let err = apply(&root, Layer::default().link(tar::EntryType::Link, "dangling", "no/such/file")).unwrap_err();
    assert!(matches!(err, UnpackError::HardlinkTarget { .. }), "{err}");
    // Through a symlink that leaves the root: refused too.
    apply(&root, Layer::default().link(tar::EntryType::Symlink, "up", "..")).unwrap();
    let err = apply(&root, Layer::default().link(tar::EntryType::Link, "stolen", "up/secret")).unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    assert!(!root.join("stolen").exists());
}

#[test]
fn gzip_and_zstd_layers_apply_like_plain_ones() {
    let plain = Layer::default().file("hello", b"world").bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (media_type, bytes) in [
        ("application/vnd.oci.image.layer.v1.tar+gzip", gz),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Vec::new()),
        ("application/vnd.oci.image.layer.v1.tar+zstd", zst),
    ] {
        let compression = compression_of(media_type).unwrap();
        if bytes.is_empty() {
            assert_eq!(compression, Compression::Gzip);
            continue;
        }
        let root = tempfile::tempdir().unwrap();
        apply_layer(root.path(), &bytes[..], compression).unwrap();
        assert_eq!(fs::read(root.path().join("hello")).unwrap(), b"world", "{media_type}");
    }
    assert!(compression_of("application/vnd.oci.image.layer.nondistributable.v1.tar+foo").is_err());
}
