//! Verification streams: it writes nothing and its memory does not grow with the bundle.
//! Alone in its own test binary so no other test inflates the process it forks from.

mod common;

use std::fs;
use std::io::Write;

use common::*;

#[test]
fn verification_writes_nothing_and_keeps_memory_bounded() {
    let sample = Sample::new();
    // A 96 MiB file that does not compress, so the bundle is as large as its content.
    // Written in pieces: the test process stays small, because a child's peak memory
    // as the kernel reports it starts from what it shared with its parent at fork.
    let mut file = std::io::BufWriter::new(fs::File::create(sample.path("dist/airlock")).unwrap());
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..(96 << 20) / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        file.write_all(&state.to_le_bytes()).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let bundle = sample.create("big", &[]);
    let workdir = sample.path("empty-cwd");
    fs::create_dir(&workdir).unwrap();

    let child = sample.verify(&bundle).current_dir(&workdir).stdout(std::process::Stdio::null()).spawn().unwrap();
    let (status, peak_kib) = wait_with_peak_memory(child);
    assert!(status.success(), "verify failed");
    assert_eq!(fs::read_dir(&workdir).unwrap().count(), 0, "verify wrote into its working folder");
    assert!(peak_kib < 48 * 1024, "peak memory {peak_kib} KiB for a 96 MiB bundle");
}

/// Waits for one child and returns its exit status and peak resident memory in KiB.
fn wait_with_peak_memory(child: std::process::Child) -> (std::process::ExitStatus, i64) {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 only writes into the two out-parameters we own.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    (std::process::ExitStatus::from_raw(status), usage.ru_maxrss)
}
