//! Zero egress: the whole demo completes in a network namespace with nothing but loopback, and
//! a destination outside the allow-list is refused by the guard before any socket opens, with
//! the destination and the setting named and an audit record. With environments on their own
//! network (routed through the runner's namespace), still nothing leaves the enclave.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_control_plane::client::{Client, Method};
use common::{airlock, ok, Sample};
use serde_json::{json, Value};

/// The demo and the enclave run do not overlap: while the demo's runner runs on this host, the
/// enclave's environment does not reach the mirror (seen on kernel 6.18; not yet understood,
/// recorded on issue #17), so each runs alone.
static ONE_RUNNER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_completes_in_a_network_namespace_with_only_loopback() {
    let _alone = ONE_RUNNER_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", "ip link set lo up && exec \"$0\" demo --dir \"$1\""])
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .arg(&work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed under unshare -n:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hello from the demo task"), "{stdout}");
    assert!(stdout.contains("the git server's main is now: ") && stdout.contains("A change made inside the environment"), "{stdout}");
    assert!(stdout.contains("uid=0(root)"), "{stdout}");
    // Nothing was even attempted outside: the guard's refusal log stays empty.
    let refusals = std::fs::read_to_string(work.join("data/egress-audit.jsonl")).unwrap_or_default();
    assert_eq!(refusals, "", "no destination was refused");
}

#[test]
fn an_outside_repository_is_refused_by_the_guard_and_audited() {
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&data));
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[mirror]\nlisten = \"127.0.0.1:0\"\n[control_plane]\nlisten = \"127.0.0.1:0\"\nkek_files = [\"{}\"]\n[runner]\nssh_listen = \"127.0.0.1:0\"\nuid_base = 4000000\n[egress]\nallow = [\"git.acme.internal\"]\n",
            data.display(),
            dir.path().join("kek").display()
        ),
    )
    .unwrap();
    let mut server = airlock()
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (mut cp, mut mirror) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("control plane listening on ") {
            cp = u.to_string();
        }
        if let Some(u) = line.strip_prefix("mirror listening on http://") {
            mirror = u.to_string();
        }
        if line == "airlock server ready" {
            break;
        }
    }
    assert!(!cp.is_empty() && !mirror.is_empty(), "{}", std::fs::read_to_string(dir.path().join("server.log")).unwrap());
    let token = std::fs::read_to_string(data.join("control-plane/owner-token")).unwrap();
    let api = Client::new(&cp, Some(token.trim().to_string()), None).unwrap();
    let call = |m: Method, p: &str, b: Option<&Value>| api.call(m, p, &[], b).unwrap_or_else(|e| panic!("{p}: {e}"));
    let class = call(Method::POST, "/api/v1/classes", Some(&json!({"name": "small", "resources": {"cpu_millis": 500, "memory_mib": 128, "disk_gib": 1, "pids": 64}})));
    let project = call(Method::POST, "/api/v1/projects", Some(&json!({
        "name": "outside", "repository_url": "https://github.com/example/repo.git",
        "image": format!("{mirror}/devcontainers/base:tiny"), "class_id": class["id"],
    })));
    let env = call(Method::POST, "/api/v1/environments", Some(&json!({"project_id": project["id"]})));
    let id = env["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let v = call(Method::GET, &format!("/api/v1/environments/{id}"), None);
        if v["phase"] == "failed" {
            break v;
        }
        assert!(Instant::now() < deadline, "the environment did not fail: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.contains("github.com") && reason.contains("egress.allow"), "{reason}");
    let audit = std::fs::read_to_string(data.join("egress-audit.jsonl")).unwrap();
    let record: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(record["component"], "runner", "{record}");
    assert!(record["destination"].as_str().unwrap().starts_with("github.com"), "{record}");

    call(Method::DELETE, &format!("/api/v1/environments/{id}"), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(Method::GET, &format!("/api/v1/environments/{id}"), None)["phase"] != "deleted" {
        assert!(Instant::now() < deadline, "not deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success(), "server stops cleanly on SIGTERM");
}

/// Network namespaces made by the test: a hub with a bridge, and one namespace per component,
/// each joined to the bridge by a veth link, with no default route anywhere. The test process
/// itself plays the users' workstation through one more veth on the host. Dropping it deletes
/// the namespaces (and with them every veth).
struct Enclave {
    prefix: String,
    subnet: String,
    names: Vec<String>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Enclave {
    fn new() -> Enclave {
        let id = std::process::id() % 200 + 20;
        let prefix = format!("al{id}");
        let subnet = format!("10.213.{id}");
        let enclave = Enclave { prefix: prefix.clone(), subnet: subnet.clone(), names: Vec::new() };
        let mut enclave = enclave;
        let hub = format!("{prefix}hub");
        sh(&["ip", "netns", "add", &hub]);
        enclave.names.push(hub.clone());
        sh(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &hub, "link", "set", "br0", "up"]);
        for (i, name) in ["m", "c", "r"].iter().enumerate() {
            let ns = format!("{prefix}{name}");
            sh(&["ip", "netns", "add", &ns]);
            enclave.names.push(ns.clone());
            // No IPv6: its automatic solicitations would go to multicast addresses outside.
            sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
            enclave.link(&format!("{prefix}v{name}"), Some(&ns), &format!("{subnet}.{}", i + 1));
            // Count every packet leaving the namespace (sent by a component, or routed through
            // it from the runner's environments) for anything but the enclave, loopback and
            // the environments' own network (the runner's bridge and its ports: the host's own
            // multicast reports to its environments stay inside the runner's namespace).
            let envs = enclave.env_subnet();
            let bridge = enclave.env_bridge();
            let rules = format!(
                "table inet egress {{\n  counter outside {{ }}\n  chain out {{\n    type filter hook postrouting priority 0; policy accept;\n    oifname != \"{bridge}\" oifname != \"{bridge}v*\" ip daddr != {{ {subnet}.0/24, 127.0.0.0/8, {envs} }} counter name outside\n    oifname != \"{bridge}\" oifname != \"{bridge}v*\" meta nfproto ipv6 counter name outside\n  }}\n}}\n"
            );
            let mut nft = Command::new("ip").args(["netns", "exec", &ns, "nft", "-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
            std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
            assert!(nft.wait().unwrap().success());
        }
        enclave.link(&format!("{prefix}vu"), None, &format!("{subnet}.9"));
        enclave
    }

    /// A veth from the hub's bridge into `ns` (or the host) with `addr`/24, and loopback up.
    fn link(&self, hub_side: &str, ns: Option<&str>, addr: &str) {
        let hub = format!("{}hub", self.prefix);
        let inner = format!("{hub_side}i");
        sh(&["ip", "link", "add", hub_side, "type", "veth", "peer", "name", &inner]);
        sh(&["ip", "link", "set", hub_side, "netns", &hub]);
        sh(&["ip", "-n", &hub, "link", "set", hub_side, "master", "br0", "up"]);
        let cidr = format!("{addr}/24");
        match ns {
            Some(ns) => {
                sh(&["ip", "link", "set", &inner, "netns", ns]);
                sh(&["ip", "-n", ns, "addr", "add", &cidr, "dev", &inner]);
                sh(&["ip", "-n", ns, "link", "set", &inner, "up"]);
                sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            }
            None => {
                sh(&["ip", "addr", "add", &cidr, "dev", &inner]);
                sh(&["ip", "link", "set", &inner, "up"]);
            }
        }
    }

    /// The runner's bridge (`--network-bridge`), inside the runner's namespace.
    fn env_bridge(&self) -> String {
        format!("{}e", self.prefix)
    }

    /// The runner's environments' subnet (`--network-subnet`), inside the runner's namespace.
    fn env_subnet(&self) -> String {
        format!("10.214.{}.0/24", self.subnet.rsplit('.').next().unwrap())
    }

    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn addr(&self, host: u8) -> String {
        format!("{}.{host}", self.subnet)
    }

    /// `airlock ARGS` in namespace `name`'s network only (`ip netns exec` would also remount
    /// /sys, hiding the cgroup hierarchy runc needs).
    fn airlock(&self, name: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ns(name))).args(["--", env!("CARGO_BIN_EXE_airlock")]);
        cmd
    }

    fn outside_packets(&self, name: &str) -> u64 {
        let out = Command::new("ip").args(["netns", "exec", &self.ns(name), "nft", "-j", "list", "counter", "inet", "egress", "outside"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("nft: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["nftables"].as_array().unwrap().iter().find_map(|e| e["counter"]["packets"].as_u64()).expect("the counter")
    }
}

impl Drop for Enclave {
    fn drop(&mut self) {
        // Environments' namespaces the runner made (named after its bridge).
        for entry in std::fs::read_dir("/run/netns").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{}e-", self.prefix)) {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
        for ns in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &format!("{}vui", self.prefix)]).status();
    }
}

/// Children killed when the test ends, in whatever way it ends.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Environments outlive their runner: remove whatever one left behind.
struct Leftovers(std::path::PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let mut opts = airlock_runner::engine::EngineOptions::new(&self.0);
        opts.uid_base = 5_000_000;
        if let Ok(engine) = airlock_runner::engine::Engine::open(opts) {
            for env in engine.list().unwrap_or_default() {
                let _ = engine.delete(&env.id);
            }
        }
    }
}

fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    line.trim().to_string()
}

#[test]
fn mirror_control_plane_and_runner_in_separate_namespaces_send_nothing_outside() {
    let _alone = ONE_RUNNER_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let sample = Sample::new();
    let bundle = sample.create("sample", &[]);
    let dir = tempfile::tempdir().unwrap();
    let net = Enclave::new();
    // Dropped after the runner is killed (reverse order), so its engine lock is free.
    let runner_data = dir.path().join("runner");
    let _leftovers = Leftovers(runner_data.clone());
    let mut children = Children(Vec::new());
    let (mirror_addr, cp_addr, runner_addr) = (net.addr(1), net.addr(2), net.addr(3));

    // Mirror: import, then serve inside its namespace.
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(dir.path().join("mirror")));
    let mut mirror = net.airlock("m").args(["mirror", "serve", "--listen", &format!("{mirror_addr}:5000"), "--data-dir"]).arg(dir.path().join("mirror")).stdout(Stdio::piped()).spawn().unwrap();
    assert!(first_line(&mut mirror).contains("listening"));
    children.0.push(mirror);

    // Control plane with a site certificate for its address (plain HTTP is loopback-only).
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![cp_addr.clone()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(dir.path().join("cp.crt"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("cp.key"), leaf_key.serialize_pem()).unwrap();
    ok(airlock().args(["control-plane", "gen-kek", "--out"]).arg(dir.path().join("kek")));
    let init = ok(airlock().args(["admin", "init", "--org", "acme", "--owner", "owner@acme.internal", "--data-dir"]).arg(dir.path().join("cp")));
    let token = String::from_utf8_lossy(&init.stdout).trim().to_string();
    let mut cp = net
        .airlock("c")
        .args(["control-plane", "serve", "--listen", &format!("{cp_addr}:8443"), "--data-dir"])
        .arg(dir.path().join("cp"))
        .arg("--kek-file").arg(dir.path().join("kek"))
        .arg("--tls-cert").arg(dir.path().join("cp.crt"))
        .arg("--tls-key").arg(dir.path().join("cp.key"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = first_line(&mut cp).strip_prefix("listening on ").unwrap().to_string();
    children.0.push(cp);
    let api = Client::new(&url, Some(token.clone()), Some(&ca_file)).unwrap();
    let call = |m: Method, p: &str, b: Option<&Value>| api.call(m, p, &[], b).unwrap_or_else(|e| panic!("{p}: {e}"));

    let class = call(Method::POST, "/api/v1/classes", Some(&json!({"name": "small", "resources": {"cpu_millis": 500, "memory_mib": 128, "disk_gib": 1, "pids": 64}})));
    let image = format!("{mirror_addr}:5000/devcontainers/base:tiny");
    let inside = call(Method::POST, "/api/v1/projects", Some(&json!({"name": "inside", "repository_url": "", "image": image, "class_id": class["id"]})));
    let outside = call(Method::POST, "/api/v1/projects", Some(&json!({"name": "outside", "repository_url": "https://192.0.2.10/example/repo.git", "image": image, "class_id": class["id"]})));
    // Narrowed to the mirror (within the site's list), and one asking for more than the site allows.
    let narrowed = json!({"allow": [format!("{mirror_addr}:5000")]});
    let inside = call(Method::PATCH, &format!("/api/v1/projects/{}", inside["id"].as_str().unwrap()), Some(&json!({"network": narrowed})));
    let wider = call(Method::POST, "/api/v1/projects", Some(&json!({"name": "wider", "repository_url": "", "image": image, "class_id": class["id"], "network": {"allow": [format!("{cp_addr}:8443")]}})));
    let key = dir.path().join("id_ed25519");
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    call(Method::POST, "/api/v1/ssh-keys", Some(&json!({"name": "laptop", "public_key": public.trim()})));
    let runner = call(Method::POST, "/api/v1/runners", Some(&json!({"name": "rack-1", "capacity": 4})));

    // Runner in its own namespace: allowed to reach the enclave's subnet only; its
    // environments get their own network, allowed to reach the mirror only.

    let mut run = net
        .airlock("r")
        .args(["runner", "--control-plane", &url, "--token", runner["exchange_token"].as_str().unwrap()])
        .arg("--ca-cert").arg(&ca_file)
        .args(["--plain-http-registry", &format!("{mirror_addr}:5000"), "--ssh-listen", &format!("{runner_addr}:2222")])
        .args(["--egress-allow", &format!("{}.0/24", net.subnet), "--uid-base", "5000000", "--poll-interval", "300ms"])
        .args(["--network", "--network-bridge", &net.env_bridge(), "--network-subnet", &net.env_subnet(), "--network-no-services"])
        .args(["--network-allow", &format!("{mirror_addr}:5000"), "--network-host", &format!("mirror.enclave={mirror_addr}"), "--data-dir"])
        .arg(&runner_data)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("runner.log")).unwrap())
        .spawn()
        .unwrap();
    assert!(first_line(&mut run).starts_with("runner ssh gateway listening"), "{}", std::fs::read_to_string(dir.path().join("runner.log")).unwrap());
    children.0.push(run);

    let wait = |id: &str, phase: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = call(Method::GET, &format!("/api/v1/environments/{id}"), None);
            if v["phase"] == phase {
                return v;
            }
            assert!(Instant::now() < deadline, "{id} did not become {phase}: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let runner_id = runner["runner"]["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(Method::GET, &format!("/api/v1/runners/{runner_id}"), None)["phase"] != "active" {
        assert!(Instant::now() < deadline, "the runner never heartbeated across the namespaces");
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = call(Method::POST, "/api/v1/environments", Some(&json!({"project_id": inside["id"]})));
    let env = env["id"].as_str().unwrap().to_string();
    wait(&env, "running");
    let ssh_dir = dir.path().join("ssh");
    ok(airlock().args(["ssh-config", "--url", &url, "--token", &token, "--dir"]).arg(&ssh_dir).arg("--identity-file").arg(&key).arg("--ca-cert").arg(&ca_file));
    // From inside the environment: the mirror (allowed, by the name the runner's hosts give)
    // answers; an outside address is refused by the policy (and so never leaves: counted below).
    // wget for the mirror: busybox's nc exits at the end of its input, racing the answer
    // (and `timeout`: busybox 1.35's wget -T crashes).
    let inside_cmd = "id -u; ls /sys/class/net | tr '\\n' ' '; echo; timeout 3 wget -q -O - http://mirror.enclave:5000/v2/ && echo; \
                      echo | nc -w 2 192.0.2.10 443 || echo outside-refused";
    let out = Command::new("ssh").arg("-F").arg(ssh_dir.join("config")).args(["-o", "BatchMode=yes", &format!("{env}.airlock.environment"), inside_cmd]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("0"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines.get(1).map(|l| l.trim()), Some("eth0 lo"), "{stdout}");
    assert_eq!(lines.get(2), Some(&"{}"), "the mirror did not answer the environment: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines.last().copied(), Some("outside-refused"), "{stdout}");

    // Negative control: a destination outside is refused by the guard, named, and audited.
    let bad = call(Method::POST, "/api/v1/environments", Some(&json!({"project_id": outside["id"]})));
    let bad = bad["id"].as_str().unwrap().to_string();
    let failed = wait(&bad, "failed");
    assert!(failed["failure_reason"].as_str().unwrap().contains("egress.allow"), "{failed}");
    let audit = std::fs::read_to_string(runner_data.join("runner/egress-audit.jsonl")).unwrap();
    assert!(audit.contains("192.0.2.10"), "{audit}");
    // The project's list travels to the runner, which refuses what its site list does not cover.
    let too_wide = call(Method::POST, "/api/v1/environments", Some(&json!({"project_id": wider["id"]})));
    let too_wide = too_wide["id"].as_str().unwrap().to_string();
    let failed = wait(&too_wide, "failed");
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.contains(&format!("`{cp_addr}:8443`")) && reason.contains("runner.network.allow"), "{failed}");

    for name in ["m", "c", "r"] {
        assert_eq!(net.outside_packets(name), 0, "namespace {name} sent packets outside the enclave");
    }
    // The measure itself works: one datagram sent on purpose to an outside address (over a
    // route added just for this check) is counted.
    sh(&["ip", "-n", &net.ns("m"), "route", "add", "default", "via", &net.addr(9)]);
    let _ = Command::new("ip").args(["netns", "exec", &net.ns("m"), "bash", "-c", "echo x > /dev/udp/192.0.2.1/9"]).status();
    assert!(net.outside_packets("m") >= 1, "the outside-packet counter counts nothing");
    for id in [&env, &bad, &too_wide] {
        call(Method::DELETE, &format!("/api/v1/environments/{id}"), None);
        wait(id, "deleted");
    }
}
