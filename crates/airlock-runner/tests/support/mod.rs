//! Shared by the engine's integration tests: a busybox test image (OCI layout), Debian's
//! docker-registry holding it, a stand-in registry serving hand-made (and tampered) content,
//! engines on throw-away data dirs, and a guard that deletes every environment a test
//! started, even when the test fails.
#![allow(dead_code)]

pub mod gateway;
pub mod site;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_runner::engine::{Engine, EngineEvent, EngineOptions, EnvironmentSpec, Resources};
use airlock_ssh_gateway::{ExecIo, ExecRequest};
use airlock_runner::registry::RegistryOptions;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const APPLETS: &[&str] = &[
    "sh", "id", "cat", "ls", "sleep", "ps", "ip", "nc", "wget", "whoami", "touch", "stat", "hostname", "mount", "tty", "echo",
    "env", "grep", "wc", "mkdir", "rm", "test", "true", "false", "printf", "tr", "head", "sort", "readlink", "uname", "kill",
    "mkfifo",
];

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tar layer built entry by entry (names written raw, so hostile ones can be made).
pub struct LayerBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        LayerBuilder { builder: tar::Builder::new(Vec::new()) }
    }
}

impl LayerBuilder {
    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64, owner: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_mtime(1_700_000_000);
        let bytes = path.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        h
    }

    pub fn dir(mut self, path: &str, mode: u32, owner: u64) -> Self {
        let h = Self::header(path, tar::EntryType::Directory, mode, 0, owner);
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    pub fn file(mut self, path: &str, content: &[u8], mode: u32, owner: u64) -> Self {
        let h = Self::header(path, tar::EntryType::Regular, mode, content.len() as u64, owner);
        self.builder.append(&h, content).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(path, tar::EntryType::Symlink, 0o777, 0, 0);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    pub fn char_device(mut self, path: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Char, 0o666, 0, 0);
        self.builder.append(&h, &[][..]).unwrap();
        self
    }

    /// The uncompressed tar.
    pub fn tar(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The root filesystem of the test image: static busybox with applet links, root and a
/// `dev` user (uid 1000) owning /home/dev.
pub fn busybox_layer() -> LayerBuilder {
    let busybox = fs::read("/bin/busybox").expect("/bin/busybox is missing: apt-get install busybox-static");
    let mut layer = LayerBuilder::default()
        .dir("bin", 0o755, 0)
        .dir("etc", 0o755, 0)
        .dir("tmp", 0o1777, 0)
        .dir("root", 0o700, 0)
        .dir("home", 0o755, 0)
        .dir("home/dev", 0o755, 1000)
        .file("home/dev/.profile", b"export FROM_PROFILE=1\n", 0o644, 1000)
        .dir("proc", 0o555, 0)
        .dir("sys", 0o555, 0)
        .dir("dev", 0o755, 0)
        .dir("run", 0o755, 0)
        .file("bin/busybox", &busybox, 0o755, 0)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n", 0o644, 0)
        .file("etc/group", b"root:x:0:\ndev:x:1000:\n", 0o644, 0);
    for applet in APPLETS {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    layer
}

/// An image as blobs: config, layers (as served) and manifest.
pub struct ImageParts {
    pub config: Vec<u8>,
    pub layers: Vec<(String, Vec<u8>)>,
    pub manifest: Vec<u8>,
}

impl ImageParts {
    /// One image from uncompressed tars, gzip-compressed.
    pub fn new(tars: Vec<Vec<u8>>) -> ImageParts {
        let layers = tars.iter().map(|t| (LAYER_GZIP.to_string(), gzip(t))).collect();
        ImageParts::with_layers(&tars, layers)
    }

    /// One image from uncompressed tars, served as they are (big layers: no gzip pass).
    pub fn uncompressed(tars: Vec<Vec<u8>>) -> ImageParts {
        let layers = tars.iter().map(|t| (LAYER_TAR.to_string(), t.clone())).collect();
        ImageParts::with_layers(&tars, layers)
    }

    fn with_layers(tars: &[Vec<u8>], layers: Vec<(String, Vec<u8>)>) -> ImageParts {
        let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}
        }))
        .unwrap();
        let mut parts = ImageParts { config, layers, manifest: Vec::new() };
        parts.manifest = parts.make_manifest();
        parts
    }

    pub fn make_manifest(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&self.config), "size": self.config.len()},
            "layers": self.layers.iter().map(|(t, b)| serde_json::json!({"mediaType": t, "digest": sha256(b), "size": b.len()})).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    /// Writes an OCI image layout with the image tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| fs::write(blobs.join(&sha256(bytes)[7..]), bytes).unwrap();
        put(&self.config);
        put(&self.manifest);
        for (_, layer) in &self.layers {
            put(layer);
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": MANIFEST, "digest": self.digest(), "size": self.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]});
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    /// Routes serving this image as `repo:tag` (and by digest) on a stand-in registry.
    pub fn routes(&self, repo: &str, tag: &str) -> Routes {
        let mut routes = Routes::default();
        routes.insert(format!("/v2/{repo}/manifests/{tag}"), MANIFEST, self.manifest.clone());
        routes.insert(format!("/v2/{repo}/manifests/{}", self.digest()), MANIFEST, self.manifest.clone());
        routes.insert(format!("/v2/{repo}/blobs/{}", sha256(&self.config)), "application/octet-stream", self.config.clone());
        for (_, layer) in &self.layers {
            routes.insert(format!("/v2/{repo}/blobs/{}", sha256(layer)), "application/octet-stream", layer.clone());
        }
        routes
    }
}

/// The standard test image.
pub fn test_image() -> ImageParts {
    ImageParts::new(vec![busybox_layer().tar()])
}

/// Debian's docker-registry on a free loopback port, stopped when dropped.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is not installed (apt-get install docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry { child, addr, _dir: dir }
    }

    /// Pushes an image with skopeo; returns its reference.
    pub fn push(&self, image: &ImageParts, repo_tag: &str) -> String {
        let layout = self._dir.path().join(format!("layout-{}", repo_tag.replace(['/', ':'], "-")));
        image.write_layout(&layout, "t");
        let dest = format!("docker://{}/{repo_tag}", self.addr);
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", &format!("oci:{}:t", layout.display()), &dest])
            .output()
            .expect("skopeo is not installed (apt-get install skopeo)");
        assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
        format!("{}/{repo_tag}", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path → (content type, body).
#[derive(Default, Clone)]
pub struct Routes(pub HashMap<String, (String, Vec<u8>)>);

impl Routes {
    pub fn insert(&mut self, path: String, content_type: &str, body: Vec<u8>) {
        self.0.insert(path, (content_type.to_string(), body));
    }

    pub fn extend(&mut self, other: Routes) {
        self.0.extend(other.0);
    }

    /// Answers `path` with a 307 to `location` (as registries do for blobs in object storage).
    pub fn redirect(&mut self, path: String, location: &str) {
        self.0.insert(path, (REDIRECT.to_string(), location.as_bytes().to_vec()));
    }
}

/// The content type that marks a redirect route: its body is the location.
const REDIRECT: &str = "redirect";

/// A minimal registry stand-in (HTTP/1.1, GET only, one thread per connection) serving
/// fixed routes, counting requests per path.
pub struct StandIn {
    pub addr: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl StandIn {
    pub fn start(routes: Routes) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let routes = Arc::new(routes);
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (routes, hits) = (routes.clone(), h.clone());
                std::thread::spawn(move || serve(stream, &routes, &hits));
            }
        });
        StandIn { addr, hits, stop }
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Every path asked for, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.hits.lock().unwrap().keys().cloned().collect();
        paths.sort();
        paths
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(stream: TcpStream, routes: &Routes, hits: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let mut stream = stream;
    let response = match routes.0.get(&path) {
        Some((content_type, location)) if content_type == REDIRECT => format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            String::from_utf8_lossy(location)
        )
        .into_bytes(),
        Some((content_type, body)) => {
            let mut head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
            head.extend_from_slice(body);
            head
        }
        None if path == "/v2/" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&response);
}

/// An engine on a throw-away data dir, with its own block of uid ranges.
pub struct TestEngine {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    pub opts: EngineOptions,
}

/// Per test binary, a window of uid ranges; per engine in it, 128 ranges.
fn next_uid_base() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy();
    let window = name.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 16;
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % 16;
    100_000_000 + (window * 16 + n) * 128 * 65536
}

pub fn options(data: &Path, registry_host: &str) -> EngineOptions {
    let mut opts = EngineOptions::new(data);
    opts.runc = PathBuf::from("/usr/sbin/runc");
    opts.registry = RegistryOptions { plain_http: vec![registry_host.to_string()], ..Default::default() };
    opts.stop_timeout = Duration::from_secs(3);
    opts
}

impl TestEngine {
    pub fn new(registry_host: &str) -> TestEngine {
        let dir = tempfile::Builder::new().prefix("airlock-runner-test").tempdir().unwrap();
        let mut opts = options(&dir.path().join("data"), registry_host);
        opts.uid_base = next_uid_base();
        let engine = Engine::open(opts.clone()).unwrap();
        TestEngine { engine, dir, opts }
    }

    /// An engine whose options `adjust` changes first (e.g. to give it a network).
    pub fn with(registry_host: &str, adjust: impl FnOnce(&mut EngineOptions)) -> TestEngine {
        let dir = tempfile::Builder::new().prefix("airlock-runner-test").tempdir().unwrap();
        let mut opts = options(&dir.path().join("data"), registry_host);
        opts.uid_base = next_uid_base();
        adjust(&mut opts);
        let engine = Engine::open(opts.clone()).unwrap();
        TestEngine { engine, dir, opts }
    }

    pub fn data(&self) -> PathBuf {
        self.engine.data_dir().to_path_buf()
    }
}

/// Deletes every environment it was told about when dropped (tests that fail included), and
/// checks nothing stays mounted.
pub struct EnvGuard<'a> {
    engine: &'a Engine,
    ids: Mutex<Vec<String>>,
}

impl<'a> EnvGuard<'a> {
    pub fn new(engine: &'a Engine) -> EnvGuard<'a> {
        EnvGuard { engine, ids: Mutex::default() }
    }

    /// Starts an environment (remembered for cleanup before it starts).
    pub fn start(&self, spec: &EnvironmentSpec) -> Vec<EngineEvent> {
        self.track(&spec.id);
        let mut events = Vec::new();
        self.engine.start(spec, &mut |e| events.push(e)).unwrap_or_else(|e| panic!("start {}: {e}", spec.id));
        events
    }

    pub fn track(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
}

impl Drop for EnvGuard<'_> {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Err(e) = self.engine.delete(id) {
                eprintln!("cleanup: deleting {id} failed: {e}");
            }
        }
    }
}

pub fn spec(id: &str, image: &str) -> EnvironmentSpec {
    EnvironmentSpec {
        id: id.to_string(),
        image: image.to_string(),
        resources: Resources { cpu_millis: 1000, memory_mib: 256, pids: 256 },
        ..Default::default()
    }
}

/// Runs `command` in the environment with pipes: (exit code, stdout, stderr).
pub fn run(engine: &Engine, id: &str, command: &str) -> (i32, String, String) {
    let req = ExecRequest { command: Some(command.to_string()), ..Default::default() };
    let mut process = engine.exec(id, &req).unwrap_or_else(|e| panic!("exec in {id}: {e}"));
    let ExecIo::Pipes { stdin, mut stdout, mut stderr } = process.io else { panic!("pipes expected") };
    drop(stdin);
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let status = process.child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err_reader.join().unwrap())
}

/// Like `run`, but the command must succeed; returns its trimmed stdout.
pub fn run_ok(engine: &Engine, id: &str, command: &str) -> String {
    let (code, out, err) = run(engine, id, command);
    assert_eq!(code, 0, "`{command}` in {id} exited {code}\nstdout: {out}\nstderr: {err}");
    out.trim().to_string()
}

/// Mount points at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

/// Files below `dir` on `dir`'s own filesystem (other mounts not entered) containing `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::symlink_metadata(dir).unwrap().dev();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.dev() != dev {
            continue;
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if meta.is_file() {
            let bytes = fs::read(&path).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

/// Adds `program` and the shared libraries `ldd` lists for it, at their host paths (parent
/// folders first), so a dynamically linked host tool runs inside the test image.
pub fn with_host_program(mut layer: LayerBuilder, program: &str, dirs: &mut std::collections::BTreeSet<String>) -> LayerBuilder {
    let ldd = Command::new("ldd").arg(program).output().unwrap();
    let mut files = vec![program.to_string()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(path.to_string());
        }
    }
    for file in files {
        let rel = file.trim_start_matches('/');
        let mut parent = String::new();
        for part in Path::new(rel).parent().unwrap().iter() {
            parent = if parent.is_empty() { part.to_string_lossy().into_owned() } else { format!("{parent}/{}", part.to_string_lossy()) };
            if dirs.insert(parent.clone()) {
                layer = layer.dir(&parent, 0o755, 0);
            }
        }
        layer = layer.file(rel, &fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}")), 0o755, 0);
    }
    layer
}
