//! A repository's devcontainer.json applied by the runner (issue #17 §2), against real runc:
//! the image from the mirror, a feature served as an OCI artifact and installed once into a
//! cached layer, containerEnv/remoteEnv, lifecycle commands in the spec's order, VS Code
//! settings and extensions; hostile files and a failing feature refused with clear errors.

mod support;

use std::fs;

use airlock_runner::devcontainer::{self, ClassResources, DevcontainerError, Plan, Start, EXTENSIONS_FILE, VSCODE_SETTINGS};
use airlock_runner::engine::Engine;
use support::*;

const FEATURE_CONFIG: &str = "application/vnd.devcontainers";
const FEATURE_LAYER: &str = "application/vnd.devcontainers.layer.v1+tar";

/// A feature as the features distribution spec ships it: a tar with
/// devcontainer-feature.json and install.sh.
fn feature_tar(install: &str) -> Vec<u8> {
    let meta = serde_json::json!({
        "id": "hello",
        "version": "1.0.0",
        "options": {"greeting": {"type": "string", "default": "hi"}},
        "containerEnv": {"HELLO_HOME": "/opt/hello"}
    });
    LayerBuilder::default()
        .file("devcontainer-feature.json", &serde_json::to_vec(&meta).unwrap(), 0o644, 0)
        .file("install.sh", install.as_bytes(), 0o755, 0)
        .tar()
}

/// Writes the option, the users it was told and a unique install stamp into /opt/hello.
const INSTALL: &str = "#!/bin/sh\nset -e\nmkdir -p /opt/hello\necho \"$GREETING\" > /opt/hello/greeting\n\
echo \"$_REMOTE_USER $_REMOTE_USER_HOME\" > /opt/hello/users\ncat /proc/sys/kernel/random/uuid > /opt/hello/stamp\necho installed-hello\n";

/// Routes for a feature artifact `repo:1`; returns the layer's blob path.
fn feature_routes(routes: &mut Routes, repo: &str, layer: Vec<u8>) -> String {
    let config = b"{}".to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": FEATURE_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": FEATURE_LAYER, "digest": sha256(&layer), "size": layer.len(),
                    "annotations": {"org.opencontainers.image.title": "devcontainer-feature-hello.tgz"}}]
    }))
    .unwrap();
    let blob = format!("/v2/{repo}/blobs/{}", sha256(&layer));
    routes.insert(format!("/v2/{repo}/manifests/1"), MANIFEST, manifest);
    routes.insert(format!("/v2/{repo}/blobs/{}", sha256(&config)), "application/octet-stream", config);
    routes.insert(blob.clone(), "application/octet-stream", layer);
    blob
}

/// The shape of the devcontainers templates: image, a feature with an option, a creation
/// command, VS Code customizations (comments and trailing commas included).
const TEMPLATE: &str = r#"{
    // From the templates
    "name": "Hello",
    "image": "mcr.microsoft.com/devcontainers/base:1",
    "features": {
        "ghcr.io/devcontainers/features/hello:1": { "greeting": "hello-airlock" },
    },
    "containerEnv": { "CONTAINER_VAR": "from-container-env" },
    "remoteEnv": { "SESSION_VAR": "from-remote-env" },
    "forwardPorts": [3000],
    "postCreateCommand": "echo created >> /workspace/created.log",
    "postStartCommand": ["sh", "-c", "echo started >> /workspace/started.log"],
    "customizations": { "vscode": {
        "extensions": ["ms-python.python"],
        "settings": { "editor.tabSize": 2 }
    } },
    "runArgs": ["--privileged"],
}"#;

fn plan_of(text: &str, mirror: &str) -> Result<Plan, String> {
    let repo = tempfile::tempdir().unwrap();
    fs::create_dir(repo.path().join(".devcontainer")).unwrap();
    fs::write(repo.path().join(".devcontainer/devcontainer.json"), text).unwrap();
    let found = devcontainer::read_config(repo.path()).map_err(|e| e.to_string())?.expect("the file is found");
    let parsed = airlock_devcontainer::parse(&found.text, &found.origin).map_err(|e| e.to_string())?;
    let class = ClassResources { cpu_millis: 1000, memory_mib: 256, disk_gib: 4, pids: 256 };
    Plan::new(parsed, &found.origin, &format!("{mirror}/project/image:1"), &class).map_err(|e| e.to_string())
}

struct Mirror {
    server: StandIn,
    feature_blob: String,
}

fn mirror(install: &str) -> Mirror {
    let mut routes = test_image().routes("devcontainers/base", "1");
    let feature_blob = feature_routes(&mut routes, "devcontainers/features/hello", feature_tar(install));
    Mirror { server: StandIn::start(routes), feature_blob }
}

/// Starts an environment of the plan the way the agent does; returns the events.
fn start_env(engine: &Engine, guard: &EnvGuard, id: &str, plan: &Plan, start: Start) -> Vec<(String, String)> {
    let mut events = Vec::new();
    let mut report = |kind: &str, message: &str| events.push((kind.to_string(), message.to_string()));
    let mut spec = spec(id, "unused");
    // As the agent does on every start: a built layer comes from the cache.
    let features = devcontainer::build_features(engine, plan, &mut report).unwrap_or_else(|e| panic!("features: {e}"));
    plan.apply(&mut spec, &features);
    guard.start(&spec);
    devcontainer::write_vscode_files(engine, id, plan).unwrap();
    devcontainer::run_lifecycle(engine, id, plan, start, &mut report);
    events
}

fn kinds(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn a_template_devcontainer_installs_its_feature_once_and_runs_its_commands_in_order() {
    let mirror = mirror(INSTALL);
    let t = TestEngine::new(&mirror.server.addr);
    let guard = EnvGuard::new(&t.engine);
    let plan = plan_of(TEMPLATE, &mirror.server.addr).unwrap();
    assert_eq!(plan.image, format!("{}/devcontainers/base:1", mirror.server.addr));
    assert!(plan.ignored.iter().any(|p| p.contains("runArgs")), "{:?}", plan.ignored);
    assert_eq!(plan.ports(), ["3000"]);

    let events = start_env(&t.engine, &guard, "env_dca", &plan, Start::First);
    assert_eq!(kinds(&events), ["features", "feature", "lifecycle", "lifecycle"], "{events:#?}");
    assert!(events[1].1.contains("installed-hello"), "{events:#?}");
    assert!(events[2].1.starts_with("postCreateCommand succeeded"), "{events:#?}");
    assert!(events[3].1.starts_with("postStartCommand succeeded"), "{events:#?}");

    // install.sh ran with the option and the users; containerEnv and remoteEnv in sessions.
    assert_eq!(run_ok(&t.engine, "env_dca", "cat /opt/hello/greeting"), "hello-airlock");
    assert_eq!(run_ok(&t.engine, "env_dca", "cat /opt/hello/users"), "root /root");
    assert_eq!(run_ok(&t.engine, "env_dca", "echo $HELLO_HOME $CONTAINER_VAR $SESSION_VAR"), "/opt/hello from-container-env from-remote-env");
    assert!(run_ok(&t.engine, "env_dca", "ls -a /").lines().all(|l| l != ".airlock-features"));
    let settings = run_ok(&t.engine, "env_dca", &format!("cat $HOME/{VSCODE_SETTINGS}"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&settings).unwrap(), serde_json::json!({"editor.tabSize": 2}));
    assert_eq!(run_ok(&t.engine, "env_dca", &format!("cat $HOME/{EXTENSIONS_FILE}")), r#"["ms-python.python"]"#);
    let stamp = run_ok(&t.engine, "env_dca", "cat /opt/hello/stamp");

    // Second start: postStart again, postCreate not.
    t.engine.stop("env_dca").unwrap();
    let again = start_env(&t.engine, &guard, "env_dca", &plan, Start::Again);
    assert_eq!(kinds(&again), ["features", "features", "lifecycle"], "{again:#?}");
    assert!(again[1].1.contains("from the runner's cache"), "no install.sh on a restart: {again:#?}");
    assert_eq!(run_ok(&t.engine, "env_dca", "cat /workspace/created.log"), "created");
    assert_eq!(run_ok(&t.engine, "env_dca", "cat /workspace/started.log"), "started\nstarted");

    // Another environment of the same definition starts from the cached layer.
    let second = start_env(&t.engine, &guard, "env_dcb", &plan, Start::First);
    assert_eq!(kinds(&second), ["features", "features", "lifecycle", "lifecycle"], "{second:#?}");
    assert!(second[1].1.contains("from the runner's cache"), "{second:#?}");
    assert_eq!(run_ok(&t.engine, "env_dcb", "cat /opt/hello/stamp"), stamp, "install.sh ran again");
    assert_eq!(mirror.server.hits(&mirror.feature_blob), 1, "{:?}", mirror.server.paths());
    // Each environment has its own upper: a change in one is not seen by the other.
    run_ok(&t.engine, "env_dcb", "echo changed > /opt/hello/greeting");
    assert_eq!(run_ok(&t.engine, "env_dca", "cat /opt/hello/greeting"), "hello-airlock");
}

#[test]
fn concurrent_starts_of_one_definition_build_the_layer_once() {
    let mirror = mirror(INSTALL);
    let t = TestEngine::new(&mirror.server.addr);
    let plan = plan_of(TEMPLATE, &mirror.server.addr).unwrap();
    let built: Vec<bool> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2).map(|_| s.spawn(|| devcontainer_layer_built(&t.engine, &plan))).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(built.iter().filter(|b| **b).count(), 1, "{built:?}");
}

fn devcontainer_layer_built(engine: &Engine, plan: &Plan) -> bool {
    let mut events = Vec::new();
    devcontainer::build_features(engine, plan, &mut |k, m| events.push((k.to_string(), m.to_string()))).unwrap();
    events.iter().any(|(k, _)| k == "feature")
}

#[test]
fn a_failing_install_names_the_feature_and_its_output_and_leaves_no_cache() {
    let mirror = mirror("#!/bin/sh\necho apt-get could not reach the archive >&2\nexit 3\n");
    let t = TestEngine::new(&mirror.server.addr);
    let plan = plan_of(TEMPLATE, &mirror.server.addr).unwrap();
    let err = devcontainer::build_features(&t.engine, &plan, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("hello") && err.contains("exited with 3") && err.contains("could not reach the archive"), "{err}");
    let features = t.data().join("images/features");
    let cached: Vec<_> = fs::read_dir(&features).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(cached.is_empty(), "{cached:?}");
    let envs: Vec<_> = fs::read_dir(t.data().join("envs")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(envs.is_empty(), "the build container stayed: {envs:?}");
    assert!(mounts_under(&t.data()).is_empty());
}

#[test]
fn hostile_devcontainer_files_are_refused_with_what_to_do() {
    let mirror = "mirror.example:5000";
    let build = plan_of(r#"{"build": {"dockerfile": "Dockerfile"}}"#, mirror).unwrap_err();
    assert!(build.contains("builds its image") && build.contains("offline manifest"), "{build}");

    let big = plan_of(r#"{"image": "x.example/a:1", "hostRequirements": {"cpus": 8, "memory": "4gb"}}"#, mirror).unwrap_err();
    assert!(big.contains("8 CPUs") && big.contains("gives 1 CPUs"), "{big}");
    let memory = plan_of(r#"{"image": "x.example/a:1", "hostRequirements": {"memory": "4gb"}}"#, mirror).unwrap_err();
    assert!(memory.contains("4096 MiB") && memory.contains("256 MiB"), "{memory}");
    let storage = plan_of(r#"{"image": "x.example/a:1", "hostRequirements": {"storage": "32gb"}}"#, mirror).unwrap_err();
    assert!(storage.contains("32 GiB of storage") && storage.contains("gives 4 GiB"), "{storage}");
    let gpu = plan_of(r#"{"image": "x.example/a:1", "hostRequirements": {"gpu": true}}"#, mirror).unwrap_err();
    assert!(gpu.contains("requires a GPU") && gpu.contains("\"optional\""), "{gpu}");
    let fits = plan_of(r#"{"image": "x.example/a:1", "hostRequirements": {"storage": "4gb", "gpu": "optional"}}"#, mirror);
    assert!(fits.is_ok_and(|plan| plan.ignored.contains(&"hostRequirements.gpu".to_string())), "within the class, an optional GPU listed as ignored");

    let invalid = plan_of("{\n  \"image\": \"a\",\n  \"features\": {,\n}", mirror).unwrap_err();
    assert!(invalid.contains("devcontainer.json:3:"), "the file and line are named: {invalid}");
}

#[test]
fn devcontainer_json_is_read_without_leaving_the_repository() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.json"), "{}").unwrap();
    let repo = tempfile::tempdir().unwrap();
    assert!(devcontainer::read_config(repo.path()).unwrap().is_none());

    std::os::unix::fs::symlink(outside.path().join("secret.json"), repo.path().join(".devcontainer.json")).unwrap();
    let err = devcontainer::read_config(repo.path()).unwrap_err();
    assert!(matches!(err, DevcontainerError::LeavesRepository { .. }) && err.to_string().contains("out of the repository"), "{err}");

    fs::remove_file(repo.path().join(".devcontainer.json")).unwrap();
    fs::create_dir(repo.path().join(".devcontainer")).unwrap();
    let big = repo.path().join(".devcontainer/devcontainer.json");
    fs::write(&big, vec![b' '; (devcontainer::MAX_CONFIG_BYTES + 1) as usize]).unwrap();
    let err = devcontainer::read_config(repo.path()).unwrap_err();
    assert!(matches!(err, DevcontainerError::TooLarge { .. }) && err.to_string().contains("more than"), "{err}");

    fs::remove_file(&big).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, &big, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o644), 0).unwrap();
    let err = devcontainer::read_config(repo.path()).unwrap_err();
    assert!(matches!(err, DevcontainerError::NotRegular { .. }) && err.to_string().contains("not a regular file"), "{err}");
}
