//! Measurements for `bench/runner.sh` (run as root):
//!
//! ```text
//! engine_perf layout DIR                                   busybox test image as an OCI layout (tag `1`)
//! engine_perf warm     --data D --image REF --plain-http H --runs N   start() latency, image cached
//! engine_perf cold     --data D --image REF --plain-http H --runs N   start() latency, fresh data dir each run
//! engine_perf baseline --data D --runs N                   `runc run -d` of the unpacked image (after `warm`)
//! engine_perf ramp     --data D --image REF --plain-http H --max N    environments held at once
//! engine_perf net      --data D --image REF --plain-http H --mib N --runs R
//!                      throughput and latency to a server in another namespace, from an
//!                      environment (its own network, through bridge and policy) and from the host
//! ```
//!
//! Each prints one `RESULT …` line for the script to parse, progress on stderr.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlock_runner::engine::{Engine, EngineOptions, EnvironmentSpec, Resources};
use airlock_ssh_gateway::{ExecIo, ExecRequest};
use airlock_runner::registry::RegistryOptions;
use sha2::{Digest, Sha256};

const RESOURCES: Resources = Resources { cpu_millis: 1000, memory_mib: 256, pids: 256 };
const APPLETS: &[&str] = &["sh", "id", "cat", "ls", "sleep", "ps", "true", "echo", "hostname"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags: HashMap<&str, &str> = args[1..].chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].as_str(), c[1].as_str())).collect();
    let flag = |name: &str| flags.get(name).copied().unwrap_or_else(|| panic!("--{} is required", name.trim_start_matches('-')));
    let number = |name: &str| flag(name).parse::<usize>().expect("a number");
    match args.first().map(String::as_str) {
        Some("layout") => write_layout(Path::new(&args[1])),
        Some("warm") => warm(Path::new(flag("--data")), flag("--image"), flag("--plain-http"), number("--runs")),
        Some("cold") => cold(Path::new(flag("--data")), flag("--image"), flag("--plain-http"), number("--runs")),
        Some("baseline") => baseline(Path::new(flag("--data")), number("--runs")),
        Some("ramp") => ramp(Path::new(flag("--data")), flag("--image"), flag("--plain-http"), number("--max")),
        Some("net") => net(Path::new(flag("--data")), flag("--image"), flag("--plain-http"), number("--mib"), number("--runs")),
        _ => {
            eprintln!("usage: engine_perf layout DIR | warm|cold|ramp --data D --image REF --plain-http HOST (--runs N|--max N) | baseline --data D --runs N");
            std::process::exit(2);
        }
    }
}

fn engine(data: &Path, plain_http: &str) -> Engine {
    let mut opts = EngineOptions::new(data);
    opts.uid_base = 3_000_000_000;
    opts.registry = RegistryOptions { plain_http: vec![plain_http.to_string()], ..Default::default() };
    Engine::open(opts).unwrap_or_else(|e| panic!("open: {e}"))
}

fn spec(id: &str, image: &str) -> EnvironmentSpec {
    EnvironmentSpec { id: id.into(), image: image.into(), resources: RESOURCES, ..Default::default() }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!("RESULT {name} {:.1} {:.1} {}", percentile(&samples, 50.0), percentile(&samples, 95.0), samples.len());
}

/// start() until the init runs, with the image already unpacked; delete between runs.
fn warm(data: &Path, image: &str, plain_http: &str, runs: usize) {
    let engine = engine(data, plain_http);
    engine.pull_image(image, &mut |_| {}).unwrap();
    let mut samples = Vec::new();
    for i in 0..=runs {
        let id = format!("env_warm{i}");
        let t0 = Instant::now();
        engine.start(&spec(&id, image), &mut |_| {}).unwrap_or_else(|e| panic!("start: {e}"));
        let took = t0.elapsed();
        engine.delete(&id).unwrap();
        if i > 0 {
            samples.push(ms(took)); // run 0 warms the page cache and cgroup parents
        }
    }
    report("warm", samples);
}

/// start() from an empty data dir each time: resolve, download, verify, unpack, start.
fn cold(data: &Path, image: &str, plain_http: &str, runs: usize) {
    let mut samples = Vec::new();
    for i in 0..runs {
        let dir = data.join(format!("cold{i}"));
        let engine = engine(&dir, plain_http);
        let t0 = Instant::now();
        engine.start(&spec("env_cold", image), &mut |_| {}).unwrap_or_else(|e| panic!("start: {e}"));
        samples.push(ms(t0.elapsed()));
        engine.delete("env_cold").unwrap();
        drop(engine);
        fs::remove_dir_all(&dir).unwrap();
    }
    report("cold", samples);
}

/// `runc run -d` of the same unpacked rootfs, read-only, no overlay, no user namespace, same
/// init and limits: what runc alone costs on this machine.
fn baseline(data: &Path, runs: usize) {
    let images = data.join("images/rootfs");
    let rootfs = fs::read_dir(&images).expect("run `warm` first").flatten().next().expect("an unpacked image").path();
    let bundle = data.join("baseline-bundle");
    let root = data.join("baseline-runc");
    fs::create_dir_all(&bundle).unwrap();
    let _ = fs::remove_file(bundle.join("config.json"));
    run_ok(Command::new("runc").args(["spec", "--bundle"]).arg(&bundle));
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    config["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]);
    config["linux"]["resources"]["memory"] = serde_json::json!({"limit": (RESOURCES.memory_mib as u64) << 20});
    config["linux"]["resources"]["pids"] = serde_json::json!({"limit": RESOURCES.pids});
    config["linux"]["resources"]["cpu"] = serde_json::json!({"quota": 100_000, "period": 100_000});
    let mut samples = Vec::new();
    for i in 0..=runs {
        let id = format!("baseline{i}");
        config["hostname"] = id.clone().into();
        config["linux"]["cgroupsPath"] = format!("/airlock-baseline/{id}").into();
        fs::write(bundle.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
        let log = fs::File::create(bundle.join("log")).unwrap();
        let t0 = Instant::now();
        let status = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "--detach", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        let took = t0.elapsed();
        assert!(status.success(), "runc run: {}", fs::read_to_string(bundle.join("log")).unwrap_or_default());
        run_ok(Command::new("runc").arg("--root").arg(&root).args(["delete", "--force", &id]));
        if i > 0 {
            samples.push(ms(took));
        }
    }
    report("baseline", samples);
}

/// Environments started by 4 threads until `max`, a failure, or 90 % of memory in use; then
/// each one checked with an exec, and all deleted.
fn ramp(data: &Path, image: &str, plain_http: &str, max: usize) {
    let engine = engine(data, plain_http);
    engine.pull_image(image, &mut |_| {}).unwrap();
    let available_before = meminfo("MemAvailable");
    let total = meminfo("MemTotal");
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = Mutex::new(Vec::new());
    let reason = Mutex::new(format!("reached the ramp limit of {max}"));
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= max || stop.load(Ordering::SeqCst) {
                    return;
                }
                if meminfo("MemAvailable") < total / 10 {
                    *reason.lock().unwrap() = format!("memory: less than 10% of {} MiB available", total >> 10);
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                let id = format!("env_ramp{i}");
                match engine.start(&spec(&id, image), &mut |_| {}) {
                    Ok(()) => {
                        let mut s = started.lock().unwrap();
                        s.push(id);
                        if s.len() % 50 == 0 {
                            eprintln!("{} environments running, {} MiB available", s.len(), meminfo("MemAvailable") >> 10);
                        }
                    }
                    Err(e) => {
                        *reason.lock().unwrap() = format!("start of {id} failed: {e}");
                        let _ = engine.delete(&id);
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    let ramp_secs = t0.elapsed().as_secs_f64();
    let ids = started.into_inner().unwrap();
    let used_kib = available_before.saturating_sub(meminfo("MemAvailable"));
    let cgroup_bytes: u64 = ids
        .iter()
        .filter_map(|id| fs::read_to_string(format!("/sys/fs/cgroup/memory/airlock/{id}/memory.usage_in_bytes")).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .sum();
    let failed_exec = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for chunk in ids.chunks(ids.len().div_ceil(4).max(1)) {
            let (engine, failed) = (&engine, &failed_exec);
            scope.spawn(move || {
                for id in chunk {
                    if exec_out(engine, id, "id -u").trim() != "0" {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let t1 = Instant::now();
    std::thread::scope(|scope| {
        for chunk in ids.chunks(ids.len().div_ceil(4).max(1)) {
            let engine = &engine;
            scope.spawn(move || {
                for id in chunk {
                    engine.delete(id).unwrap_or_else(|e| panic!("delete {id}: {e}"));
                }
            });
        }
    });
    println!(
        "RESULT ramp {} {:.1} {:.1} {} {} {} | {}",
        ids.len(),
        ramp_secs,
        t1.elapsed().as_secs_f64(),
        used_kib / 1024,
        cgroup_bytes >> 20,
        failed_exec.load(Ordering::SeqCst),
        reason.into_inner().unwrap()
    );
}

fn exec_out(engine: &Engine, id: &str, command: &str) -> String {
    let mut p = engine.exec(id, &ExecRequest { command: Some(command.into()), ..Default::default() }).unwrap();
    let ExecIo::Pipes { stdin, mut stdout, .. } = p.io else { unreachable!() };
    drop(stdin);
    let mut out = String::new();
    let _ = stdout.read_to_string(&mut out);
    let _ = p.child.wait();
    out
}

/// A /proc/meminfo field in KiB.
fn meminfo(field: &str) -> u64 {
    fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The busybox image the tests use, as an OCI layout tagged `1`.
fn write_layout(dir: &Path) {
    let busybox = fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, body: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(body.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_path(path).unwrap();
        if let Some(link) = link {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        tar.append(&h, body).unwrap();
    };
    for d in ["bin", "etc", "root", "proc", "sys", "dev", "run", "workspace"] {
        add(d, tar::EntryType::Directory, 0o755, b"", None);
    }
    add("tmp", tar::EntryType::Directory, 0o1777, b"", None);
    add("bin/busybox", tar::EntryType::Regular, 0o755, &busybox, None);
    add("etc/passwd", tar::EntryType::Regular, 0o644, b"root:x:0:0:root:/root:/bin/sh\n", None);
    add("etc/group", tar::EntryType::Regular, 0o644, b"root:x:0:\n", None);
    for applet in APPLETS {
        add(&format!("bin/{applet}"), tar::EntryType::Symlink, 0o777, b"", Some("busybox"));
    }
    let layer_tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&layer_tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer_tar)]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&layer), "size": layer.len()}]
    }))
    .unwrap();
    let blobs: PathBuf = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    for blob in [&layer, &config, &manifest] {
        fs::write(blobs.join(&sha256(blob)[7..]), blob).unwrap();
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "1"}
    }]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The bench's stand-in for a site server: a namespace linked to the host by a veth (host
/// 10.231.250.1, server .2), removed when dropped.
struct BenchSite;

const SITE_NS: &str = "albenchsite";

impl BenchSite {
    fn new() -> BenchSite {
        BenchSite::remove();
        run_ok(Command::new("sh").args(["-c", &format!(
            "ip netns add {SITE_NS} && ip link add {SITE_NS}h type veth peer name eth0 netns {SITE_NS} && ip addr add 10.231.250.1/29 dev {SITE_NS}h \
             && ip link set {SITE_NS}h up && ip -n {SITE_NS} link set lo up && ip -n {SITE_NS} addr add 10.231.250.2/29 dev eth0 \
             && ip -n {SITE_NS} link set eth0 up && ip -n {SITE_NS} route add default via 10.231.250.1"
        )]));
        BenchSite
    }

    fn remove() {
        let _ = Command::new("sh").args(["-c", &format!("ip link del {SITE_NS}h 2>/dev/null; ip netns del {SITE_NS} 2>/dev/null")]).status();
    }
}

impl Drop for BenchSite {
    fn drop(&mut self) {
        BenchSite::remove();
    }
}

/// Serves in the site namespace: after `b`, `mib` MiB of data; after `p`, echoes each byte.
fn serve_site(addr: std::net::SocketAddr, mib: usize) {
    let listener = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = fs::File::open(format!("/run/netns/{SITE_NS}")).unwrap();
        // SAFETY: a valid namespace descriptor; only this thread moves.
        assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        std::net::TcpListener::bind(addr).unwrap()
    })
    .join()
    .unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let mut first = [0u8];
                if stream.read_exact(&mut first).is_err() {
                    return;
                }
                if first[0] == b'b' {
                    let chunk = vec![0x5au8; 1 << 20];
                    for _ in 0..mib {
                        if stream.write_all(&chunk).is_err() {
                            return;
                        }
                    }
                } else {
                    let mut byte = [0u8];
                    while stream.read_exact(&mut byte).is_ok() && stream.write_all(&byte).is_ok() {}
                }
            });
        }
    });
}

/// (MiB/s of one bulk read, round trip times in ms) over streams from `connect`.
fn measure(connect: &dyn Fn() -> std::net::TcpStream, mib: usize, runs: usize) -> (Vec<f64>, Vec<f64>) {
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for _ in 0..runs {
        let mut stream = connect();
        let started = Instant::now();
        stream.write_all(b"b").unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        while got < mib << 20 {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed early");
            got += n;
        }
        throughput.push(mib as f64 / started.elapsed().as_secs_f64());
        let mut stream = connect();
        stream.set_nodelay(true).unwrap();
        stream.write_all(b"p").unwrap();
        for _ in 0..200 {
            let started = Instant::now();
            stream.write_all(b"x").unwrap();
            let mut byte = [0u8];
            stream.read_exact(&mut byte).unwrap();
            latency.push(ms(started.elapsed()));
        }
    }
    (throughput, latency)
}

/// The same server, measured from an environment's network namespace (through veth, bridge,
/// the nftables policy and masquerading) and from the host's. A socket made in the
/// environment's namespace takes exactly the path a process inside would.
fn net(data: &Path, image: &str, plain_http: &str, mib: usize, runs: usize) {
    let _site = BenchSite::new();
    let server = std::net::SocketAddr::from(([10, 231, 250, 2], 8080));
    serve_site(server, mib);
    let mut opts = EngineOptions::new(data);
    opts.uid_base = 3_000_000_000;
    opts.registry = RegistryOptions { plain_http: vec![plain_http.to_string()], ..Default::default() };
    let mut network = airlock_runner::network::NetworkConfig::new("albench0", airlock_runner::network::Ipv4Net::parse("10.231.251.0/24").unwrap());
    network.allow = vec![airlock_runner::network::AllowEntry::parse(&server.to_string()).unwrap()];
    opts.network = Some(network);
    let engine = Engine::open(opts).unwrap_or_else(|e| panic!("open: {e}"));
    let id = "env_netbench";
    engine.start(&spec(id, image), &mut |_| {}).unwrap_or_else(|e| panic!("start: {e}"));
    let netns = engine.network_namespace(id).unwrap().expect("the engine has a network");
    let from_env = || airlock_ssh_gateway::connect_in_netns(&netns, server, Duration::from_secs(5)).unwrap();
    let from_host = || std::net::TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap();
    let (env_tp, env_lat) = measure(&from_env, mib, runs);
    let (host_tp, host_lat) = measure(&from_host, mib, runs);
    let _ = engine.delete(id);
    let _ = engine.remove_network();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    };
    println!(
        "RESULT net {:.1} {:.1} {:.3} {:.3}",
        median(env_tp),
        median(host_tp),
        median(env_lat),
        median(host_lat)
    );
}
