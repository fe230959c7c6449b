//! Crash safety of the storage operations (issue 15): a crash at every named step of snapshot
//! create, restore, snapshot delete, image import and image delete, and kill -9 at random
//! instants of a stream of mixed operations. After each restart, everything the kernel and the
//! disk hold matches the store (`hoody_e2e::consistency`), every answer the client got is still
//! true, and what was not answered left no trace: an alias crashed on can be used again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hoody_e2e::consistency::consistent;
use hoody_e2e::tarball::{Kind, build};
use hoody_e2e::{Driver, World};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn snapshots(w: &World, c: &str) -> Vec<String> {
    w.ok(&["snapshots", "list", "-c", c]).as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

fn images(w: &World) -> Vec<String> {
    w.ok(&["images", "list"]).as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

/// A small image archive on the host.
fn archive(w: &World, name: &str) -> String {
    let p = w.dir.join(format!("{name}.tar"));
    std::fs::write(&p, build(&[("etc", Kind::Dir), ("etc/hello", Kind::File(b"hello\n"))])).unwrap();
    p.display().to_string()
}

/// Restarts the daemon with a crash armed at `step`, runs `op` (which must crash it), then
/// restarts it clean and checks that kernel, disk and store agree.
fn crash_at(w: &mut World, step: &str, op: &[&str]) {
    w.stop_daemon();
    w.env = vec![("HOODY_FAULTS".into(), format!("crash:{step}"))];
    w.start_daemon();
    let r = w.ctl(op);
    assert_ne!(r.code, 0, "{step}: the daemon should have crashed: {r:?}");
    assert!(w.daemon_log().contains("injected crash"), "{step}: no injected crash in the log");
    w.kill_daemon();
    w.env.clear();
    w.start_daemon();
    consistent(w, &format!("after a crash at {step}"));
}

fn every_step_of_every_storage_operation(driver: Driver) {
    let mut w = World::new(driver);
    let app = id(&w.running("app"));
    let idle = id(&w.running("idle"));
    for c in [&app, &idle] {
        w.sh(c, "echo v1 > /data");
        w.ok(&["snapshots", "create", "-c", c, "--alias", "s1"]);
        w.sh(c, "echo v2 > /data");
    }
    w.ok(&["containers", "stop", "--timeout", "1", &idle]);
    let pid = |w: &World, c: &str| w.ok(&["containers", "get", c])["pid"].as_i64();

    // Snapshot create: rolled back; the container runs on, thawed; the alias is free again.
    for (n, step) in ["snapshot-frozen", "snapshot-taken"].iter().enumerate() {
        let alias = format!("crashed{n}");
        crash_at(&mut w, step, &["snapshots", "create", "-c", &app, "--alias", &alias]);
        assert!(!snapshots(&w, &app).contains(&alias), "{step}: a snapshot that was not answered was kept");
        assert_eq!(w.ok(&["containers", "get", &app])["status"], "running", "{step}");
        assert_eq!(w.sh(&app, "echo alive").trim(), "alive", "{step}: the container runs (not frozen)");
        w.ok(&["snapshots", "create", "-c", &app, "--alias", &alias]);
        w.ok(&["snapshots", "delete", "-c", &app, &alias]);
    }

    // Restore: rolled forward; a running container runs again (a new init), on the snapshot.
    for step in ["restore-intent", "restore-stopped", "restore-prepare", "restore-swap", "restore-swapped", "restore-started"] {
        let before = pid(&w, &app);
        crash_at(&mut w, step, &["snapshots", "restore", "-c", &app, "--name", "s1"]);
        let c = w.ok(&["containers", "get", &app]);
        assert_eq!(c["status"], "running", "{step}: running stays running: {c}");
        assert_eq!(w.sh(&app, "cat /data").trim(), "v1", "{step}: the restore was finished");
        if step != "restore-intent" {
            assert_ne!(pid(&w, &app), before, "{step}: the init was restarted on the restored root");
        }
        w.sh(&app, "echo v2 > /data");
    }
    // A stopped container stays stopped.
    crash_at(&mut w, "restore-swap", &["snapshots", "restore", "-c", &idle, "--name", "s1"]);
    assert_eq!(w.ok(&["containers", "get", &idle])["status"], "stopped", "stopped stays stopped");
    w.ok(&["containers", "start", &idle]);
    assert_eq!(w.sh(&idle, "cat /data").trim(), "v1");

    // Snapshot delete: rolled forward; the name can be taken again.
    w.ok(&["snapshots", "create", "-c", &app, "--alias", "doomed"]);
    crash_at(&mut w, "snapshot-delete-storage", &["snapshots", "delete", "-c", &app, "doomed"]);
    assert!(!snapshots(&w, &app).contains(&"doomed".to_owned()), "the interrupted delete was finished");
    w.ok(&["snapshots", "create", "-c", &app, "--alias", "doomed"]);

    // Image import: rolled back; the name is free again. Image delete: rolled forward.
    for step in ["image-staged", "image-committed"] {
        let tar = archive(&w, step);
        crash_at(&mut w, step, &["images", "import", step, &tar]);
        assert!(!images(&w).contains(&step.to_owned()), "{step}: an import that was not answered was kept");
        w.ok(&["images", "import", step, &tar]);
    }
    crash_at(&mut w, "image-delete-record", &["images", "delete", "image-staged"]);
    assert!(!images(&w).contains(&"image-staged".to_owned()));
    assert!(!w.storage_dir.join("images/image-staged").exists(), "its files went too");
}

#[test]
fn a_crash_at_every_step_of_every_storage_operation_on_btrfs() {
    every_step_of_every_storage_operation(Driver::Btrfs);
}

#[test]
fn a_crash_at_every_step_of_every_storage_operation_on_overlay() {
    every_step_of_every_storage_operation(Driver::Overlay);
}

/// What the client was told, to check after each crash.
#[derive(Default)]
struct Answers {
    /// Snapshot name → whether it exists as last answered.
    snapshots: BTreeMap<String, bool>,
    /// Image name → whether it exists as last answered.
    images: BTreeMap<String, bool>,
    /// Egress rule id → whether it exists as last answered.
    rules: BTreeMap<String, bool>,
}

/// kill -9 at random instants of a stream of mixed operations (snapshot create, restore,
/// delete, exec, restart, image import and delete, firewall rule add and delete): after each
/// restart, kernel, disk and store agree, and every
/// answer is still true.
fn random_kills(driver: Driver, rounds: usize) {
    let mut w = World::new(driver);
    let app = id(&w.running("app"));
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut answers = Answers::default();
    for round in 0..rounds {
        let kill_after = Duration::from_millis(50 + rnd(700));
        let socket = w.socket.clone();
        let pid = w.daemon_pid().expect("daemon");
        // The killer: SIGKILL the daemon after the delay, while the stream runs.
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            socket
        });
        let t = Instant::now();
        let mut i = 0;
        while t.elapsed() < kill_after + Duration::from_millis(200) {
            i += 1;
            let name = format!("r{round}-{i}");
            match rnd(8) {
                5 => {
                    let tar = archive(&w, &name);
                    if w.ctl(&["images", "import", &name, &tar]).code == 0 {
                        answers.images.insert(name.clone(), true);
                    }
                    let have: Vec<String> = answers.images.iter().filter(|(_, v)| **v).map(|(k, _)| k.clone()).collect();
                    // A delete the kill cut off may or may not have been done: no expectation.
                    if have.len() > 2 {
                        if w.ctl(&["images", "delete", &have[0]]).code == 0 {
                            answers.images.insert(have[0].clone(), false);
                        } else {
                            answers.images.remove(&have[0]);
                        }
                    }
                }
                6 => {
                    let r = w.ctl(&[
                        "firewall",
                        "egress",
                        "create",
                        "-c",
                        &app,
                        "--action",
                        "allow",
                        "--protocol",
                        "tcp",
                        "--destination",
                        "203.0.113.7/32",
                    ]);
                    if r.code == 0 {
                        answers.rules.insert(r.json()["data"]["id"].as_str().expect("rule id").to_owned(), true);
                    }
                }
                7 => {
                    let have: Vec<String> = answers.rules.iter().filter(|(_, v)| **v).map(|(k, _)| k.clone()).collect();
                    if let Some(r) = have.first() {
                        if w.ctl(&["firewall", "egress", "delete", "-c", &app, r]).code == 0 {
                            answers.rules.insert(r.clone(), false);
                        } else {
                            answers.rules.remove(r);
                        }
                    }
                }
                0 | 1 => {
                    // What the root holds when snapshot r<round>-<i> is taken: <round>-<i>.
                    if w.exec(&app, &["sh", "-c", &format!("echo {round}-{i} > /data")]).code == 0
                        && w.ctl(&["snapshots", "create", "-c", &app, "--alias", &name]).code == 0
                    {
                        answers.snapshots.insert(name.clone(), true);
                    }
                }
                2 => {
                    let have: Vec<String> = answers.snapshots.iter().filter(|(_, v)| **v).map(|(k, _)| k.clone()).collect();
                    if let Some(s) = have.get(rnd(have.len().max(1) as u64) as usize) {
                        let _ = w.ctl(&["snapshots", "restore", "-c", &app, "--name", s]);
                    }
                }
                3 => {
                    let have: Vec<String> = answers.snapshots.iter().filter(|(_, v)| **v).map(|(k, _)| k.clone()).collect();
                    if let Some(s) = have.first() {
                        if w.ctl(&["snapshots", "delete", "-c", &app, s]).code == 0 {
                            answers.snapshots.insert(s.clone(), false);
                        } else {
                            answers.snapshots.remove(s);
                        }
                    }
                }
                _ => {
                    let _ = w.ctl(&["containers", "restart", &app]);
                }
            }
        }
        killer.join().unwrap();
        w.kill_daemon();
        w.start_daemon();
        let when = format!("round {round} (killed after {kill_after:?})");
        consistent(&w, &when);
        let have = snapshots(&w, &app);
        for (s, exists) in &answers.snapshots {
            // Answered created: there. Answered deleted: gone.
            assert_eq!(have.contains(s), *exists, "{when}: snapshot {s} should {}exist: {have:?}", if *exists { "" } else { "not " });
        }
        let imgs = images(&w);
        for (i, exists) in &answers.images {
            assert_eq!(imgs.contains(i), *exists, "{when}: image {i} should {}exist: {imgs:?}", if *exists { "" } else { "not " });
        }
        let fw = w.ok(&["firewall", "show", "-c", &app]);
        let rules: Vec<&str> = fw["egress"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        for (r, exists) in &answers.rules {
            assert_eq!(
                rules.contains(&r.as_str()),
                *exists,
                "{when}: rule {r} should {}exist: {rules:?}",
                if *exists { "" } else { "not " }
            );
        }
        // A restart the kill interrupted may leave it stopped (that was never answered).
        if w.ok(&["containers", "get", &app])["status"] != "running" {
            w.ok(&["containers", "start", &app]);
        }
        // Every snapshot the store has is whole: it restores, and holds what was written.
        if let Some(s) = have.last() {
            w.ok(&["snapshots", "restore", "-c", &app, "--name", s]);
            assert_eq!(w.sh(&app, "cat /data").trim(), s.trim_start_matches('r'), "{when}: snapshot {s} holds what was written before it");
        }
    }
}

#[test]
fn kill_9_at_random_instants_of_mixed_operations_on_btrfs() {
    random_kills(Driver::Btrfs, 12);
}

#[test]
fn kill_9_at_random_instants_of_mixed_operations_on_overlay() {
    random_kills(Driver::Overlay, 12);
}
