//! The README's shell blocks run as they stand, in order, in one shell, in an empty folder,
//! with the built `airlock` first on PATH, inside a network namespace that has only loopback.
//! A block that must not run says so, with the reason, on the line before it:
//! `<!-- readme-test: skip: REASON -->`.

use std::path::Path;
use std::process::Command;

const SKIP: &str = "<!-- readme-test: skip:";

struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
}

/// The ```sh blocks not marked to skip. A skip marker needs a reason.
fn runnable_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let start = i;
            let end = (i + 1..lines.len()).find(|&j| lines[j].trim() == "```").unwrap_or_else(|| panic!("README.md:{}: unclosed block", start + 1));
            let marker = start.checked_sub(1).map(|p| lines[p].trim()).filter(|l| l.starts_with(SKIP));
            match marker {
                Some(m) => {
                    let reason = m.trim_start_matches(SKIP).trim_end_matches("-->").trim();
                    assert!(!reason.is_empty(), "README.md:{start}: a skipped block must say why");
                }
                None => blocks.push(Block { line: start + 1, text: lines[start + 1..end].join("\n") }),
            }
            i = end;
        }
        i += 1;
    }
    blocks
}

/// If a block fails after `demo --keep`, ends that demo from inside its network namespace.
struct KeptDemo(std::path::PathBuf);

impl Drop for KeptDemo {
    fn drop(&mut self) {
        let Ok(state) = std::fs::read(self.0.join("demo-state.json")) else { return };
        let state: serde_json::Value = serde_json::from_slice(&state).unwrap_or_default();
        let Some(pid) = state["server_pid"].as_u64() else { return };
        let _ = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["--", env!("CARGO_BIN_EXE_airlock"), "demo", "--stop", "--dir"])
            .arg(&self.0)
            .status();
    }
}

#[test]
fn the_readme_blocks_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(blocks.len() >= 3, "the quickstarts are meant to run: found {} blocks", blocks.len());

    let work = tempfile::tempdir().unwrap();
    let _demo = KeptDemo(work.path().join("airlock-demo"));
    let bin = Path::new(env!("CARGO_BIN_EXE_airlock")).parent().unwrap();
    let mut script = format!(
        "set -euo pipefail\nexport PATH={}:$PATH\nunset AIRLOCK_URL AIRLOCK_TOKEN AIRLOCK_CA_CERT AIRLOCK_CONFIG\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nip link set lo up\n",
        bin.display()
    );
    for block in &blocks {
        script.push_str(&format!("echo '### README.md:{}' >&2\n{}\n", block.line, block.text));
    }
    std::fs::write(work.path().join("readme.sh"), &script).unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--", "timeout", "600", "bash", "-x", "readme.sh"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a README block failed ({}); the trace ends with the failing command:\n{}\nstdout:\n{}",
        out.status,
        stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stdout)
    );
    // What the blocks promise, checked on their output.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("export AIRLOCK_URL="), "{stdout}");
    assert!(stdout.contains("\"Name\": \"127.0.0.1:5000/devcontainers/base\""), "skopeo inspected the image: {stdout}");
    assert!(!work.path().join("airlock-demo").exists(), "demo --stop removed its folder");
}

#[test]
fn blocks_are_found_and_skips_need_a_reason() {
    let text = "a\n```sh\necho one\n```\n<!-- readme-test: skip: needs the internet -->\n```sh\necho two\n```\n```toml\nx = 1\n```\n";
    let blocks = runnable_blocks(text);
    assert_eq!(blocks.len(), 1);
    assert_eq!((blocks[0].line, blocks[0].text.as_str()), (2, "echo one"));
}
