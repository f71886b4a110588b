//! `airlock demo`: the whole chain on this machine with no network beyond loopback and the
//! demo's own site network (git_site.rs). Each step runs the same commands a user would (this
//! binary's own subcommands, the API, stock ssh and git).

mod git_site;

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use airlock_bundler::sample;
use git_site::{GitSite, SiteNames};
use airlock_control_plane::client::{Client, Method};
use anyhow::{bail, Context};
use serde_json::{json, Value};

#[derive(clap::Args)]
#[command(after_help = "Example:\n  airlock demo\n  airlock demo --keep --dir ./airlock-demo\n  airlock demo --stop --dir ./airlock-demo")]
pub struct Args {
    /// Working folder (must be empty or absent; default: a new folder under /tmp, removed at the end).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Leave the server and the environment running, and print how to go on and how to end it.
    #[arg(long, conflicts_with = "stop")]
    keep: bool,
    /// End a demo left running with --keep: delete its environments, stop its server, check that
    /// no mount or process is left, and remove its folder (given with --dir).
    #[arg(long, requires = "dir")]
    stop: bool,
    /// The static busybox the sample image is made of.
    #[arg(long, value_name = "FILE", default_value = "/bin/busybox")]
    busybox: PathBuf,
}

/// Written into the demo's folder: marks it as one `--stop` may remove, and names its server.
const STATE_FILE: &str = "demo-state.json";
const OWNER_TOKEN: &str = "data/control-plane/owner-token";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let me = std::env::current_exe().context("cannot find the airlock binary")?;
    if args.stop {
        let dir = args.dir.as_deref().expect("clap requires --dir with --stop");
        stop_kept(dir, &me)?;
        println!("stopped the demo in {} and removed the folder", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    check_prerequisites(&args.busybox)?;
    let (dir, temporary) = match &args.dir {
        Some(d) => {
            if d.exists() && fs::read_dir(d)?.next().is_some() {
                bail!("{} is not empty; give an empty or new folder with --dir", d.display());
            }
            fs::create_dir_all(d)?;
            (d.canonicalize()?, false)
        }
        None => (tempfile::Builder::new().prefix("airlock-demo.").tempdir()?.keep(), true),
    };
    let mut demo = Demo { dir: dir.clone(), me, server: None, api: None, site: None };
    match demo.run(&args, started) {
        Ok(()) if args.keep => Ok(ExitCode::SUCCESS),
        Ok(()) => {
            if temporary {
                fs::remove_dir_all(&dir).with_context(|| format!("cannot remove the demo's folder {}", dir.display()))?;
                println!("\nDone in {:.0?}. Run `airlock demo --keep` to leave it running.", started.elapsed());
            } else {
                println!("\nDone in {:.0?}. Run `airlock demo --keep` to leave it running; files are in {}", started.elapsed(), dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // Environments outlive their runner by design: end them before the server goes.
            if let Err(cleanup) = demo.delete_environments() {
                eprintln!("warning: could not delete the demo's environments ({cleanup:#}); end them with `airlock demo --stop --dir {}`", dir.display());
            } else if temporary {
                drop(demo.server.take());
                let _ = fs::remove_dir_all(&dir);
            }
            Err(e)
        }
    }
}

/// Dropped in field order: the server (and its runner) before the site network it uses.
struct Demo {
    dir: PathBuf,
    me: PathBuf,
    server: Option<Server>,
    api: Option<Client>,
    site: Option<GitSite>,
}

/// The project's devcontainer.json, shaped like the public devcontainers templates: an image
/// and a feature by their upstream names (the runner takes both from the mirror), and a
/// lifecycle command that uses what the feature installed.
const DEVCONTAINER_JSON: &str = r#"// The project's development container.
{
    "name": "demo",
    "image": "mcr.microsoft.com/devcontainers/base:git",
    "features": {
        "ghcr.io/airlock-demo/features/hello:1": { "greeting": "hello" },
    },
    "postCreateCommand": "hello > /root/hello.txt",
    "containerEnv": { "PROJECT": "demo" },
}
"#;

impl Demo {
    fn airlock(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.me).args(args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("`airlock {}` failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run(&mut self, args: &Args, started: Instant) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let path = |p: &str| dir.join(p).to_string_lossy().into_owned();

        step(1, &format!("a fresh signing key in {}", dir.display()));
        self.airlock(&["keygen", "--out", &path("release")])?;

        step(2, "sample content, built locally: devcontainer images, a devcontainer feature and a release file");
        let content = dir.join("content");
        let digest = sample::build(&content, &args.busybox, &self.me)?;
        sample::build_devcontainer_demo(&content, &args.busybox, &[Path::new("/usr/bin/git"), Path::new("/usr/bin/ssh")])?;
        fs::write(content.join("demo.toml"), format!("{}{}", sample::SAMPLE_MANIFEST, sample::DEVCONTAINER_DEMO_MANIFEST))?;
        println!("    image devcontainers/base:tiny = {digest}");
        println!("    image devcontainers/base:git (busybox, git and ssh), feature airlock-demo/features/hello:1");

        step(3, "a signed bundle, verified as the air-gapped side will");
        self.airlock(&["bundle", "create", "--manifest", &path("content/demo.toml"), "--key", &path("release.key"), "--out", &path("sample.airlock.tar.zst")])?;
        print!("{}", indent(&self.airlock(&["bundle", "verify", &path("sample.airlock.tar.zst"), "--trusted-key", &path("release.pub")])?));

        step(4, "import it into the mirror (streamed, verified, committed atomically)");
        self.airlock(&["mirror", "import", &path("sample.airlock.tar.zst"), "--trusted-key", &path("release.pub"), "--data-dir", &path("data")])?;

        step(5, "the site's git server: OpenSSH with git-shell in its own network namespace, holding the project and its devcontainer.json");
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "airlock-demo", "-f", &path("id_ed25519")]).status()?;
        let public = fs::read_to_string(dir.join("id_ed25519.pub"))?;
        let readme = "# demo\n\nA project developed in an airlock environment.\n";
        let site = GitSite::start(&dir, public.trim(), &[(".devcontainer/devcontainer.json", DEVCONTAINER_JSON), ("README.md", readme)])?;
        println!("    {} (network namespace {})", site.url(), site.names.netns);
        let (git_host, env_subnet, site_net, names) = (site.host(), site.env_subnet.clone(), site.site_net.clone(), site.names.clone());
        let known_hosts = site.known_hosts()?;
        let repository = site.url();
        self.site = Some(site);

        step(6, "start `airlock server`: mirror, control plane and a runner in one process; environments get a network that reaches the git server and nothing else");
        let config = dir.join("airlock.toml");
        fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n[site]\nname = \"demo\"\n[egress]\nallow = [\"{site_net}\"]\n[mirror]\nlisten = \"127.0.0.1:0\"\n[control_plane]\nlisten = \"127.0.0.1:0\"\nkek_files = [\"{}\"]\n\
                 [runner]\nssh_listen = \"127.0.0.1:0\"\ncapacity = 4\n[runner.network]\nenabled = true\nbridge = \"{}\"\nsubnet = \"{env_subnet}\"\nallow = [\"{git_host}\"]\n",
                path("data"),
                // Beside the data folder, not in it: a copy of the folder does not carry the key.
                path("kek"),
                names.bridge,
            ),
        )?;
        let mut server = Server::start(&self.me, &config, &dir)?;
        let urls = server.wait_ready()?;
        let site = self.site.as_ref().expect("started above");
        fs::write(
            dir.join(STATE_FILE),
            serde_json::to_vec(&json!({"server_pid": server.child.id(), "site": names.to_json(), "sshd_pid": site.sshd_pid()}))?,
        )?;
        self.server = Some(server);
        println!("    mirror        {}\n    control plane {}\n    ssh gateway   {}", urls.mirror, urls.control_plane, urls.ssh);

        step(7, "bootstrap: the owner's token, an environment class, the project on the git server, the owner's SSH key for the gateway and for git");
        let token = fs::read_to_string(dir.join(OWNER_TOKEN))?.trim().to_string();
        self.api = Some(Client::new(&urls.control_plane, Some(token.clone()), None)?);
        let api = self.api.as_ref().expect("set above");
        let class = api.call(Method::POST, "/api/v1/classes", &[], Some(&json!({"name": "small", "resources": {"cpu_millis": 1000, "memory_mib": 512, "disk_gib": 1, "pids": 256}})))?;
        let mirror_host = urls.mirror.trim_start_matches("http://").to_string();
        let project = api.call(Method::POST, "/api/v1/projects", &[], Some(&json!({
            "name": "demo", "repository_url": repository, "image": format!("{mirror_host}/devcontainers/base:tiny"),
            "class_id": class["id"], "tasks": [{"name": "hello", "command": "echo 'hello from the demo task' > /workspace/hello.txt"}],
        })))?;
        api.call(Method::POST, "/api/v1/ssh-keys", &[], Some(&json!({"name": "demo", "public_key": public.trim()})))?;
        fs::write(dir.join("git/known_hosts"), &known_hosts)?;
        let mut add = Command::new(&self.me);
        add.args(["admin", "git-credentials", "add", "--host", &git_host, "--ssh", "--known-hosts-file", &path("git/known_hosts"), "--value-file", &path("id_ed25519")])
            .env("AIRLOCK_URL", &urls.control_plane)
            .env("AIRLOCK_TOKEN", &token);
        let added = add.output()?;
        if !added.status.success() {
            bail!("storing the owner's git credential failed: {}", String::from_utf8_lossy(&added.stderr));
        }
        println!("    project {} clones {repository}", project["id"].as_str().unwrap_or(""));

        step(8, "launch an environment: the runner clones the repository with the owner's key, applies its devcontainer.json from the mirror and starts it with runc");
        let env = api.call(Method::POST, "/api/v1/environments", &[], Some(&json!({"project_id": project["id"]})))?;
        let env_id = env["id"].as_str().unwrap_or_default().to_string();
        let running = wait_for(api, &env_id, "running")?;
        for e in api.call(Method::GET, &format!("/api/v1/environments/{env_id}/events"), &[], None)?["items"].as_array().into_iter().flatten() {
            println!("    [{}] {}", e["kind"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("").lines().next().unwrap_or(""));
        }
        println!("    {env_id} ({}) is {}", running["name"].as_str().unwrap_or(""), running["phase"].as_str().unwrap_or(""));

        step(9, "work in it over SSH, with stock OpenSSH and `airlock ssh-config`");
        self.airlock(&["ssh-config", "--url", &urls.control_plane, "--token", &token, "--dir", &path("ssh"), "--identity-file", &path("id_ed25519")])?;
        let ssh_line = format!("ssh -F {} {env_id}.airlock.environment", dir.join("ssh/config").display());
        let in_environment = |command: &str| -> anyhow::Result<String> {
            println!("    $ {ssh_line} '{}'", command.replace('\'', "'\\''"));
            let out = Command::new("ssh")
                .arg("-F").arg(dir.join("ssh/config"))
                .args(["-o", "BatchMode=yes", &format!("{env_id}.airlock.environment"), command])
                .output()?;
            print!("{}", indent(&String::from_utf8_lossy(&out.stdout)));
            if !out.status.success() {
                bail!("`{command}` in the environment failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        in_environment("id; hostname; cat /workspace/hello.txt /root/hello.txt; ls /sys/class/net")?;

        step(10, "commit and push from inside the environment, as the owner, over the environment's network");
        in_environment(
            "cd /workspace && echo 'Changed inside an airlock environment.' >> README.md && git commit -qam 'A change made inside the environment' \
             && git push -q origin HEAD:main && git log -1 --format='%h %an <%ae> %s'",
        )?;
        let head = self.site.as_ref().expect("started above").head()?;
        println!("    the git server's main is now: {head}");
        if !head.contains("A change made inside the environment") {
            bail!("the push did not reach the git server: its main is {head}");
        }

        if args.keep {
            let server = self.server.take().expect("started above");
            println!(
                "\nDone in {:.0?}; everything keeps running (server pid {}).\n  mirror         {}\n  control plane  {}\n  ssh            {ssh_line}\n  git            {repository}\n  files          {}\n\
                 Drive it with the admin CLI from this shell:\n  export AIRLOCK_URL={} AIRLOCK_TOKEN={token}\n  airlock admin environments list\n\
                 End it (environments, server, mounts and files):\n  {} demo --stop --dir {}",
                started.elapsed(), server.child.id(), urls.mirror, urls.control_plane, dir.display(), urls.control_plane, self.me.display(), dir.display()
            );
            server.detach();
            self.site.take().expect("started above").detach();
            return Ok(());
        }
        step(11, "clean up: delete the environment, stop the server, remove the site network");
        self.delete_environments()?;
        self.server.take().expect("started above").stop()?;
        drop(self.site.take());
        Ok(())
    }

    /// Deletes every environment the demo's control plane knows and waits until each is gone.
    fn delete_environments(&self) -> anyhow::Result<()> {
        let Some(api) = &self.api else { return Ok(()) };
        delete_environments(api)
    }
}

fn delete_environments(api: &Client) -> anyhow::Result<()> {
    let envs = api.list_all("/api/v1/environments", &[])?;
    let live: Vec<String> = envs
        .iter()
        .filter(|e| e["phase"] != "deleted")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    for id in &live {
        api.call(Method::DELETE, &format!("/api/v1/environments/{id}"), &[], None)?;
    }
    for id in &live {
        wait_for(api, id, "deleted")?;
    }
    Ok(())
}

/// `--stop`: ends what `--keep` left. The server is restarted first if it is gone, because only
/// its runner can end the environments (they outlive it by design).
fn stop_kept(dir: &Path, me: &Path) -> anyhow::Result<()> {
    // The server was started with absolute paths; compare like with like.
    let dir = &dir.canonicalize().with_context(|| format!("cannot find the demo folder {}", dir.display()))?;
    let state_file = dir.join(STATE_FILE);
    let state: Value = match fs::read(&state_file) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", state_file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is not a running demo's folder (it has no {STATE_FILE}); give the folder `airlock demo --keep` printed",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", state_file.display())),
    };
    let config = dir.join("airlock.toml");
    let pid = state["server_pid"].as_u64().and_then(|p| i32::try_from(p).ok());
    let urls;
    let mut restarted = None;
    match pid.filter(|&p| is_our_server(p, &config)) {
        Some(_) => urls = read_urls(&fs::read_to_string(dir.join("server.out")).unwrap_or_default()),
        None => {
            println!("the demo's server is not running; starting it again to end its environments");
            let mut server = Server::start(me, &config, dir)?;
            urls = server.wait_ready()?;
            restarted = Some(server);
        }
    }
    let token = fs::read_to_string(dir.join(OWNER_TOKEN)).with_context(|| format!("cannot read the owner's token in {}", dir.display()))?;
    let api = Client::new(&urls.control_plane, Some(token.trim().to_string()), None)?;
    delete_environments(&api)?;
    match restarted {
        Some(mut server) => server.stop()?,
        None => stop_pid(pid.expect("running server"))?,
    }
    // The git server and the runner's network, once nothing uses them.
    if let Some(names) = SiteNames::from_json(&state["site"]) {
        names.remove(state["sshd_pid"].as_i64().and_then(|p| i32::try_from(p).ok()));
    }
    let mounts = mounts_under(dir)?;
    if !mounts.is_empty() {
        bail!("mounts are left under {} after the server stopped: {}; unmount them (umount -R) and run this again", dir.display(), mounts.join(", "));
    }
    fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// True if `pid` is a live `airlock server` started with this demo's configuration (not a
/// process that reused the number).
fn is_our_server(pid: i32, config: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let config = config.as_os_str().as_encoded_bytes();
    args.contains(&b"server".as_slice()) && args.contains(&config) && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// SIGTERM, then wait until the process is gone (it is not our child: poll /proc).
fn stop_pid(pid: i32) -> anyhow::Result<()> {
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        if Instant::now() > deadline {
            bail!("the demo's server (pid {pid}) did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Mount points at or below `dir`, from the mount table.
fn mounts_under(dir: &Path) -> anyhow::Result<Vec<String>> {
    let table = fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect())
}

fn step(n: u32, what: &str) {
    if crate::logging::colour(std::io::stdout().is_terminal()) {
        println!("\n\x1b[1m==> {n}. {what}\x1b[0m");
    } else {
        println!("\n==> {n}. {what}");
    }
    let _ = std::io::stdout().flush();
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Everything missing, said at once, with the package that brings it.
fn check_prerequisites(busybox: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let on_path = |name: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    for (tool, package) in [
        ("runc", "runc"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("git", "git"),
        ("ip", "iproute2"),
        ("nft", "nftables"),
    ] {
        if !on_path(tool) {
            missing.push(format!("`{tool}` (Debian package {package})"));
        }
    }
    if !Path::new("/usr/sbin/sshd").is_file() {
        missing.push("`/usr/sbin/sshd`, the demo's git server (Debian package openssh-server)".into());
    }
    if !busybox.is_file() {
        missing.push(format!("a static busybox at {} (Debian package busybox-static)", busybox.display()));
    }
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root: the runner creates namespaces, mounts and cgroups (run as root)".into());
    }
    if !missing.is_empty() {
        bail!("the demo needs:\n  - {}\n`make demo` installs the packages", missing.join("\n  - "));
    }
    Ok(())
}

fn wait_for(api: &Client, env: &str, phase: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = api.call(Method::GET, &format!("/api/v1/environments/{env}"), &[], None)?;
        if v["phase"] == phase {
            return Ok(v);
        }
        if v["phase"] == "failed" || Instant::now() > deadline {
            bail!("environment {env} did not become {phase}: it is {} ({})", v["phase"], v["failure_reason"]);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The addresses `airlock server` announces on its standard output.
fn read_urls(text: &str) -> Urls {
    let after = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or("").to_string();
    Urls {
        mirror: after("mirror listening on "),
        control_plane: after("control plane listening on "),
        ssh: after("ssh gateway listening on "),
    }
}

struct Urls {
    mirror: String,
    control_plane: String,
    ssh: String,
}

struct Server {
    child: Child,
    out: PathBuf,
    log: PathBuf,
    detached: bool,
}

impl Server {
    fn start(me: &Path, config: &Path, dir: &Path) -> anyhow::Result<Server> {
        let out = dir.join("server.out");
        let log = dir.join("server.log");
        let mut cmd = Command::new(me);
        cmd.arg("server").arg("--config").arg(config)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out)?)
            .stderr(fs::File::create(&log)?);
        // Its own session, so that `--keep` can leave it running after the demo exits.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        Ok(Server { child: cmd.spawn().context("cannot start airlock server")?, out, log, detached: false })
    }

    fn wait_ready(&mut self) -> anyhow::Result<Urls> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = fs::read_to_string(&self.out).unwrap_or_default();
            if text.contains("airlock server ready") {
                return Ok(read_urls(&text));
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("airlock server exited ({status}):\n{}", fs::read_to_string(&self.log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                bail!("airlock server did not get ready in 60 s; see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn detach(mut self) {
        self.detached = true;
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("airlock server stopped with {status}; see {}", self.log.display());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.detached && self.child.try_wait().ok().flatten().is_none() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}
