//! Many environments from one image at once: started from parallel threads, each one
//! working, all deleted, and nothing left mounted.

mod support;

use std::fs;

use support::*;

const COUNT: usize = 50;

#[test]
fn fifty_environments_start_in_parallel_work_and_are_all_deleted() {
    let registry = Registry::start();
    let image = registry.push(&test_image(), "devcontainers/test:1");
    let t = TestEngine::new(&registry.addr);
    let guard = EnvGuard::new(&t.engine);
    let ids: Vec<String> = (0..COUNT).map(|i| format!("env_many{i}")).collect();

    let outputs: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (guard, engine, image) = (&guard, &t.engine, &image);
                scope.spawn(move || {
                    guard.start(&spec(id, image));
                    (id.clone(), run_ok(engine, id, "id -u; hostname"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a start thread panicked")).collect()
    });
    for (id, out) in &outputs {
        assert_eq!(out.lines().collect::<Vec<_>>(), ["0", &id.replace('_', "-")], "{id}");
    }
    let mut uids: Vec<u32> = ids.iter().map(|id| t.engine.host_uid(id).unwrap()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), COUNT, "uid ranges shared");
    let listed = t.engine.list().unwrap();
    assert_eq!(listed.iter().filter(|e| matches!(e.status, airlock_runner::engine::EnvStatus::Running { .. })).count(), COUNT);
    assert_eq!(fs::read_dir(t.data().join("images/rootfs")).unwrap().count(), 1, "the image was unpacked more than once");

    std::thread::scope(|scope| {
        for chunk in ids.chunks(COUNT / 4) {
            let engine = &t.engine;
            scope.spawn(move || {
                for id in chunk {
                    engine.delete(id).unwrap_or_else(|e| panic!("delete {id}: {e}"));
                }
            });
        }
    });
    assert!(t.engine.list().unwrap().is_empty());
    assert_eq!(mounts_under(&t.data()), Vec::<String>::new(), "mounts left");
    assert!(fs::read_dir(t.data().join("slots")).unwrap().next().is_none(), "slots not freed");
}
