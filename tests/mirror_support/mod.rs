//! Shared by the protocol-adapter tests: test content made on the spot (VS Code server
//! tarballs, VSIX zips, JetBrains-style archives, release files, AMI descriptors), a signed
//! bundle of it imported into a fresh mirror, a running `airlock mirror serve`, and curl.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::{airlock, ok, sha256_hex};

pub const COMMIT_OLD: &str = "0ee08df0cf4527e40edc9aa28f4b5bd38bbff2b2";
pub const COMMIT_NEW: &str = "1a5daa3a0231a0fbba4f14db7ec463cf99d7768e";

pub use crate::common::MirrorServer as Server;

/// What a request returned.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One curl invocation: the real client for HTTP(S), with `--resolve` for Host routing.
pub struct Curl {
    args: Vec<String>,
    body: Option<Vec<u8>>,
}

impl Curl {
    pub fn get(url: &str) -> Curl {
        Curl { args: vec![url.to_string()], body: None }
    }

    pub fn post(url: &str, body: &[u8]) -> Curl {
        Curl { args: vec!["-X".into(), "POST".into(), url.to_string()], body: Some(body.to_vec()) }
    }

    pub fn header(mut self, header: &str) -> Curl {
        self.args.extend(["-H".to_string(), header.to_string()]);
        self
    }

    /// Resolve `host:port` to 127.0.0.1, as split-horizon DNS would.
    pub fn resolve(mut self, host: &str, port: u16) -> Curl {
        self.args.extend(["--resolve".to_string(), format!("{host}:{port}:127.0.0.1")]);
        self
    }

    pub fn arg(mut self, arg: &str) -> Curl {
        self.args.push(arg.to_string());
        self
    }

    pub fn head(self) -> Curl {
        self.arg("--head")
    }

    /// Runs curl; a transport failure (refused, TLS verification) fails the test.
    pub fn send(self) -> Answer {
        let out = self.run();
        assert!(out.0, "curl failed: {}", out.1);
        out.2
    }

    /// Runs curl and returns (succeeded, stderr, answer).
    pub fn run(self) -> (bool, String, Answer) {
        let dir = tempfile::tempdir().unwrap();
        let (headers, body) = (dir.path().join("headers"), dir.path().join("body"));
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "-D"]).arg(&headers).arg("-o").arg(&body).args(["-w", "%{http_code}"]).args(&self.args);
        if self.body.is_some() {
            cmd.args(["--data-binary", "@-"]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run curl: {e} (scripts/install-deps.sh installs it)"));
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(self.body.as_deref().unwrap_or_default()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        let answer = Answer {
            status,
            headers: fs::read_to_string(&headers).unwrap_or_default(),
            body: fs::read(&body).unwrap_or_default(),
        };
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), answer)
    }
}

/// A gzip-compressed tarball of (path, bytes).
pub fn targz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A VSIX as vsce makes one: `extension.vsixmanifest`, `extension/package.json`, a README,
/// a LICENSE and an icon.
pub fn vsix(package: &Value, pre_release: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let id = format!("{}.{}", package["publisher"].as_str().unwrap(), package["name"].as_str().unwrap());
    let manifest = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PackageManifest Version=\"2.0.0\"><Metadata><Identity Id=\"{}\" Version=\"{}\" Publisher=\"{}\"/>\
         <Properties>{}</Properties></Metadata></PackageManifest>\n",
        package["name"].as_str().unwrap(),
        package["version"].as_str().unwrap(),
        package["publisher"].as_str().unwrap(),
        if pre_release { "<Property Id=\"Microsoft.VisualStudio.Code.PreRelease\" Value=\"true\" />" } else { "" }
    );
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("extension.vsixmanifest", manifest.into_bytes()),
        ("extension/package.json", serde_json::to_vec_pretty(package).unwrap()),
        ("extension/README.md", format!("# {id}\n\nA test extension.\n").into_bytes()),
        ("extension/LICENSE.txt", b"MIT\n".to_vec()),
        ("extension/images/icon.png", b"\x89PNG\r\n\x1a\nnot really an image".to_vec()),
        ("extension/out/extension.js", format!("exports.activate = () => '{id}';\n").into_bytes()),
    ];
    for (name, bytes) in files {
        zip.start_file(name, options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The package.json of a test extension.
pub fn package_json(publisher: &str, name: &str, version: &str, deps: &[&str], pack: &[&str]) -> Value {
    json!({
        "publisher": publisher,
        "name": name,
        "displayName": format!("{name} for tests"),
        "description": format!("The {name} test extension"),
        "version": version,
        "engines": { "vscode": "^1.85.0" },
        "categories": ["Programming Languages"],
        "keywords": ["airlock", name],
        "icon": "images/icon.png",
        "main": "./out/extension.js",
        "extensionDependencies": deps,
        "extensionPack": pack,
        "repository": { "type": "git", "url": format!("https://example.invalid/{publisher}/{name}.git") },
        "license": "MIT",
    })
}

/// Everything the adapter tests import, with the bytes of each file by a short key.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    pub fn file(&self, key: &str) -> &[u8] {
        self.files.get(key).unwrap_or_else(|| panic!("no fixture file {key}"))
    }

    pub fn sha256(&self, key: &str) -> String {
        sha256_hex(self.file(key))
    }

    /// Builds the content, a bundle of it (`[[file]]` entries), and imports it.
    pub fn build() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut files = BTreeMap::new();
        let mut manifest = String::from("[bundle]\nname = \"adapters\"\nchannel = \"stable\"\n");
        let mut add = |key: &str, kind: &str, name: &str, version: &str, platform: Option<&str>, file_name: &str, bytes: Vec<u8>| {
            let rel = format!("content/{key}/{file_name}");
            let path = root.join(&rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
            manifest.push_str(&format!(
                "\n[[file]]\nkind = \"{kind}\"\nname = \"{name}\"\nversion = \"{version}\"\n{}source = \"file:./{rel}\"\n",
                platform.map(|p| format!("platform = \"{p}\"\n")).unwrap_or_default()
            ));
            files.insert(key.to_string(), bytes);
        };

        // VS Code servers: two releases for linux-x64, one for linux-arm64.
        for (key, commit, version, date, platform) in [
            ("server-old-x64", COMMIT_OLD, "1.85.1", "2023-12-13T09:49:37.021Z", "server-linux-x64"),
            ("server-new-x64", COMMIT_NEW, "1.86.0", "2024-01-31T20:05:00.000Z", "server-linux-x64"),
            ("server-old-arm64", COMMIT_OLD, "1.85.1", "2023-12-13T09:49:37.021Z", "server-linux-arm64"),
        ] {
            let folder = format!("vscode-{platform}");
            let product = json!({ "nameShort": "Code", "version": version, "commit": commit, "date": date, "quality": "stable" });
            let node = format!("#!/bin/sh\necho node for {platform} {commit}\n");
            let tarball = targz(&[
                (&format!("{folder}/node"), node.as_bytes()),
                (&format!("{folder}/product.json"), serde_json::to_vec(&product).unwrap().as_slice()),
                (&format!("{folder}/bin/code-server"), b"#!/bin/sh\nexit 0\n"),
            ]);
            add(key, "vscode-server", "vscode-server", commit, Some(platform), &format!("{folder}.tar.gz"), tarball);
        }

        // Extensions: a universal one in two versions, a platform-specific one that depends
        // on it, and a pack of both.
        for (key, publisher, name, version, platform, deps, pack, pre) in [
            ("hello-1.0.0", "acme", "hello", "1.0.0", None, &[][..], &[][..], false),
            ("hello-1.1.0", "acme", "hello", "1.1.0", None, &[][..], &[][..], false),
            ("native-linux-x64", "acme", "native", "2.0.0", Some("linux-x64"), &["acme.hello"][..], &[][..], false),
            ("native-linux-arm64", "acme", "native", "2.0.0", Some("linux-arm64"), &["acme.hello"][..], &[][..], false),
            ("pack", "acme", "pack", "0.3.0-beta.1", None, &[][..], &["acme.hello", "acme.native"][..], true),
        ] {
            let package = package_json(publisher, name, version, deps, pack);
            let target = platform.map(|p| format!("@{p}")).unwrap_or_default();
            add(key, "vscode-extension", &format!("{publisher}.{name}"), version, platform, &format!("{publisher}.{name}-{version}{target}.vsix"), vsix(&package, pre));
        }

        // JetBrains: GoLand 2024.3 for linux and linuxARM64, and the older 2024.2 for linux.
        for (key, version, build, platform, suffix) in [
            ("goland-2024.3-linux", "2024.3", "243.21565.208", "linux", ""),
            ("goland-2024.3-arm64", "2024.3", "243.21565.208", "linuxARM64", "-aarch64"),
            ("goland-2024.2-linux", "2024.2", "242.20224.419", "linux", ""),
        ] {
            let info = json!({ "name": "GoLand", "version": version, "buildNumber": build, "productCode": "GO" });
            let tarball = targz(&[
                (&format!("GoLand-{version}/product-info.json"), serde_json::to_vec(&info).unwrap().as_slice()),
                (&format!("GoLand-{version}/bin/goland.sh"), format!("#!/bin/sh\necho goland {version} {platform}\n").as_bytes()),
            ]);
            add(key, "jetbrains-ide", "goland", version, Some(platform), &format!("goland-{version}{suffix}.tar.gz"), tarball);
        }

        // Release files: two versions of a CLI.
        for (key, version) in [("cli-0.1.0", "0.1.0"), ("cli-0.2.0", "0.2.0")] {
            add(key, "release-file", "airlock-cli", version, Some("linux-x64"), "airlock-linux-x64", format!("#!/bin/sh\necho airlock {version}\n").into_bytes());
        }

        // An AMI descriptor, as the bundler writes them.
        let ami = json!({
            "name": "ec2-runner-ami",
            "name_pattern": "gitpod/images/gitpod-next/ec2-runner-ami-*",
            "owner": "995913728426",
            "architecture": "x86_64",
            "purpose": "Development environments",
            "version": "1",
            "regions": { "eu-central-1": "ami-0123456789abcdef0" },
        });
        add("ami", "ami-descriptor", "ec2-runner-ami", "1", Some("x86_64"), "ec2-runner-ami.json", format!("{}\n", serde_json::to_string_pretty(&ami).unwrap()).into_bytes());

        fs::write(root.join("adapters.toml"), &manifest).unwrap();
        ok(airlock().arg("keygen").arg("--out").arg(root.join("key")));
        let bundle = root.join("adapters.airlock.tar.zst");
        ok(airlock()
            .args(["bundle", "create", "--manifest"])
            .arg(root.join("adapters.toml"))
            .arg("--key")
            .arg(root.join("key.key"))
            .arg("--out")
            .arg(&bundle)
            .args(["--created", crate::common::CREATED, "--sequence", "3"]));
        let data = root.join("mirror");
        ok(airlock().args(["mirror", "import"]).arg(&bundle).arg("--trusted-key").arg(root.join("key.pub")).arg("--data-dir").arg(&data));
        Fixture { dir, data, files }
    }
}
