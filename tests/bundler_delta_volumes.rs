//! Delta bundles (`--base`) and volumes (`--volume-size`) with their signed volume list.

mod common;
mod upstreams;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use upstreams::*;

struct Release {
    sample: Sample,
    server: StandIn,
}

impl Release {
    /// Two release files of 3 MiB each; `cli_seed` picks the CLI's bytes (a new release).
    fn new() -> Release {
        let release = Release { sample: Sample::new(), server: StandIn::start() };
        release.publish(1);
        release
    }

    fn publish(&self, cli_seed: u64) {
        let agent = pseudo_random(3 << 20, 100);
        let cli = pseudo_random(3 << 20, cli_seed);
        self.server.put("/agent", agent.clone(), "application/octet-stream");
        self.server.put(&format!("/cli-{cli_seed}"), cli.clone(), "application/octet-stream");
        let body = format!(
            "[bundle]\nname = \"rel\"\nchannel = \"stable\"\n\n\
             [[https]]\nname = \"agent\"\nversion = \"1\"\nurl = \"{}\"\nsha256 = \"{}\"\n\n\
             [[https]]\nname = \"cli\"\nversion = \"{cli_seed}\"\nurl = \"{}\"\nsha256 = \"{}\"\n",
            self.server.url("/agent"),
            sha256_hex(&agent),
            self.server.url(&format!("/cli-{cli_seed}")),
            sha256_hex(&cli)
        );
        fs::write(self.sample.path("rel.toml"), body).unwrap();
    }

    fn create(&self, name: &str, sequence: u64, extra: &[&str]) -> PathBuf {
        let out = self.sample.path(&format!("{name}.airlock.tar.zst"));
        ok(&mut self.create_cmd(&out, sequence, extra));
        out
    }

    fn create_cmd(&self, out: &Path, sequence: u64, extra: &[&str]) -> std::process::Command {
        let mut cmd = self.sample.create_command("rel.toml", out);
        cmd.args(["--created", CREATED, "--sequence", &sequence.to_string(), "--level", "1"])
            .args(extra);
        cmd
    }
}

fn manifest_of(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&ok(airlock().args(["bundle", "manifest"]).arg(bundle)).stdout).unwrap()
}

#[test]
fn a_delta_leaves_out_what_its_base_carried_and_records_the_base() {
    let release = Release::new();
    let full = release.create("full", 1, &[]);
    let base_json = release.sample.path("full.airlock-bundle.json");
    release.publish(2);
    let delta = release.create("delta", 2, &["--base", base_json.to_str().unwrap()]);
    ok(&mut release.sample.verify(&delta));

    let m = manifest_of(&delta);
    let base = manifest_of(&full);
    assert_eq!(m["base"]["bundleId"], base["bundleId"]);
    assert_eq!(m["base"]["sequence"], 1);
    assert_eq!(m["base"]["manifestDigest"], format!("sha256:{}", sha256_hex(&fs::read(&base_json).unwrap())));
    let agent = format!("sha256:{}", sha256_hex(&pseudo_random(3 << 20, 100)));
    let carried: Vec<&str> = m["blobs"].as_array().unwrap().iter().map(|b| b["digest"].as_str().unwrap()).collect();
    let in_base: Vec<&str> = m["baseBlobs"].as_array().unwrap().iter().map(|b| b["digest"].as_str().unwrap()).collect();
    assert!(!carried.contains(&agent.as_str()) && in_base.contains(&agent.as_str()));
    // Every artifact is still described, the unchanged one included.
    let names: Vec<&str> = m["artifacts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["agent", "cli"]);
    assert!(fs::metadata(&delta).unwrap().len() < fs::metadata(&full).unwrap().len() * 2 / 3);

    // A base from another channel, or not older, is refused.
    let err = fails(&mut release.create_cmd(&release.sample.path("x.airlock.tar.zst"), 1, &["--base", base_json.to_str().unwrap()]));
    assert!(err.contains("sequence 1, not lower"), "{err}");
    let err = fails(&mut release.create_cmd(&release.sample.path("x.airlock.tar.zst"), 3, &["--base", base_json.to_str().unwrap(), "--channel", "edge"]));
    assert!(err.contains("channel `stable`") && err.contains("`edge`"), "{err}");
}

#[test]
fn volumes_verify_one_by_one_and_a_bad_or_missing_volume_is_named() {
    let release = Release::new();
    let bundle = release.sample.path("rel.airlock.tar.zst");
    let said = stdout(&ok(&mut release.create_cmd(&bundle, 1, &["--volume-size", "1M"])));
    assert!(!bundle.exists(), "a single-file bundle was written too");
    let list_path = release.sample.path("rel.airlock-volumes.json");
    let list: serde_json::Value = serde_json::from_slice(&fs::read(&list_path).unwrap()).unwrap();
    let volumes = list["volumes"].as_array().unwrap();
    assert!(volumes.len() >= 6, "{said}");
    for (i, v) in volumes.iter().enumerate() {
        let path = release.sample.path(v["name"].as_str().unwrap());
        assert_eq!(v["name"].as_str().unwrap(), format!("rel.airlock.tar.zst.{:03}", i + 1));
        let bytes = fs::read(&path).unwrap();
        assert_eq!(v["sha256"], format!("sha256:{}", sha256_hex(&bytes)));
        assert!(bytes.len() as u64 <= 1 << 20);
    }
    assert!(release.sample.path("rel.airlock-volumes.json.minisig").exists());
    // The stock minisign tool checks the volume list's signature.
    ok(std::process::Command::new("minisign")
        .arg("-Vm")
        .arg(&list_path)
        .arg("-p")
        .arg(release.sample.path("key.pub"))
        .arg("-q"));

    let verified = stdout(&ok(&mut release.sample.verify(&list_path)));
    assert!(verified.contains(&format!("checked {} volumes", volumes.len())), "{verified}");
    // Joined, the volumes are the very bundle `create` would have written in one file.
    let single = release.create("single", 1, &[]);
    let joined: Vec<u8> = volumes.iter().flat_map(|v| fs::read(release.sample.path(v["name"].as_str().unwrap())).unwrap()).collect();
    assert!(joined == fs::read(&single).unwrap());

    let second = release.sample.path(volumes[1]["name"].as_str().unwrap());
    let good = fs::read(&second).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x10;
    fs::write(&second, &bad).unwrap();
    let err = fails(&mut release.sample.verify(&list_path));
    assert!(err.contains("volume rel.airlock.tar.zst.002 is damaged") && err.contains("copy this volume again"), "{err}");
    fs::write(&second, &good).unwrap();

    let third = release.sample.path(volumes[2]["name"].as_str().unwrap());
    fs::rename(&third, release.sample.path("elsewhere")).unwrap();
    let err = fails(&mut release.sample.verify(&list_path));
    assert!(err.contains("volume rel.airlock.tar.zst.003 is missing"), "{err}");
    fs::rename(release.sample.path("elsewhere"), &third).unwrap();

    // An altered list fails its signature.
    let text = fs::read_to_string(&list_path).unwrap().replacen("\"size\": ", "\"size\": 1", 1);
    fs::write(&list_path, text).unwrap();
    let err = fails(&mut release.sample.verify(&list_path));
    assert!(err.contains("does not verify"), "{err}");
}
