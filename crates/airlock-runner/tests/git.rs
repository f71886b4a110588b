//! Git with the environment owner's own credentials, against real servers: `git http-backend`
//! under Debian's fcgiwrap behind nginx with basic auth over TLS from a test CA, and OpenSSH's
//! sshd with git-shell. Environments run with runc from an image holding the host's git and
//! ssh-add; the runner's sockets answer from a credential source the test controls (the
//! control plane in production, asked at each request).

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_runner::git::{self, GitCredential, GitSockets, Identity};
use airlock_testkit::wait_until;
use support::site::{NetworkGuard, Site};
use support::*;

const TOKEN: &str = "tok-ada-7f3a91c2e5";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A self-made CA and a server certificate it signed for one address.
struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        TestCa::for_address(LOOPBACK)
    }

    fn for_address(address: IpAddr) -> TestCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "airlock test site CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec![address.to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        TestCa { ca_pem: ca.pem(), cert_pem: server.pem(), key_pem: key.serialize_pem() }
    }
}

/// Kills a process group (the server and the children it forks) when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signals the process group the child leads; no memory is involved.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Where a test server runs: on the host's loopback, or in a site namespace (at its .2).
fn place(site: Option<&Site>) -> IpAddr {
    site.map_or(LOOPBACK, |s| IpAddr::V4(s.addr(2)))
}

/// `program` on the host, or inside the site's namespace.
fn command_at(site: Option<&Site>, program: &str) -> Command {
    site.map_or_else(|| Command::new(program), |s| s.command(program))
}

fn spawn_group(cmd: &mut Command, log: &Path) -> Group {
    let log = fs::File::create(log).unwrap();
    Group(cmd.stdout(log.try_clone().unwrap()).stderr(log).process_group(0).spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository `project.git` with one commit, under `root`.
fn make_repository(root: &Path) {
    let work = root.join("seed");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("README.md"), "the project\n").unwrap();
    for args in [&["init", "-q", "-b", "main"][..], &["add", "."], &["-c", "user.name=seed", "-c", "user.email=seed@site", "commit", "-qm", "first"]] {
        ok(Command::new("git").args(args).current_dir(&work));
    }
    ok(Command::new("git").args(["clone", "-q", "--bare"]).arg(&work).arg(root.join("project.git")));
    // Pushes over HTTP reach the repository as the server's user.
    ok(Command::new("git").args(["config", "http.receivepack", "true"]).current_dir(root.join("project.git")));
}

/// `git http-backend` under fcgiwrap behind nginx: HTTPS with the test CA's certificate,
/// basic auth (user `ada`, password the token).
struct HttpsGitServer {
    _nginx: Group,
    _fcgiwrap: Group,
    host: String,
    dir: tempfile::TempDir,
}

impl HttpsGitServer {
    fn start(ca: &TestCa) -> HttpsGitServer {
        HttpsGitServer::start_at(ca, None)
    }

    fn start_at(ca: &TestCa, site: Option<&Site>) -> HttpsGitServer {
        let ip = place(site);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_repository(&d.join("repos"));
        fs::write(d.join("cert.pem"), &ca.cert_pem).unwrap();
        fs::write(d.join("key.pem"), &ca.key_pem).unwrap();
        fs::write(d.join("htpasswd"), format!("ada:{{PLAIN}}{TOKEN}\n")).unwrap();
        let socket = d.join("fcgiwrap.sock");
        let fcgiwrap = spawn_group(
            command_at(site, "/usr/sbin/fcgiwrap").arg("-s").arg(format!("unix:{}", socket.display())),
            &d.join("fcgiwrap.log"),
        );
        wait_until("fcgiwrap listens", Duration::from_secs(10), || socket.exists());
        let port = free_port();
        let backend = ["/usr/lib/git-core/git-http-backend", "/usr/local/libexec/git-core/git-http-backend"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("git http-backend is missing (apt-get install git)");
        let conf = format!(
            r#"daemon off;
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body; fastcgi_temp_path {d}/fastcgi; proxy_temp_path {d}/proxy;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen {ip}:{port} ssl;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    client_max_body_size 0;
    location / {{
      auth_basic "git";
      auth_basic_user_file {d}/htpasswd;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME {backend};
      fastcgi_param GIT_PROJECT_ROOT {d}/repos;
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_pass unix:{socket};
    }}
  }}
}}
"#,
            d = d.display(),
            socket = socket.display(),
        );
        fs::write(d.join("nginx.conf"), conf).unwrap();
        let nginx = spawn_group(command_at(site, "/usr/sbin/nginx").arg("-p").arg(d).arg("-c").arg(d.join("nginx.conf")), &d.join("nginx.log"));
        let addr = format!("{ip}:{port}");
        wait_until("nginx listens", Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok());
        HttpsGitServer { _nginx: nginx, _fcgiwrap: fcgiwrap, host: addr, dir }
    }

    fn url(&self) -> String {
        format!("https://{}/project.git", self.host)
    }

    fn log(&self) -> String {
        ["error.log", "nginx.log", "fcgiwrap.log"].iter().map(|f| fs::read_to_string(self.dir.path().join(f)).unwrap_or_default()).collect()
    }
}

/// OpenSSH's sshd; the user's key may only run git-shell.
struct SshGitServer {
    _sshd: Group,
    ip: IpAddr,
    port: u16,
    known_hosts: String,
    dir: tempfile::TempDir,
}

impl SshGitServer {
    fn start(user_public_key: &str) -> SshGitServer {
        SshGitServer::start_at(user_public_key, None)
    }

    fn start_at(user_public_key: &str, site: Option<&Site>) -> SshGitServer {
        let ip = place(site);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_repository(&d.join("repos"));
        ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join("host_key")));
        let git_shell = ["/usr/bin/git-shell", "/usr/local/bin/git-shell"].into_iter().find(|p| Path::new(p).exists()).expect("git-shell");
        fs::write(
            d.join("authorized_keys"),
            format!("command=\"{git_shell} -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",no-port-forwarding,no-pty,no-agent-forwarding {user_public_key}\n"),
        )
        .unwrap();
        let port = free_port();
        let config = format!(
            "ListenAddress {ip}:{port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).unwrap();
        // OpenSSH's privilege separation folder (Debian's package creates it at boot).
        fs::create_dir_all("/run/sshd").unwrap();
        let sshd = spawn_group(command_at(site, "/usr/sbin/sshd").args(["-D", "-e", "-f"]).arg(d.join("sshd_config")), &d.join("sshd.log"));
        wait_until("sshd listens", Duration::from_secs(10), || std::net::TcpStream::connect((ip, port)).is_ok());
        let host_key = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let known_hosts = format!("[{ip}]:{port} {}\n", host_key.join(" "));
        SshGitServer { _sshd: sshd, ip, port, known_hosts, dir }
    }

    fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn url(&self) -> String {
        format!("ssh://root@{}:{}{}/repos/project.git", self.ip, self.port, self.dir.path().display())
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

/// The user's SSH key pair: (private key text, public key line).
fn user_key(dir: &Path) -> (String, String) {
    let path = dir.join("id_ed25519");
    ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f"]).arg(&path));
    (fs::read_to_string(&path).unwrap(), fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string())
}

/// The busybox test image plus the host's git (with its HTTPS helper), ssh and ssh-add, run
/// as the `dev` user.
fn git_image(registry: &Registry) -> String {
    let mut dirs = std::collections::BTreeSet::new();
    let mut layer = busybox_layer().dir("usr", 0o755, 0).dir("usr/bin", 0o755, 0);
    dirs.extend(["usr".to_string(), "usr/bin".to_string()]);
    for program in ["/usr/bin/git", "/usr/lib/git-core/git-remote-https", "/usr/bin/ssh", "/usr/bin/ssh-add"] {
        layer = with_host_program(layer, program, &mut dirs);
    }
    let mut image = ImageParts::new(vec![layer.tar()]);
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
    config["config"]["User"] = "dev".into();
    image.config = serde_json::to_vec(&config).unwrap();
    image.manifest = image.make_manifest();
    registry.push(&image, "git/tools:1")
}

/// Credentials the test hands out and takes back, asked at each request like the control plane.
#[derive(Clone, Default)]
struct Vault(Arc<Mutex<Vec<GitCredential>>>);

impl Vault {
    fn source(&self) -> Arc<git::CredentialSource> {
        let vault = self.0.clone();
        Arc::new(move || Ok(vault.lock().unwrap().clone()))
    }
}

/// What the sockets reported (the user's events), kept for inspection.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<String>>>);

impl Reports {
    fn sink(&self) -> Arc<git::MissReport> {
        let reports = self.0.clone();
        Arc::new(move |host: &str| reports.lock().unwrap().push(format!("no credential for {host}")))
    }
}

fn serve(engine: &airlock_runner::engine::Engine, id: &str, identity: &Identity, known_hosts: &str, ca: &TestCa, vault: &Vault, reports: &Reports) -> GitSockets {
    GitSockets::serve(
        &engine.git_socket_dir(id),
        engine.session_owner(id).unwrap(),
        identity,
        known_hosts,
        Some(ca.ca_pem.as_bytes()),
        vault.source(),
        reports.sink(),
    )
    .unwrap()
}

fn env_spec(id: &str, image: &str) -> airlock_runner::engine::EnvironmentSpec {
    let mut spec = spec(id, image);
    spec.env.push(git::environment());
    spec
}

#[test]
fn the_owners_https_token_and_ssh_key_clone_and_answer_only_in_the_owners_environment() {
    let registry = Registry::start();
    let image = git_image(&registry);
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    let ca = TestCa::new();
    let https = HttpsGitServer::start(&ca);
    let keys = tempfile::tempdir().unwrap();
    let (private_key, public_key) = user_key(keys.path());
    let ssh = SshGitServer::start(&public_key);

    let ada = Vault::default();
    *ada.0.lock().unwrap() = vec![
        GitCredential::Https { host: https.host.clone(), username: "ada".into(), token: TOKEN.into() },
        GitCredential::Ssh { host: ssh.host(), private_key: private_key.clone() },
    ];
    let reports = Reports::default();
    guard.start(&env_spec("env_gitada", &image));
    let identity = Identity { name: "Ada Lovelace".into(), email: "ada@site.internal".into() };
    let sockets = serve(&t.engine, "env_gitada", &identity, &ssh.known_hosts, &ca, &ada, &reports);

    // The runner's first clone, over HTTPS with the token, into the environment's workspace.
    let workspace = t.engine.workspace_dir("env_gitada");
    git::clone(&sockets, &https.url(), &workspace, &identity.email, Some(&sockets.dir().join(git::CA_FILE)))
        .unwrap_or_else(|e| panic!("{e}\n{}", https.log()));
    assert_eq!(fs::read_to_string(workspace.join("README.md")).unwrap(), "the project\n");
    // Over SSH with the key the agent socket holds; the host key checked strictly.
    let over_ssh = tempfile::tempdir().unwrap();
    git::clone(&sockets, &ssh.url(), &over_ssh.path().join("project"), &identity.email, None).unwrap_or_else(|e| panic!("{e}\n{}", ssh.log()));
    assert!(over_ssh.path().join("project/README.md").exists());
    assert!(ssh.log().contains("Accepted publickey for root"), "{}", ssh.log());

    // Inside: the owner's identity, the token for that host only, the key in the agent, and
    // sockets only the session user can use.
    assert_eq!(run_ok(&t.engine, "env_gitada", "git config user.name; git config user.email"), "Ada Lovelace\nada@site.internal");
    let fill = format!("printf 'protocol=https\\nhost={}\\n\\n' | GIT_TERMINAL_PROMPT=0 git credential fill", https.host);
    let filled = run_ok(&t.engine, "env_gitada", &fill);
    assert!(filled.contains("username=ada") && filled.contains(&format!("password={TOKEN}")), "{filled}");
    let plain_http = run(&t.engine, "env_gitada", &format!("printf 'protocol=http\\nhost={}\\n\\n' | GIT_TERMINAL_PROMPT=0 git credential fill", https.host));
    assert!(!plain_http.1.contains(TOKEN), "a token offered over plain http: {plain_http:?}");
    let listed = run_ok(&t.engine, "env_gitada", "SSH_AUTH_SOCK=/run/airlock/ssh-agent.sock ssh-add -L");
    assert!(listed.contains(public_key.split_whitespace().nth(1).unwrap()), "{listed}");
    assert_eq!(run_ok(&t.engine, "env_gitada", "stat -c '%a %U' /run/airlock/git-credentials.sock /run/airlock/ssh-agent.sock"), "600 dev\n600 dev");
    let (code, _, err) = run(&t.engine, "env_gitada", "touch /run/airlock/planted");
    assert_ne!(code, 0, "the user could write into the socket folder: {err}");

    // Another user's environment: its own sockets, none of ada's credentials.
    let bob = Vault::default();
    guard.start(&env_spec("env_gitbob", &image));
    let bob_sockets = serve(&t.engine, "env_gitbob", &Identity { name: "Bob".into(), email: "bob@site.internal".into() }, "", &ca, &bob, &reports);
    let (code, out, err) = run(&t.engine, "env_gitbob", &fill);
    assert!(code != 0 && !out.contains(TOKEN), "bob got a credential: {out} {err}");
    let (_, out, err) = run(&t.engine, "env_gitbob", "SSH_AUTH_SOCK=/run/airlock/ssh-agent.sock ssh-add -L");
    assert!(!out.contains("ssh-ed25519") && (out + &err).contains("no identities"), "bob's agent: {err}");
    let (_, out, _) = run(&t.engine, "env_gitbob", "ls /run/airlock; cat /run/airlock/known_hosts");
    assert!(!out.contains("127.0.0.1"), "bob sees ada's host keys: {out}");
    let bob_clone = tempfile::tempdir().unwrap();
    let refused = git::clone(&bob_sockets, &https.url(), &bob_clone.path().join("p"), "bob@site.internal", Some(&sockets.dir().join(git::CA_FILE))).unwrap_err();
    assert!(refused.contains(&format!("bob@site.internal has no git credential for {}", https.host)), "{refused}");

    // Nothing of either credential on the runner's disk (the tmpfs run folders are memory) or
    // in what the user is told.
    let secret_key_body: String = private_key.lines().nth(1).unwrap().to_string();
    for needle in [TOKEN, secret_key_body.as_str()] {
        assert_eq!(files_containing(&t.data(), needle.as_bytes()), Vec::<PathBuf>::new(), "{needle} on disk");
    }
    let told = reports.0.lock().unwrap().join("\n");
    assert!(told.contains(&https.host) && !told.contains(TOKEN), "{told}");
    drop((sockets, bob_sockets));
}

/// The developer's day: from inside the environment, over the runner's network to servers in
/// a site namespace, clone, commit and push over HTTPS (token from the credential socket) and
/// over SSH (key from the agent socket); the commits arrive under the owner's name and email.
#[test]
fn a_developer_clones_commits_and_pushes_from_inside_over_https_and_ssh() {
    let registry = Registry::start();
    let image = git_image(&registry);
    let site = Site::new("algitsite", "10.231.7.0/29");
    let ca = TestCa::for_address(IpAddr::V4(site.addr(2)));
    let https = HttpsGitServer::start_at(&ca, Some(&site));
    let keys = tempfile::tempdir().unwrap();
    let (private_key, public_key) = user_key(keys.path());
    let ssh = SshGitServer::start_at(&public_key, Some(&site));
    let mut network = airlock_runner::network::NetworkConfig::new("algit", airlock_runner::network::Ipv4Net::parse("10.231.72.0/24").unwrap());
    for host in [&https.host, &ssh.host()] {
        network.allow.push(airlock_runner::network::AllowEntry::parse(host).unwrap());
    }
    let t = TestEngine::with(&registry.addr, |o| o.network = Some(network));
    let _network = NetworkGuard(&t.engine);
    let guard = EnvGuard::new(&t.engine);

    let ada = Vault::default();
    *ada.0.lock().unwrap() = vec![
        GitCredential::Https { host: https.host.clone(), username: "ada".into(), token: TOKEN.into() },
        GitCredential::Ssh { host: ssh.host(), private_key },
    ];
    let identity = Identity { name: "Ada Lovelace".into(), email: "ada@site.internal".into() };
    guard.start(&env_spec("env_gitday", &image));
    let sockets = serve(&t.engine, "env_gitday", &identity, &ssh.known_hosts, &ca, &ada, &Reports::default());

    for (url, name, log) in [(https.url(), "over-https", https.log()), (ssh.url(), "over-ssh", ssh.log())] {
        let work = format!(
            "set -e; cd /workspace; GIT_TERMINAL_PROMPT=0 git clone -q {url} {name}; cd {name}; echo {name} > {name}.txt; \
             git add {name}.txt; git commit -qm 'from inside, {name}'; git push -q origin main 2>&1; git log -1 --format=%H"
        );
        let (code, out, err) = run(&t.engine, "env_gitday", &work);
        assert_eq!(code, 0, "{name}: {out}{err}\n{log}");
        let pushed = out.trim().lines().last().unwrap_or_default().to_string();
        let repos = if name == "over-https" { https.dir.path().join("repos/project.git") } else { ssh.dir.path().join("repos/project.git") };
        let head = ok(Command::new("git").arg("--git-dir").arg(&repos).args(["log", "-1", "--format=%H %an <%ae> %s", "main"]));
        assert_eq!(head.trim(), format!("{pushed} Ada Lovelace <ada@site.internal> from inside, {name}"), "{name}");
    }
    drop(sockets);
}

#[test]
fn a_deleted_credential_fails_the_next_clone_with_a_message_that_says_what_to_do() {
    let registry = Registry::start();
    let image = git_image(&registry);
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    let ca = TestCa::new();
    let https = HttpsGitServer::start(&ca);
    let keys = tempfile::tempdir().unwrap();
    let (private_key, public_key) = user_key(keys.path());
    let ssh = SshGitServer::start(&public_key);
    let vault = Vault::default();
    *vault.0.lock().unwrap() = vec![
        GitCredential::Https { host: https.host.clone(), username: "ada".into(), token: TOKEN.into() },
        GitCredential::Ssh { host: ssh.host(), private_key },
    ];
    guard.start(&env_spec("env_gitrevoke", &image));
    let sockets = serve(&t.engine, "env_gitrevoke", &Identity { name: "Ada".into(), email: "ada@site.internal".into() }, &ssh.known_hosts, &ca, &vault, &Reports::default());
    let ca_file = sockets.dir().join(git::CA_FILE);
    let out = tempfile::tempdir().unwrap();
    git::clone(&sockets, &https.url(), &out.path().join("a"), "ada@site.internal", Some(&ca_file)).unwrap_or_else(|e| panic!("{e}\n{}", https.log()));
    git::clone(&sockets, &ssh.url(), &out.path().join("b"), "ada@site.internal", None).unwrap_or_else(|e| panic!("{e}\n{}", ssh.log()));

    // Deleted with the control plane: the very next request gets nothing.
    vault.0.lock().unwrap().clear();
    let https_refused = git::clone(&sockets, &https.url(), &out.path().join("c"), "ada@site.internal", Some(&ca_file)).unwrap_err();
    assert!(
        https_refused.contains(&format!("ada@site.internal has no git credential for {}", https.host)) && https_refused.contains("airlock admin git-credentials add"),
        "{https_refused}"
    );
    assert!(!https_refused.contains(TOKEN));
    let ssh_refused = git::clone(&sockets, &ssh.url(), &out.path().join("d"), "ada@site.internal", None).unwrap_err();
    assert!(ssh_refused.contains("has no SSH key the server accepts") && ssh_refused.contains("--ssh"), "{ssh_refused}");
    let listed = run(&t.engine, "env_gitrevoke", "SSH_AUTH_SOCK=/run/airlock/ssh-agent.sock ssh-add -L");
    assert!(!listed.1.contains("ssh-ed25519"), "the deleted key is still offered: {listed:?}");
}

#[test]
fn a_host_key_other_than_the_stored_one_is_refused() {
    let registry = Registry::start();
    let image = git_image(&registry);
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    let ca = TestCa::new();
    let keys = tempfile::tempdir().unwrap();
    let (private_key, public_key) = user_key(keys.path());
    let ssh = SshGitServer::start(&public_key);
    let vault = Vault::default();
    *vault.0.lock().unwrap() = vec![GitCredential::Ssh { host: ssh.host(), private_key }];
    guard.start(&env_spec("env_githostkey", &image));
    // The stored line is another server's key.
    let other_dir = keys.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let (_, other) = user_key(&other_dir);
    let wrong = format!("[127.0.0.1]:{} {}\n", ssh.port, other.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    let sockets = serve(&t.engine, "env_githostkey", &Identity::default(), &wrong, &ca, &vault, &Reports::default());
    let out = tempfile::tempdir().unwrap();
    let refused = git::clone(&sockets, &ssh.url(), &out.path().join("p"), "ada@site.internal", None).unwrap_err();
    assert!(refused.contains("host key is not one stored"), "{refused}");
    assert!(!ssh.log().contains("Accepted publickey"), "authenticated to a server with an unknown key");
}
