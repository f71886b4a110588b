//! The bundler behind a site's egress proxy: HTTPS_PROXY (CONNECT tunnels), NO_PROXY, and an
//! extra CA bundle for an upstream whose certificate comes from a private CA (as behind a
//! TLS-inspecting proxy). The upstream is a real HTTPS server: an airlock mirror serving a
//! release file with a certificate from `mirror tls issue`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;

/// A forward proxy that only tunnels (CONNECT), recording each target it was asked for.
struct ConnectProxy {
    addr: String,
    targets: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        // The thread ends with the test process; it holds no state the test depends on.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || tunnel(client, &seen));
            }
        });
        ConnectProxy { addr, targets }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

fn tunnel(mut client: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    seen.lock().unwrap().push(target.to_string());
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
    let (mut client_read, mut upstream_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = std::io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}

#[test]
fn https_through_a_connect_proxy_with_an_extra_ca_and_no_proxy() {
    let sample = Sample::new();
    // The upstream: a mirror serving the sample's release file over TLS as `localhost`.
    let data = sample.path("upstream");
    let bundle = sample.create("upstream", &[]);
    ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(sample.path("key.pub")).arg("--data-dir").arg(&data));
    let tls = sample.path("tls");
    ok(airlock().args(["mirror", "tls", "issue", "--name", "localhost", "--out"]).arg(&tls));
    let server = MirrorServer::start(
        &data,
        &["--tls-cert", tls.join("server.crt").to_str().unwrap(), "--tls-key", tls.join("server.key").to_str().unwrap()],
    );
    let url = format!("https://localhost:{}/releases/stable/airlock-cli/0.1.0/linux-x64/airlock", server.port);
    let release = fs::read(sample.path("dist/airlock")).unwrap();

    let manifest = sample.path("proxied.toml");
    fs::write(
        &manifest,
        format!(
            "[bundle]\nname = \"proxied\"\nchannel = \"stable\"\n\n[[https]]\nname = \"airlock-cli\"\nversion = \"0.1.0\"\n\
             platform = \"linux-x64\"\nurl = \"{url}\"\nsha256 = \"{}\"\n",
            sha256_hex(&release)
        ),
    )
    .unwrap();
    let proxy = ConnectProxy::start();
    let create = |cache: &str, extra: &[&str], no_proxy: &str| {
        let mut cmd = airlock();
        cmd.env("HTTPS_PROXY", format!("http://{}", proxy.addr))
            .env("NO_PROXY", no_proxy)
            .env_remove("https_proxy")
            .env_remove("no_proxy")
            .args(["bundle", "create", "--retries", "0", "--manifest"])
            .arg(&manifest)
            .arg("--key")
            .arg(sample.path("key.key"))
            .arg("--cache-dir")
            .arg(sample.path(cache))
            .arg("--out")
            .arg(sample.path(&format!("{cache}.airlock.tar.zst")))
            .args(extra);
        cmd
    };

    // Through the proxy, but the private CA is not trusted: refused, naming the URL.
    let err = fails(&mut create("untrusted", &[], ""));
    assert!(err.contains(&url) && err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(proxy.targets(), [format!("localhost:{}", server.port)], "the request did not go through the proxy");

    // With the CA bundle: through the proxy, and the bytes arrive intact.
    let ca = tls.join("ca.crt");
    ok(&mut create("trusted", &["--ca-bundle", ca.to_str().unwrap()], ""));
    assert_eq!(proxy.targets().len(), 2);
    let out = sample.path("trusted.airlock.tar.zst");
    ok(airlock().args(["bundle", "verify"]).arg(&out).arg("--trusted-key").arg(sample.path("key.pub")));

    // NO_PROXY names the host: straight there, the proxy sees nothing more.
    ok(&mut create("direct", &["--ca-bundle", ca.to_str().unwrap()], "localhost"));
    assert_eq!(proxy.targets().len(), 2, "NO_PROXY was not honoured");
}
