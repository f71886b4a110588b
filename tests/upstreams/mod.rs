//! Upstreams for the bundler's end-to-end tests, all on 127.0.0.1 with OS-chosen ports, all
//! stopped when dropped: Debian's `docker-registry` loaded by `skopeo`, and a stand-in HTTP
//! server that answers each upstream's real wire shapes from documents the test puts in it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

/// A port that was free a moment ago (the registry binds it itself).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's `docker-registry` (CNCF distribution) with filesystem storage in a temp dir.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start /usr/bin/docker-registry (apt package docker-registry; `make test` installs it)");
        let registry = Registry { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Copies `oci:LAYOUT:REF` (every platform) into `REPOSITORY:TAG`, digests unchanged.
    pub fn push(&self, layout: &Path, reference: &str, repository_tag: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "-q"])
            .arg(format!("oci:{}:{reference}", layout.display()))
            .arg(format!("docker://{}/{repository_tag}", self.host()))
            .output()
            .expect("cannot run skopeo (`make test` installs it)");
        assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the stand-in answers for one path.
#[derive(Clone)]
pub enum Answer {
    Body { bytes: Arc<Vec<u8>>, content_type: String },
    Redirect(String),
    Status(u16),
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct Shared {
    answers: HashMap<String, Answer>,
    /// Serve only this many bytes of a body, then hang (a transfer that stalls until killed).
    stall_after: HashMap<String, usize>,
    /// Answer 503 this many times before serving.
    fail_first: HashMap<String, usize>,
    seen: Vec<Seen>,
}

/// A stand-in upstream: exact path (+query) → answer, with HTTP ranges like real servers.
pub struct StandIn {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl StandIn {
    pub fn start() -> StandIn {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(serve).with_state(shared.clone());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { port, shared, runtime: Some(runtime) }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn put(&self, path: &str, bytes: impl Into<Vec<u8>>, content_type: &str) {
        let answer = Answer::Body { bytes: Arc::new(bytes.into()), content_type: content_type.into() };
        self.shared.lock().unwrap().answers.insert(path.to_string(), answer);
    }

    pub fn put_json(&self, path: &str, value: &serde_json::Value) {
        self.put(path, serde_json::to_vec(value).unwrap(), "application/json");
    }

    pub fn redirect(&self, path: &str, to: &str) {
        self.shared.lock().unwrap().answers.insert(path.to_string(), Answer::Redirect(to.to_string()));
    }

    pub fn status(&self, path: &str, code: u16) {
        self.shared.lock().unwrap().answers.insert(path.to_string(), Answer::Status(code));
    }

    pub fn stall_after(&self, path: &str, bytes: Option<usize>) {
        let mut shared = self.shared.lock().unwrap();
        match bytes {
            Some(n) => shared.stall_after.insert(path.to_string(), n),
            None => shared.stall_after.remove(path),
        };
    }

    pub fn fail_first(&self, path: &str, times: usize) {
        self.shared.lock().unwrap().fail_first.insert(path.to_string(), times);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.target == path).collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let target = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let path = request.uri().path().to_string();
    let headers: HeaderMap = request.headers().clone();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (answer, stall) = {
        let mut s = shared.lock().unwrap();
        s.seen.push(Seen { method: request.method().to_string(), target: target.clone(), range: range.clone() });
        let key = if s.answers.contains_key(&target) { target.clone() } else { path.clone() };
        if let Some(left) = s.fail_first.get_mut(&key).filter(|n| **n > 0) {
            *left -= 1;
            return Response::builder().status(503).body(Body::from("try later")).unwrap();
        }
        (s.answers.get(&key).cloned(), s.stall_after.get(&key).copied())
    };
    match answer {
        None => Response::builder().status(404).body(Body::from("not found")).unwrap(),
        Some(Answer::Status(code)) => Response::builder().status(code).body(Body::empty()).unwrap(),
        Some(Answer::Redirect(to)) => Response::builder().status(302).header(header::LOCATION, to).body(Body::empty()).unwrap(),
        Some(Answer::Body { bytes, content_type }) => {
            let total = bytes.len();
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            let (status, from) = match start {
                Some(from) if from < total => (StatusCode::PARTIAL_CONTENT, from),
                Some(_) => return Response::builder().status(416).body(Body::empty()).unwrap(),
                None => (StatusCode::OK, 0),
            };
            let mut builder = Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_LENGTH, total - from)
                .header(header::ACCEPT_RANGES, "bytes");
            if status == StatusCode::PARTIAL_CONTENT {
                builder = builder.header(header::CONTENT_RANGE, format!("bytes {from}-{}/{total}", total - 1));
            }
            match stall {
                Some(n) if n > from => {
                    let first = bytes::Bytes::copy_from_slice(&bytes[from..n.min(total)]);
                    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(first)]).chain(futures_util::stream::pending());
                    builder.body(Body::from_stream(stream)).unwrap()
                }
                _ => builder.body(Body::from(bytes[from..].to_vec())).unwrap(),
            }
        }
    }
}

use futures_util::StreamExt as _;

/// Builds an OCI layout holding a multi-platform index under `reference`: one image per
/// platform, each with a shared base layer and a layer of its own.
pub fn multi_arch_layout(dir: &Path, reference: &str, platforms: &[(&str, &str)], seed: u8) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = crate::common::sha256_hex(bytes);
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let layer = |name: &str, content: &[u8]| -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, content).unwrap();
        builder.into_inner().unwrap()
    };
    let shared = layer("shared.txt", &vec![seed; 300_000]);
    let (shared_digest, shared_size) = put(&shared);
    let mut entries = Vec::new();
    for (os, arch) in platforms {
        let own = layer(&format!("{arch}.bin"), &pseudo_random(200_000, arch.len() as u64 * 31 + seed as u64));
        let (own_digest, own_size) = put(&own);
        let diff = |d: &str| d.to_string();
        let config = serde_json::json!({
            "architecture": arch, "os": os,
            "rootfs": {"type": "layers", "diff_ids": [diff(&shared_digest), diff(&own_digest)]},
            "config": {"Cmd": ["/bin/sh"]}
        });
        let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": shared_digest, "size": shared_size},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": own_digest, "size": own_size}
            ]
        });
        let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
            "platform": {"architecture": arch, "os": os}
        }));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let (index_digest, index_size) = put(&serde_json::to_vec(&index).unwrap());
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_size,
        "annotations": {"org.opencontainers.image.ref.name": reference}
    }]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    dir.to_path_buf()
}

/// Deterministic bytes that do not compress (xorshift).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
