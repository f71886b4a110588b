//! The OCI runtime spec (`config.json`) of an environment, and the process spec of an exec.
//!
//! Isolation: new user (the environment's 65536-id range, root inside = first host id of
//! it), pid, mount, network (only `lo`, which runc brings up), ipc, uts and cgroup namespaces;
//! `noNewPrivileges`; Docker's default capability set without `NET_RAW` and `MKNOD`; runc's
//! default masked and read-only paths; a seccomp deny list for kernel interfaces a dev
//! environment has no use for; cgroup limits from the environment's resources.

use std::path::Path;

use serde_json::{json, Value};

use crate::engine::Resources;
use crate::ids::RANGE;

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

/// Syscalls refused with EPERM: kernel keyrings (not namespaced), BPF, perf, userfaultfd and
/// io_uring (frequent exploit primitives), and interfaces already useless in a user namespace
/// (modules, kexec, swap, accounting) so that their attack surface is not reachable at all.
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "delete_module",
    "finit_module",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "iopl",
    "ioperm",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "quotactl",
    "request_key",
    "swapoff",
    "swapon",
    "syslog",
    "uselib",
    "userfaultfd",
    "vm86",
    "vm86old",
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
    pub(crate) cgroups_path: &'a str,
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

fn seccomp() -> Value {
    let architectures: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => &[],
    };
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures,
        "syscalls": [{"names": DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}]
    })
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
            cgroups_path: "/airlock/env_a",
            swap_accounting: true,
            nofile: 1024,
        });
        assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], 1_065_536);
        assert_eq!(spec["linux"]["gidMappings"][0]["size"], 65536);
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 512u64 << 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 300);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        let caps = spec["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps.iter().any(|c| c == "CAP_NET_RAW" || c == "CAP_MKNOD" || c == "CAP_SYS_ADMIN"));
        let ns: Vec<&str> = spec["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        for wanted in ["pid", "network", "ipc", "uts", "mount", "user"] {
            assert!(ns.contains(&wanted), "{wanted}");
        }
        let secret = spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/run/secrets/db").unwrap();
        assert!(secret["options"].as_array().unwrap().iter().any(|o| o == "ro"));
    }
}
