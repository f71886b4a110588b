//! The OCI runtime spec (`config.json`) of an environment, and the process spec of an exec.
//!
//! Isolation: new user (the environment's 65536-id range, root inside = first host id of
//! it), pid, mount, network (`lo`, which runc brings up, and with a runner network an `eth0`
//! the runner adds from outside, see `network.rs`), ipc, uts and cgroup namespaces;
//! `noNewPrivileges`; Docker's default capability set without `NET_RAW` and `MKNOD`; runc's
//! default masked and read-only paths; a seccomp allow-list (`seccomp.toml`: everything
//! unlisted fails with EPERM, namespaces and mounts included); cgroup limits from the
//! environment's resources.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ids::RANGE;

/// Limits of one environment; 0 means "no limit" for that resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU time per wall second, in thousandths of a core (1500 = 1.5 cores): a CFS quota.
    pub cpu_millis: u32,
    /// Memory limit (swap included where the kernel accounts it).
    pub memory_mib: u32,
    /// Most processes and threads at once.
    pub pids: u32,
}

/// Docker's default capabilities minus NET_RAW (raw and packet sockets: of no use on a
/// loopback-only network, and a recurring kernel attack surface) and MKNOD (device nodes).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// runc's defaults (`runc spec`).
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];
const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

pub const CPU_PERIOD_US: u64 = 100_000;

/// What varies between environments.
pub(crate) struct SpecInput<'a> {
    pub(crate) id: &'a str,
    pub(crate) hostname: &'a str,
    pub(crate) rootfs: &'a Path,
    pub(crate) workspace: &'a Path,
    pub(crate) host_uid: u32,
    pub(crate) resources: &'a Resources,
    /// `KEY=value`, secrets included: this document lives on the environment's tmpfs only.
    pub(crate) env: &'a [String],
    pub(crate) args: &'a [String],
    /// (file on the tmpfs, absolute path in the container)
    pub(crate) secret_mounts: &'a [(String, String)],
    /// Names of the IDE mounts prepared at `<env dir>/ide/<name>` (ID-mapped, read-only).
    pub(crate) ide_mounts: &'a [String],
    pub(crate) cgroups_path: &'a str,
    /// With a runner network (`network.rs`): the files bound read-only over `/etc/hosts` and
    /// `/etc/resolv.conf`, (file on the tmpfs, path in the container).
    pub(crate) network_files: &'a [(String, String)],
    /// Whether the memory controller accounts swap (cgroup v1 `memory.memsw.*`).
    pub(crate) swap_accounting: bool,
    pub(crate) nofile: u64,
}

pub(crate) fn runtime_spec(input: &SpecInput) -> Value {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        json!({"destination": "/workspace", "type": "bind", "source": input.workspace, "options": ["rbind", "rw", "nosuid", "nodev"]}),
    ];
    for (source, destination) in input.secret_mounts {
        mounts.push(json!({"destination": destination, "type": "bind", "source": source, "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
    }
    for (source, destination) in input.network_files {
        mounts.push(json!({"destination": destination, "type": "bind", "source": source, "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
    }
    let env_dir = input.workspace.parent().expect("the workspace is inside the environment folder");
    for name in input.ide_mounts {
        let source = env_dir.join("ide").join(name);
        let destination = format!("{}/{name}", crate::ide::IDE_ROOT);
        mounts.push(json!({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "ro", "nosuid", "nodev"]}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let r = input.resources;
    if r.memory_mib > 0 {
        let bytes = u64::from(r.memory_mib) << 20;
        resources["memory"] = if input.swap_accounting { json!({"limit": bytes, "swap": bytes}) } else { json!({"limit": bytes}) };
    }
    if r.pids > 0 {
        resources["pids"] = json!({"limit": r.pids});
    }
    if r.cpu_millis > 0 {
        resources["cpu"] = json!({"quota": u64::from(r.cpu_millis) * CPU_PERIOD_US / 1000, "period": CPU_PERIOD_US});
    }
    let mapping = json!([{"containerID": 0, "hostID": input.host_uid, "size": RANGE}]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": input.args,
            "env": input.env,
            "cwd": "/",
            "capabilities": capabilities(true),
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": input.nofile, "soft": input.nofile}],
            "noNewPrivileges": true
        },
        "root": {"path": input.rootfs, "readonly": false},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": {
            "uidMappings": mapping,
            "gidMappings": mapping,
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}
            ],
            "resources": resources,
            "cgroupsPath": input.cgroups_path,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            "seccomp": seccomp()
        },
        "annotations": {"io.airlock.environment": input.id}
    })
}

/// The capability sets of a process: the full reduced set for root, only the bounding set
/// for other users (as Docker does), so a non-root user gains nothing by default.
pub(crate) fn capabilities(root: bool) -> Value {
    let none: &[&str] = &[];
    let active = if root { CAPABILITIES } else { none };
    json!({"bounding": CAPABILITIES, "effective": active, "permitted": active, "inheritable": none, "ambient": none})
}

/// The seccomp allow-list, as data: what each group of calls is for is written next to it.
const SECCOMP_PROFILE: &str = include_str!("seccomp.toml");

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SeccompProfile {
    rule: Vec<SeccompRule>,
    #[allow(dead_code)] // not emitted (unlisted is denied): checked by the tests, read by people
    denied: DeniedCalls,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SeccompRule {
    #[allow(dead_code)] // documentation, read by people
    why: String,
    names: Vec<String>,
    /// Answer this error instead of allowing the call.
    errno: Option<String>,
    #[serde(default)]
    args: Vec<SeccompArg>,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct SeccompArg {
    index: u32,
    value: u64,
    #[serde(default, rename(serialize = "valueTwo"))]
    value_two: u64,
    op: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeniedCalls {
    #[allow(dead_code)] // documentation, read by people
    why: String,
    #[allow(dead_code)] // checked by the tests
    names: Vec<String>,
}

fn parse_profile(text: &str) -> Result<SeccompProfile, String> {
    let profile: SeccompProfile = toml::from_str(text).map_err(|e| e.to_string())?;
    for rule in &profile.rule {
        if let Some(errno) = &rule.errno {
            errno_number(errno)?;
        }
        for arg in &rule.args {
            const OPS: &[&str] = &["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"];
            if !OPS.contains(&arg.op.as_str()) || arg.index > 5 {
                return Err(format!("rule for {:?}: argument filter {arg:?} is not a valid OCI seccomp filter", rule.names));
            }
        }
    }
    Ok(profile)
}

fn errno_number(name: &str) -> Result<i32, String> {
    match name {
        "EPERM" => Ok(libc::EPERM),
        "ENOSYS" => Ok(libc::ENOSYS),
        other => Err(format!("errno `{other}` is not one the profile uses (EPERM, ENOSYS)")),
    }
}

/// `linux.seccomp`: EPERM for anything not allowed by `seccomp.toml`. Built once.
fn seccomp() -> Value {
    static BUILT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let profile = parse_profile(SECCOMP_PROFILE).unwrap_or_else(|e| panic!("crates/airlock-runner/src/seccomp.toml: {e}"));
            let syscalls: Vec<Value> = profile
                .rule
                .iter()
                .map(|rule| {
                    let mut entry = match &rule.errno {
                        Some(errno) => json!({"names": rule.names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno_number(errno).expect("checked by parse_profile")}),
                        None => json!({"names": rule.names, "action": "SCMP_ACT_ALLOW"}),
                    };
                    if !rule.args.is_empty() {
                        entry["args"] = json!(rule.args);
                    }
                    entry
                })
                .collect();
            let architectures: &[&str] = match std::env::consts::ARCH {
                "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                _ => &[],
            };
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": libc::EPERM,
                "architectures": architectures,
                "syscalls": syscalls
            })
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_maps_ids_limits_and_isolates() {
        let resources = Resources { cpu_millis: 1500, memory_mib: 512, pids: 300 };
        let spec = runtime_spec(&SpecInput {
            id: "env_a",
            hostname: "env-a",
            rootfs: Path::new("/d/envs/env_a/rootfs"),
            workspace: Path::new("/d/envs/env_a/workspace"),
            host_uid: 1_065_536,
            resources: &resources,
            env: &["PATH=/bin".into()],
            args: &["/bin/sh".into()],
            secret_mounts: &[("/d/envs/env_a/run/secrets/0".into(), "/run/secrets/db".into())],
            ide_mounts: &["vscode-server-abc".into()],
            cgroups_path: "/airlock/env_a",
            network_files: &[],
            swap_accounting: true,
            nofile: 1024,
        });
        assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], 1_065_536);
        assert_eq!(spec["linux"]["gidMappings"][0]["size"], 65536);
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 512u64 << 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 300);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        let ide = spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/opt/airlock/ide/vscode-server-abc").unwrap();
        assert_eq!(ide["source"], "/d/envs/env_a/ide/vscode-server-abc");
        assert!(ide["options"].as_array().unwrap().iter().any(|o| o == "ro"), "{ide}");
        let caps = spec["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps.iter().any(|c| c == "CAP_NET_RAW" || c == "CAP_MKNOD" || c == "CAP_SYS_ADMIN"));
        let ns: Vec<&str> = spec["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        for wanted in ["pid", "network", "ipc", "uts", "mount", "user"] {
            assert!(ns.contains(&wanted), "{wanted}");
        }
        let secret = spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/run/secrets/db").unwrap();
        assert!(secret["options"].as_array().unwrap().iter().any(|o| o == "ro"));
    }

    #[test]
    fn the_seccomp_profile_is_an_allow_list_with_namespaces_and_mounts_left_out() {
        let profile = parse_profile(SECCOMP_PROFILE).unwrap();
        let mut allowed = std::collections::HashMap::new();
        for rule in &profile.rule {
            for name in &rule.names {
                // One name in several rules only as alternatives on its arguments (personality).
                let earlier = allowed.insert(name.as_str(), !rule.args.is_empty());
                assert!(earlier.is_none() || (earlier == Some(true) && !rule.args.is_empty()), "{name} is listed twice");
            }
        }
        let mut denied = std::collections::HashSet::new();
        for name in &profile.denied.names {
            assert!(denied.insert(name.as_str()), "{name} is denied twice");
            assert!(!allowed.contains_key(name.as_str()), "{name} is both allowed and denied");
        }
        let seccomp = seccomp();
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(seccomp["defaultErrnoRet"], libc::EPERM);
        let rules = seccomp["syscalls"].as_array().unwrap();
        let with = |name: &str| rules.iter().filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name)).collect::<Vec<_>>();
        let clone = with("clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"], json!([{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]));
        let clone3 = with("clone3");
        assert_eq!((clone3[0]["action"].as_str(), clone3[0]["errnoRet"].as_i64()), (Some("SCMP_ACT_ERRNO"), Some(libc::ENOSYS as i64)));
        for name in ["unshare", "setns", "mount", "pivot_root", "fsopen", "fsmount", "move_mount", "open_tree", "keyctl", "bpf"] {
            assert!(with(name).is_empty() && denied.contains(name), "{name}");
        }
    }

    /// runc skips a name libseccomp does not know (the call then stays denied, silently): every
    /// name must be one the libseccomp runc links resolves, on an architecture the profile
    /// covers; the calls the profile exists to filter must exist on both x86_64 and aarch64.
    #[test]
    fn every_seccomp_name_is_a_system_call_libseccomp_knows() {
        type Resolve = unsafe extern "C" fn(u32, *const libc::c_char) -> libc::c_int;
        // SAFETY: dlopen/dlsym with NUL-terminated names; the symbol has this C signature
        // (seccomp.h: int seccomp_syscall_resolve_name_arch(uint32_t, const char *)).
        let resolve: Resolve = unsafe {
            let lib = libc::dlopen(c"libseccomp.so.2".as_ptr(), libc::RTLD_NOW);
            assert!(!lib.is_null(), "libseccomp.so.2 is missing: install libseccomp2 (runc needs it)");
            let sym = libc::dlsym(lib, c"seccomp_syscall_resolve_name_arch".as_ptr());
            assert!(!sym.is_null());
            std::mem::transmute::<*mut libc::c_void, Resolve>(sym)
        };
        // SCMP_ARCH_* tokens (the audit architectures).
        const X86_64: u32 = 0xC000_003E;
        const AARCH64: u32 = 0xC000_00B7;
        const ARCHES: [u32; 5] = [X86_64, 0x4000_0003 /* x86 */, 0x4000_003E /* x32 */, AARCH64, 0x4000_0028 /* arm */];
        let known = |arch: u32, name: &str| {
            let c = std::ffi::CString::new(name).unwrap();
            // SAFETY: a valid C string; negative answers are "unknown" or pseudo-calls.
            unsafe { resolve(arch, c.as_ptr()) >= 0 }
        };
        let profile = parse_profile(SECCOMP_PROFILE).unwrap();
        let names = profile.rule.iter().flat_map(|r| &r.names).chain(&profile.denied.names);
        let unknown: Vec<&String> = names.filter(|n| !ARCHES.iter().any(|&a| known(a, n))).collect();
        assert!(unknown.is_empty(), "not system calls libseccomp knows: {unknown:?}");
        for name in [
            "clone", "clone3", "unshare", "setns", "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
            "open_tree", "mount_setattr", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
            "socket", "personality", "ptrace", "execve", "openat", "futex",
        ] {
            assert!(known(X86_64, name) && known(AARCH64, name), "{name} on x86_64 and aarch64");
        }
    }

}
