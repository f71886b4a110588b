//! An environment's network under the runner's policy, with real runc, real network
//! namespaces, veths, a bridge and nftables: the allowed destination (a TCP server in a "site"
//! namespace this test makes, reached through the bridge and the host's routing) answers;
//! another port and address there, the runner host, another environment and the metadata
//! address are refused, counted and remembered; names come from the configured hosts; root
//! inside cannot lift the policy; and nothing is left behind.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;

use airlock_runner::network::{AllowEntry, Ipv4Net, NetworkConfig, Proto, Refusal};
use support::site::{sh_ok, NetworkGuard, Site};
use support::{run, run_ok, spec, test_image, EnvGuard, Registry, TestEngine};

/// A listener created inside network namespace `netns` (a socket stays in the namespace it
/// was made in), answering every HTTP request with a greeting naming its address.
fn serve_in(netns: Option<&Path>, addr: SocketAddr) -> SocketAddr {
    let netns = netns.map(Path::to_path_buf);
    let listener = std::thread::spawn(move || {
        if let Some(netns) = netns {
            let file = std::fs::File::open(&netns).unwrap();
            // SAFETY: a valid namespace descriptor; only this short-lived thread moves.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {}", netns.display());
        }
        TcpListener::bind(addr).unwrap()
    })
    .join()
    .unwrap();
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            // The request's first read is enough: the answer does not depend on it.
            let _ = stream.read(&mut [0; 1024]);
            let body = format!("hello from {local}\n");
            let _ = stream.write_all(format!("HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    local
}

fn config(bridge: &str, subnet: &str, allow: &[String]) -> NetworkConfig {
    let mut cfg = NetworkConfig::new(bridge, Ipv4Net::parse(subnet).unwrap());
    cfg.allow = allow.iter().map(|a| AllowEntry::parse(a).unwrap()).collect();
    cfg
}

/// Output of an HTTP GET from inside the environment (an error, not a greeting, when
/// refused). wget, not `nc`: busybox's nc exits at its input's end, racing the answer; `timeout`, not
/// wget's `-T`, which crashes busybox 1.35.
fn connect_from(engine: &airlock_runner::engine::Engine, env: &str, addr: SocketAddr) -> String {
    let (_, out, _) = run(engine, env, &format!("{} 2>&1", http_get(&addr.to_string())));
    out
}

/// The shell command inside an environment that fetches `http://HOST:PORT/` (2 s timeout).
fn http_get(host_port: &str) -> String {
    format!("timeout 2 wget -q -O - http://{host_port}/")
}

/// What must be gone after the environments and the runner's network are removed.
fn assert_nothing_left(bridge: &str, envs: &[&str]) {
    let links = sh_ok("ip -o link show");
    assert!(!links.contains(&format!("{bridge}v")) && !links.contains(&format!(" {bridge}:")), "veth or bridge left:\n{links}");
    let tables = sh_ok("nft list tables");
    assert!(!tables.contains(&format!(" {bridge}\n")) && !tables.ends_with(&format!(" {bridge}")), "nft table left:\n{tables}");
    for env in envs {
        assert!(!Path::new(&format!("/run/netns/{bridge}-{env}")).exists(), "netns of {env} left");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("/run/netns/{bridge}-")), "netns mount left:\n{mounts}");
}

#[test]
fn an_environment_reaches_the_allowed_destination_and_nothing_else() {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "net/test:1");
    let site = Site::new("alnet1site", "10.231.1.0/29");
    let allowed = serve_in(Some(&site.netns()), SocketAddr::from((site.addr(2), 8080)));
    let other_port = serve_in(Some(&site.netns()), SocketAddr::from((site.addr(2), 8081)));
    let other_host = serve_in(Some(&site.netns()), SocketAddr::from((site.addr(3), 8080)));
    let host_side = serve_in(None, SocketAddr::from((site.addr(1), 0)));
    let (bridge, subnet) = ("alnet1", "10.231.64.0/24");

    let mut cfg = config(bridge, subnet, &[allowed.to_string(), "site.test:8080".into()]);
    cfg.hosts = vec![("site.test".into(), site.addr(2).to_string()), ("registry-1.docker.io".into(), site.addr(2).to_string())];
    cfg.dns = vec![site.addr(3)];
    let t = TestEngine::with(&registry.addr, |o| o.network = Some(cfg));
    let _network = NetworkGuard(&t.engine);
    // The bridge (made by the engine) holds the gateway address: a server of the host's there.
    let gateway = serve_in(None, SocketAddr::from((Ipv4Addr::new(10, 231, 64, 1), 0)));
    {
        let guard = EnvGuard::new(&t.engine);
        let (a, b) = ("env_neta", "env_netb");
        guard.start(&spec(a, &image));
        guard.start(&spec(b, &image));
        let addr_b = t.engine.network_address(b).unwrap().unwrap();
        assert!(Ipv4Net::parse(subnet).unwrap().contains(addr_b));

        // Allowed: answers, by address and by a name from the configured hosts.
        assert_eq!(connect_from(&t.engine, a, allowed).trim(), format!("hello from {allowed}"));
        assert_eq!(run_ok(&t.engine, a, &http_get("site.test:8080")), format!("hello from {allowed}"));
        let hosts = run_ok(&t.engine, a, "cat /etc/hosts");
        assert!(hosts.contains(&format!("{}\tregistry-1.docker.io", site.addr(2))), "{hosts}");
        assert_eq!(run_ok(&t.engine, a, "cat /etc/resolv.conf"), format!("nameserver {}", site.addr(3)));

        // Refused: another port and another address of the site, the runner host (the bridge's
        // address and its other addresses), another environment, the metadata address.
        run_ok(&t.engine, b, "nc -l -p 9000 -e echo from-b </dev/null >/dev/null 2>&1 & echo started");
        let env_b = SocketAddr::from((addr_b, 9000));
        let metadata = SocketAddr::from(([169, 254, 169, 254], 80));
        for refused in [other_port, other_host, host_side, gateway, env_b, metadata] {
            let out = connect_from(&t.engine, a, refused);
            assert!(!out.contains("hello") && !out.contains("from-b"), "{refused} answered: {out}");
        }
        let refusals = t.engine.network_refusals(a).unwrap();
        assert!(refusals.count >= 6, "{refusals:?}");
        for refused in [other_port, other_host, host_side, gateway, env_b, metadata] {
            assert!(refusals.destinations.contains(&Refusal { destination: refused, proto: Proto::Tcp }), "{refused} not remembered: {refusals:?}");
        }
        assert!(!refusals.destinations.iter().any(|r| r.destination == allowed), "{refusals:?}");
        assert_eq!(t.engine.network_refusals(b).unwrap().count, 0, "B refused nothing");
        let counts = t.engine.network_refusal_counts().unwrap();
        assert!(counts.contains(&(a.to_string(), refusals.count)) && counts.contains(&(b.to_string(), 0)), "{counts:?}");

        // Root inside cannot lift the policy: the interface, routes and rules are not its own.
        for attempt in ["ip link set eth0 down", "ip route del default", "ip addr add 10.231.1.2/29 dev eth0", "ip link set eth0 promisc on"] {
            let (code, _, err) = run(&t.engine, a, attempt);
            assert_ne!(code, 0, "`{attempt}` succeeded as root inside");
            assert!(err.to_lowercase().contains("not permitted") || err.to_lowercase().contains("permission"), "{attempt}: {err}");
        }
        assert_eq!(connect_from(&t.engine, a, allowed).trim(), format!("hello from {allowed}"), "connectivity stays");

        // Stop takes the network down; start brings it back.
        t.engine.stop(a).unwrap();
        assert!(!Path::new(&format!("/run/netns/{bridge}-{a}")).exists());
        assert!(!sh_ok("ip -o link show").contains(&format!("{bridge}v0:")));
        guard.start(&spec(a, &image));
        assert_eq!(connect_from(&t.engine, a, allowed).trim(), format!("hello from {allowed}"));
    }
    t.engine.remove_network().unwrap();
    assert_nothing_left(bridge, &["env_neta", "env_netb"]);
}

#[test]
fn a_project_narrows_the_site_list_and_cannot_widen_it() {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "net/test:1");
    let site = Site::new("alnet2site", "10.231.2.0/29");
    let first = serve_in(Some(&site.netns()), SocketAddr::from((site.addr(2), 8080)));
    let second = serve_in(Some(&site.netns()), SocketAddr::from((site.addr(3), 8080)));
    let bridge = "alnet2";
    let t = TestEngine::with(&registry.addr, |o| o.network = Some(config(bridge, "10.231.65.0/24", &["10.231.2.0/29:8080".to_string()])));
    let _network = NetworkGuard(&t.engine);
    {
        let guard = EnvGuard::new(&t.engine);
        let mut narrowed = spec("env_narrow", &image);
        narrowed.network_allow = Some(vec![first.to_string()]);
        guard.start(&narrowed);
        assert_eq!(connect_from(&t.engine, "env_narrow", first).trim(), format!("hello from {first}"));
        assert!(!connect_from(&t.engine, "env_narrow", second).contains("hello"), "outside the project's list");

        let mut wider = spec("env_wider", &image);
        wider.network_allow = Some(vec!["10.231.2.0/24:8080".into()]);
        guard.track("env_wider");
        let err = t.engine.start(&wider, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("10.231.2.0/24:8080") && err.contains("runner.network.allow") && err.contains("env_wider"), "{err}");
        assert!(!Path::new(&format!("/run/netns/{bridge}-env_wider")).exists(), "a refused start leaves no namespace");
    }
    t.engine.remove_network().unwrap();
    assert_nothing_left(bridge, &["env_narrow", "env_wider"]);
}

#[test]
fn a_reopened_engine_keeps_running_environments_policy_and_removes_leftovers() {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "net/test:1");
    let site = Site::new("alnet3site", "10.231.3.0/29");
    let allowed = serve_in(Some(&site.netns()), SocketAddr::from((site.addr(2), 8080)));
    let bridge = "alnet3";
    let cfg = config(bridge, "10.231.66.0/24", &[allowed.to_string()]);
    let t = TestEngine::with(&registry.addr, |o| o.network = Some(cfg.clone()));
    let started = t.engine.start(&spec("env_keep", &image), &mut |_| {});
    let opts = t.opts.clone();
    // The runner goes away (environments keep running); a runner that died mid-create left a
    // namespace no environment owns.
    drop(t.engine);
    sh_ok(&format!("ip netns add {bridge}-env_ghost"));
    let engine = airlock_runner::engine::Engine::open(opts).unwrap();
    let _network = NetworkGuard(&engine);
    let guard = EnvGuard::new(&engine);
    guard.track("env_keep");
    started.unwrap();
    assert!(!Path::new(&format!("/run/netns/{bridge}-env_ghost")).exists(), "leftover namespace removed");
    assert_eq!(connect_from(&engine, "env_keep", allowed).trim(), format!("hello from {allowed}"), "policy kept");
    let metadata = SocketAddr::from(([169, 254, 169, 254], 80));
    assert!(!connect_from(&engine, "env_keep", metadata).contains("hello"));
    assert!(engine.network_refusals("env_keep").unwrap().count >= 1);
    engine.delete("env_keep").unwrap();
    engine.remove_network().unwrap();
    assert_nothing_left(bridge, &["env_keep", "env_ghost"]);
}
