//! Upstream paths, replayed end to end: files the bundler fetched from their real download
//! hosts are answered at those URLs' paths when a client reaches the mirror by that host
//! name, as it does behind split-horizon DNS. The bundler runs behind `HTTP_PROXY` pointing at
//! a stand-in that plays data.services.jetbrains.com, download.jetbrains.com and a release
//! host, so the upstream URLs stored in the bundle name the real hosts; nothing leaves the
//! machine.

mod common;
mod mirror_support;
mod upstreams;

use std::process::Command;

use common::*;
use mirror_support::{targz, Curl, Server};
use serde_json::json;
use upstreams::StandIn;

const ARCHIVE_URL: &str = "http://download.jetbrains.com/go/goland-2024.3.tar.gz";
const RELEASE_HOST: &str = "releases.example.internal";

/// A bundler command whose every HTTP request goes to the stand-in, whatever the host.
fn through_stand_in(stand_in: &StandIn, args: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.args(args);
    for var in ["NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env_remove(var);
    }
    cmd.env("HTTP_PROXY", stand_in.base()).env("http_proxy", stand_in.base());
    cmd
}

#[test]
fn files_are_served_at_their_upstream_paths_on_their_upstream_hosts() {
    let archive = targz(&[("GoLand-2024.3/product-info.json", br#"{"buildNumber":"243.21565.208"}"#)]);
    let cli = b"#!/bin/sh\necho gitpod cli\n".to_vec();
    let stand_in = StandIn::start();
    stand_in.put_json(
        "/products/releases",
        &json!({ "GO": [{
            "version": "2024.3", "majorVersion": "2024.3", "build": "243.21565.208", "type": "release",
            "downloads": { "linux": {
                "link": ARCHIVE_URL, "size": archive.len(), "checksumLink": format!("{ARCHIVE_URL}.sha256")
            } }
        }] }),
    );
    stand_in.put("/go/goland-2024.3.tar.gz", archive.clone(), "application/x-gzip");
    stand_in.put("/go/goland-2024.3.tar.gz.sha256", format!("{} *goland-2024.3.tar.gz\n", sha256_hex(&archive)), "text/plain");
    stand_in.put("/cli/stable/gitpod-linux-amd64", cli.clone(), "application/octet-stream");

    let work = tempfile::tempdir().unwrap();
    let manifest = work.path().join("replay.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[bundle]
name = "replay"
channel = "stable"

[[jetbrains]]
base_url = "http://data.services.jetbrains.com"
products = ["GO"]
platforms = ["linux"]

[[https]]
name = "gitpod-cli"
version = "1.0.0"
platform = "linux-x64"
url = "http://{RELEASE_HOST}/cli/stable/gitpod-linux-amd64"
sha256 = "{}"
"#,
            sha256_hex(&cli)
        ),
    )
    .unwrap();
    let path = |name: &str| work.path().join(name).to_str().unwrap().to_string();
    ok(airlock().args(["keygen", "--out", &path("key")]));
    let (manifest, cache, bundle) = (manifest.to_str().unwrap(), path("cache"), path("replay.airlock.tar.zst"));
    ok(&mut through_stand_in(&stand_in, &["bundle", "lock", "--manifest", manifest, "--cache-dir", &cache]));
    ok(&mut through_stand_in(
        &stand_in,
        &["bundle", "create", "--manifest", manifest, "--key", &path("key.key"), "--out", &bundle, "--cache-dir", &cache],
    ));
    assert!(!stand_in.requests_to("/go/goland-2024.3.tar.gz").is_empty(), "the archive came through the stand-in");
    let data = path("mirror");
    ok(airlock().args(["mirror", "import", &bundle, "--trusted-key", &path("key.pub"), "--data-dir", &data]));
    drop(stand_in);

    let server = Server::start(std::path::Path::new(&data), &[]);
    let get = |host: &str, path: &str| Curl::get(&server.url_as(host, path)).resolve(host, server.port).send();

    // JetBrains' download host and its CDN names answer the archive at its upstream path,
    // with the checksum in JetBrains' `<sha256> *<file>` form.
    for host in ["download.jetbrains.com", "download-cdn.jetbrains.com"] {
        let answer = get(host, "/go/goland-2024.3.tar.gz");
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
        assert_eq!(answer.body, archive, "{host}");
        let checksum = get(host, "/go/goland-2024.3.tar.gz.sha256");
        assert_eq!(checksum.text(), format!("{} *goland-2024.3.tar.gz\n", sha256_hex(&archive)));
    }
    let partial = Curl::get(&server.url_as("download.jetbrains.com", "/go/goland-2024.3.tar.gz"))
        .resolve("download.jetbrains.com", server.port)
        .header("Range: bytes=10-19")
        .send();
    assert_eq!(partial.status, 206);
    assert_eq!(partial.body, archive[10..20]);

    // A release host that is not one of the named upstreams: its path on its name, with a
    // `sha256sum`-style sidecar.
    let answer = get(RELEASE_HOST, "/cli/stable/gitpod-linux-amd64");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, cli);
    assert_eq!(get(RELEASE_HOST, "/cli/stable/gitpod-linux-amd64.sha256").text(), format!("{}  gitpod-linux-amd64\n", sha256_hex(&cli)));

    // Only on the host it came from, and only at its exact path.
    assert_eq!(get(RELEASE_HOST, "/cli/stable/gitpod-linux-arm64").status, 404);
    assert_eq!(get("other.example.internal", "/cli/stable/gitpod-linux-amd64").status, 404);
    assert_eq!(get("download.jetbrains.com", "/cli/stable/gitpod-linux-amd64").status, 404);
    assert_eq!(get(RELEASE_HOST, "/go/goland-2024.3.tar.gz").status, 404);
}
