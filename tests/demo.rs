//! `airlock demo` does the developer's day and cleans up after itself: a demo without `--keep`
//! leaves nothing behind (files, mounts, its git server's namespace, the runner's network), and
//! `--keep` prints how to go on and a `--stop` command that ends environments, server, mounts
//! and files — even when the server was killed in the meantime.

mod common;

use std::path::Path;

use common::{airlock, fails, ok, stdout};

/// Ends a kept demo if the test stops before its own `--stop` did.
struct KeptDemo<'a>(&'a Path);

impl Drop for KeptDemo<'_> {
    fn drop(&mut self) {
        if self.0.join("demo-state.json").exists() {
            let _ = airlock().args(["demo", "--stop", "--dir"]).arg(self.0).output();
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

/// Processes whose command line names `dir` (the server, runc containers' shims…).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok().map(|c| (e.file_name(), c)))
        .filter(|(_, c)| c.windows(needle.len()).any(|w| w == needle))
        .map(|(pid, c)| format!("{}: {}", pid.to_string_lossy(), String::from_utf8_lossy(&c).replace('\0', " ")))
        .collect()
}

fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find_map(|l| l.trim().strip_prefix(prefix)).unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
}

fn server_pid(dir: &Path) -> i32 {
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("demo-state.json")).unwrap()).unwrap();
    state["server_pid"].as_i64().unwrap() as i32
}

/// Runs `demo --keep`, checks what it printed works, and returns the stop command's arguments
/// and the site network's names.
fn keep(dir: &Path) -> (String, (String, String, String)) {
    let out = stdout(&ok(airlock().args(["demo", "--keep", "--dir"]).arg(dir)));
    // The export line is ready to paste, and the admin CLI works with it.
    let export = line_after(&out, "export ");
    let (url, token) = export.split_once(' ').unwrap();
    let url = url.strip_prefix("AIRLOCK_URL=").unwrap();
    let token = token.strip_prefix("AIRLOCK_TOKEN=").unwrap();
    let listed = stdout(&ok(airlock().args(["admin", "environments", "list"]).env("AIRLOCK_URL", url).env("AIRLOCK_TOKEN", token)));
    assert!(listed.contains("running"), "{listed}");
    assert!(!mounts_under(dir).is_empty(), "a running environment has mounts under the demo's folder");
    let stop = out.lines().last().unwrap().trim().to_string();
    assert!(stop.ends_with(&format!("demo --stop --dir {}", dir.display())), "{out}");
    (stop, site_names(&out))
}

/// The demo's site network named in its output: (git namespace, runner bridge, git veth).
fn site_names(out: &str) -> (String, String, String) {
    let netns = out.split("(network namespace ").nth(1).and_then(|r| r.split(')').next()).unwrap_or_else(|| panic!("no namespace in:\n{out}"));
    let pid = netns.rsplit('-').next().unwrap();
    (netns.to_string(), format!("adb{pid}"), format!("adg{pid}"))
}

/// The git server's namespace, its veth, the runner's bridge and its nftables tables are gone.
fn assert_site_gone((netns, bridge, veth): &(String, String, String)) {
    let namespaces = String::from_utf8_lossy(&std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!namespaces.lines().any(|l| l.split_whitespace().next() == Some(netns.as_str())), "{netns} is left: {namespaces}");
    for link in [bridge, veth] {
        assert!(!std::process::Command::new("ip").args(["link", "show", link]).output().unwrap().status.success(), "{link} is left");
    }
    let tables = String::from_utf8_lossy(&std::process::Command::new("nft").args(["list", "tables"]).output().unwrap().stdout).into_owned();
    assert!(!tables.lines().any(|l| l.ends_with(&format!(" {bridge}"))), "nftables tables of {bridge} are left: {tables}");
}

fn assert_gone(dir: &Path) {
    assert!(!dir.exists(), "{} is left", dir.display());
    assert_eq!(mounts_under(dir), Vec::<String>::new(), "mounts are left");
    assert_eq!(processes_naming(dir), Vec::<String>::new(), "processes are left");
}

#[test]
fn stop_ends_a_kept_demo_entirely() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let _guard = KeptDemo(&dir);
    let (_, site) = keep(&dir);
    let out = stdout(&ok(airlock().args(["demo", "--stop", "--dir"]).arg(&dir)));
    assert!(out.contains("removed the folder"), "{out}");
    assert_gone(&dir);
    assert_site_gone(&site);
}

#[test]
fn stop_ends_a_kept_demo_whose_server_was_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let _guard = KeptDemo(&dir);
    let (_, site) = keep(&dir);
    // `kill PID` (or a reboot of the server alone) leaves the environments behind by design.
    let pid = server_pid(&dir);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    airlock_testkit::wait_until("the killed server to be gone", std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
    });
    assert!(!mounts_under(&dir).is_empty(), "the environment outlives its server");
    let out = stdout(&ok(airlock().args(["demo", "--stop", "--dir"]).arg(&dir)));
    assert!(out.contains("starting it again"), "{out}");
    assert_gone(&dir);
    assert_site_gone(&site);
}

#[test]
fn a_demo_without_keep_leaves_nothing_in_its_temporary_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stdout(&ok(airlock().arg("demo").env("TMPDIR", tmp.path())));
    assert!(out.contains("hello from the demo task"), "{out}");
    // The repository's devcontainer.json applied: its feature installed `hello`, which its
    // postCreateCommand ran; and a commit made inside reached the git server as the owner.
    assert!(out.contains("hello, from a devcontainer feature"), "{out}");
    let head = line_after(&out, "the git server's main is now: ");
    assert!(head.ends_with("admin@airlock.internal <admin@airlock.internal> A change made inside the environment"), "{head}");
    assert!(!out.contains('\x1b'), "no colour codes into a pipe: {out:?}");
    assert_site_gone(&site_names(&out));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "the demo left {left:?}");
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

#[test]
fn stop_refuses_a_folder_that_is_not_a_demo() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "keep me").unwrap();
    let err = fails(airlock().args(["demo", "--stop", "--dir"]).arg(tmp.path()));
    assert!(err.contains("is not a running demo's folder") && err.contains("demo-state.json"), "{err}");
    assert_eq!(std::fs::read_to_string(tmp.path().join("precious.txt")).unwrap(), "keep me");
}
