//! `[[https]]` release files against a stand-in server: pinned and sidecar digests, a
//! download killed halfway that resumes with a range request, wrong bytes that name the
//! artifact and both digests and pack nothing, retries on 503, and an unreachable upstream.

mod common;
mod upstreams;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use upstreams::*;

const SIZE: usize = 6 << 20;

struct Setup {
    sample: Sample,
    server: StandIn,
    content: Vec<u8>,
}

impl Setup {
    fn new(entry: impl Fn(&StandIn, &str) -> String) -> Setup {
        let sample = Sample::new();
        let server = StandIn::start();
        let content = pseudo_random(SIZE, 42);
        server.put("/cli/stable/airlock-linux-amd64", content.clone(), "application/octet-stream");
        let sha = sha256_hex(&content);
        let body = format!("[bundle]\nname = \"rel\"\nchannel = \"stable\"\n\n{}", entry(&server, &sha));
        fs::write(sample.path("rel.toml"), body).unwrap();
        Setup { sample, server, content }
    }

    fn create(&self, out: &Path, extra: &[&str]) -> std::process::Command {
        let mut cmd = self.sample.create_command("rel.toml", out);
        cmd.args(["--created", CREATED, "--sequence", "1", "--retry-delay", "20ms"])
            .args(extra);
        cmd
    }
}

fn pinned(server: &StandIn, sha: &str) -> String {
    format!(
        "[[https]]\nname = \"airlock-cli\"\nversion = \"1.0.0\"\nplatform = \"linux-amd64\"\nurl = \"{}\"\nsha256 = \"{sha}\"\n",
        server.url("/cli/stable/airlock-linux-amd64")
    )
}

fn out_dir(setup: &Setup) -> PathBuf {
    let dir = setup.sample.path("out");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_download_killed_halfway_resumes_where_it_stopped() {
    let setup = Setup::new(pinned);
    let path = "/cli/stable/airlock-linux-amd64";
    let half = SIZE / 2;
    setup.server.stall_after(path, Some(half));
    let out = out_dir(&setup).join("rel.airlock.tar.zst");
    let partial = setup.sample.path(&format!("cache/tmp/{}.partial", sha256_hex(&setup.content)));

    let mut child = setup.create(&out, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < half as u64 {
        assert!(Instant::now() < deadline, "the first half never arrived");
        assert!(child.try_wait().unwrap().is_none(), "airlock ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(files_in(out.parent().unwrap()).is_empty(), "a killed create left files: {:?}", files_in(out.parent().unwrap()));
    assert_eq!(fs::metadata(&partial).unwrap().len(), half as u64);

    setup.server.stall_after(path, None);
    ok(&mut setup.create(&out, &[]));
    let ranges: Vec<Option<String>> = setup.server.requests_to(path).into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, [None, Some(format!("bytes={half}-"))], "the second run did not resume");
    ok(&mut setup.sample.verify(&out));
    let manifest: serde_json::Value = serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(&out)).stdout).unwrap();
    let blob = manifest["blobs"].as_array().unwrap().iter().find(|b| b["size"] == SIZE).unwrap();
    assert_eq!(blob["digest"], format!("sha256:{}", sha256_hex(&setup.content)));
    assert!(!partial.exists(), "the partial file was not moved into the cache");
}

#[test]
fn wrong_bytes_fail_naming_the_artifact_and_both_digests_and_nothing_is_packed() {
    let setup = Setup::new(pinned);
    let path = "/cli/stable/airlock-linux-amd64";
    let mut wrong = setup.content.clone();
    wrong[SIZE / 3] ^= 0x55;
    setup.server.put(path, wrong.clone(), "application/octet-stream");
    let out = out_dir(&setup).join("rel.airlock.tar.zst");
    let err = fails(&mut setup.create(&out, &[]));
    let expected = format!("sha256:{}", sha256_hex(&setup.content));
    let actual = format!("sha256:{}", sha256_hex(&wrong));
    assert!(err.contains("release-file airlock-cli 1.0.0"), "{err}");
    assert!(err.contains(&expected) && err.contains(&actual), "{err}");
    assert!(err.contains("nothing was packed"), "{err}");
    assert!(files_in(out.parent().unwrap()).is_empty(), "files were written: {:?}", files_in(out.parent().unwrap()));
    // Neither the wrong bytes nor a partial file stay in the cache.
    let cache = setup.sample.path("cache");
    assert!(!cache.join(format!("blobs/sha256/{}/{}", &actual[7..9], &actual[7..])).exists());
    assert!(files_in(&cache.join("tmp")).is_empty(), "{:?}", files_in(&cache.join("tmp")));
}

#[test]
fn an_unreachable_upstream_fails_after_the_retries_naming_the_url() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/cli/stable/airlock-linux-amd64");
    let setup = Setup::new(|_, sha| {
        format!("[[https]]\nname = \"airlock-cli\"\nversion = \"1.0.0\"\nurl = \"{url}\"\nsha256 = \"{sha}\"\n")
    });
    let out = out_dir(&setup).join("rel.airlock.tar.zst");
    let started = Instant::now();
    let err = fails(&mut setup.create(&out, &["--retries", "2"]));
    assert!(err.contains(&format!("cannot fetch {url} after 3 attempts")), "{err}");
    assert!(err.contains("HTTPS_PROXY"), "{err}");
    // Backoff: 20ms then 40ms at least.
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert!(files_in(out.parent().unwrap()).is_empty());
}

#[test]
fn sidecar_digests_lock_without_downloading_and_503s_are_retried() {
    let setup = Setup::new(|server, _| {
        format!(
            "[[https]]\nname = \"airlock-cli\"\nversion = \"1.0.0\"\nurl = \"{}\"\nsidecar = true\n\n\
             [[https]]\nname = \"channel-manifest\"\nversion = \"stable\"\nurl = \"{}\"\n",
            server.url("/cli/stable/airlock-linux-amd64"),
            server.url("/cli/stable/manifest.json")
        )
    });
    let sha = sha256_hex(&setup.content);
    setup.server.put("/cli/stable/airlock-linux-amd64.sha256", format!("{sha}  airlock-linux-amd64\n"), "text/plain");
    setup.server.put_json("/cli/stable/manifest.json", &serde_json::json!({"version": "1.0.0"}));
    setup.server.fail_first("/cli/stable/airlock-linux-amd64.sha256", 2);

    ok(airlock()
        .args(["bundle", "lock", "--retry-delay", "10ms", "--manifest"])
        .arg(setup.sample.path("rel.toml"))
        .arg("--cache-dir")
        .arg(setup.sample.path("cache")));
    let lock = fs::read_to_string(setup.sample.path("rel.lock")).unwrap();
    assert!(lock.contains(&format!("sha256 = \"sha256:{sha}\"")) && lock.contains("verified_by = \"sidecar\""), "{lock}");
    assert!(lock.contains("verified_by = \"downloaded\""), "{lock}");
    assert!(setup.server.requests_to("/cli/stable/airlock-linux-amd64").is_empty(), "lock downloaded a file that has a sidecar");
    assert_eq!(setup.server.requests_to("/cli/stable/airlock-linux-amd64.sha256").len(), 3);

    let out = out_dir(&setup).join("rel.airlock.tar.zst");
    ok(&mut setup.create(&out, &[]));
    ok(&mut setup.sample.verify(&out));
    // The channel manifest was fetched once, by lock, and came from the cache afterwards.
    assert_eq!(setup.server.requests_to("/cli/stable/manifest.json").len(), 1);
}
