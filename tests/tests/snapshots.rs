//! Snapshots: the AI-safety workflow (lock down, snapshot, let an agent do anything, inspect
//! what changed, restore), consistency under a steady writer, faults, schedule and expiry.

use hoody_api::client::ClientError;
use hoody_api::containers::{SnapshotPolicy, UpdateContainer};
use hoody_api::envelope::ErrorCode;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hoody_e2e::{Driver, World};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// A hash of the whole tree as the container sees it: every path with its type, mode, owner,
/// size, link target and content.
const TREE_HASH: &str = r#"find / -xdev | sort | while read -r p; do
  stat -c '%n %f %a %u %g %s' "$p"
  if [ -L "$p" ]; then readlink "$p"; elif [ -f "$p" ]; then sha256sum < "$p"; fi
done | sha256sum"#;

fn changes(d: &Value) -> BTreeSet<(String, String, String)> {
    d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let what =
                c["what"].as_array().map(|w| w.iter().map(|x| x.as_str().unwrap()).collect::<Vec<_>>().join(",")).unwrap_or_default();
            (c["path"].as_str().unwrap().to_owned(), c["kind"].as_str().unwrap().to_owned(), what)
        })
        .collect()
}

fn workflow(driver: Driver) {
    let w = World::new(driver);
    let cid = id(&w.running("agent"));
    w.sh(&cid, "mkdir -p /srv/data && for f in a b c d; do echo original-$f > /srv/data/$f; done && echo keep > /etc/keep.conf");
    let before = w.sh(&cid, TREE_HASH);
    let snap = w.ok(&["snapshots", "create", "--container", &cid, "--alias", "clean-slate"]);
    assert_eq!(snap["name"], "clean-slate");
    assert!(snap["paused_ms"].as_u64().is_some(), "a running container is frozen for the snapshot: {snap}");
    assert_eq!(snap["driver"], driver.name());

    // The agent does anything it likes.
    w.sh(&cid, "echo fresh > /srv/new.txt && echo changed > /srv/data/a && rm /srv/data/b && echo persist > /etc/persist.conf");
    w.sh(&cid, "chmod 600 /srv/data/c && chown 1000:1000 /srv/data/d && mkdir -p /home/tool/bin && echo x > /home/tool/bin/x");
    w.sh(&cid, "ln -s /srv/data/a /srv/link && rm /etc/keep.conf && mkdir /etc/keep.conf");
    let after = w.sh(&cid, TREE_HASH);
    assert_ne!(before, after);

    let d = w.ok(&["snapshots", "diff", "-c", &cid, "clean-slate"]);
    let expected: BTreeSet<(String, String, String)> = [
        ("/etc/keep.conf", "added", ""),
        ("/etc/keep.conf", "deleted", ""),
        ("/etc/persist.conf", "added", ""),
        ("/home/tool", "added", ""),
        ("/home/tool/bin", "added", ""),
        ("/home/tool/bin/x", "added", ""),
        ("/srv/data/a", "modified", "content"),
        ("/srv/data/b", "deleted", ""),
        ("/srv/data/c", "modified", "mode"),
        ("/srv/data/d", "modified", "owner"),
        ("/srv/link", "added", ""),
        ("/srv/new.txt", "added", ""),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(changes(&d), expected, "{d}");
    assert_eq!((d["added"].as_u64(), d["modified"].as_u64(), d["deleted"].as_u64()), (Some(7), Some(3), Some(2)));

    // Between two snapshots: the same changes.
    w.ok(&["snapshots", "create", "--container", &cid, "--alias", "after-agent"]);
    let d2 = w.ok(&["snapshots", "diff", "-c", &cid, "clean-slate", "--to", "after-agent"]);
    assert_eq!(changes(&d2), expected);
    let list = w.ok(&["snapshots", "list", "-c", &cid]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["clean-slate", "after-agent"]);

    // Restore: the tree comes back byte for byte and the container runs again.
    let pid = w.ok(&["containers", "get", &cid])["pid"].as_i64().unwrap();
    let r = w.ok(&["snapshots", "restore", "-c", &cid, "--name", "clean-slate"]);
    assert_eq!(r["container"]["status"], "running");
    assert_ne!(r["container"]["pid"].as_i64().unwrap(), pid, "restarted on the restored root");
    assert_eq!(w.sh(&cid, TREE_HASH), before, "the tree is back byte for byte");
    assert_eq!(w.exec(&cid, &["cat", "/srv/data/b"]).stdout, "original-b\n");
    assert_ne!(w.exec(&cid, &["cat", "/srv/new.txt"]).code, 0);
    assert!(w.ok(&["snapshots", "diff", "-c", &cid, "clean-slate"])["changes"].as_array().unwrap().is_empty());
    // Restoring the later snapshot brings the agent's work back.
    w.ok(&["snapshots", "restore", "-c", &cid, "--name", "after-agent"]);
    assert_eq!(w.sh(&cid, TREE_HASH), after);

    // Snapshots go with their container.
    w.ok(&["snapshots", "delete", "-c", &cid, "after-agent"]);
    assert_eq!(w.ok(&["snapshots", "list", "-c", &cid]).as_array().unwrap().len(), 1);
    w.ok(&["containers", "delete", "--force", &cid]);
    assert!(!w.storage_dir.join("containers").join(&cid).exists(), "snapshots removed with the container");
}

#[test]
fn agent_workflow_btrfs() {
    workflow(Driver::Btrfs);
}

#[test]
fn agent_workflow_overlay() {
    workflow(Driver::Overlay);
}

fn snapshot_file(w: &World, driver: Driver, cid: &str, snap: &str, path: &str) -> PathBuf {
    let base = w.storage_dir.join("containers").join(cid).join("snapshots").join(snap);
    match driver {
        Driver::Btrfs => base.join(path),
        Driver::Overlay => base.join("upper").join(path),
    }
}

fn steady_writer(driver: Driver) {
    let w = World::new(driver);
    let cid = id(&w.running("writer"));
    w.install_probe(&cid);
    w.sh(&cid, "(/probe writer /root/pattern 1048576 &) ; sleep 0.3");
    for i in 0..10 {
        let name = format!("s{i}");
        let s = w.ok(&["snapshots", "create", "--container", &cid, "--alias", &name]);
        assert!(s["paused_ms"].as_u64().is_some());
        let bytes = std::fs::read(snapshot_file(&w, driver, &cid, &name, "root/pattern")).expect("the file is in the snapshot");
        assert_eq!(bytes.len(), 1 << 20);
        let first = bytes[0];
        assert!(first.is_ascii_lowercase());
        assert!(
            bytes.iter().all(|b| *b == first),
            "snapshot {name} holds a torn write ({} distinct bytes)",
            bytes.iter().collect::<BTreeSet<_>>().len()
        );
    }
    // The writer was never stopped, only paused.
    assert!(w.sh(&cid, "ps -o comm").contains("probe"));
}

#[test]
fn consistent_under_a_steady_writer_btrfs() {
    steady_writer(Driver::Btrfs);
}

#[test]
fn consistent_under_a_steady_writer_overlay() {
    steady_writer(Driver::Overlay);
}

#[test]
fn bad_names_conflicts_and_a_failed_swap() {
    let mut w = World::new(Driver::Btrfs);
    let a = id(&w.running("a"));
    let b = id(&w.running("b"));
    w.ok(&["snapshots", "create", "--container", &a, "--alias", "base"]);
    let h = w.http();
    let r = h.post(&format!("/containers/{a}/snapshots"), r#"{"alias":"Bad Name"}"#);
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.message().contains("alias"));
    let dup = h.post(&format!("/containers/{a}/snapshots"), r#"{"alias":"base"}"#);
    assert_eq!((dup.status, dup.json()["error"]["code"].as_str()), (409, Some("already_exists")), "{dup:?}");
    assert_eq!(h.post(&format!("/containers/{a}/snapshots"), r#"{"alias":"x","extra":1}"#).status, 422);
    let pid_a = w.ok(&["containers", "get", &a])["pid"].clone();
    // Unknown snapshot: 404, and the container was not stopped for it.
    assert_eq!(h.request("PATCH", &format!("/containers/{a}/snapshots/nope"), b"").status, 404);
    assert_eq!(h.get(&format!("/containers/{a}/snapshots/nope/diff")).status, 404);
    assert_eq!(h.get(&format!("/containers/{a}/snapshots/base/diff?to=nope")).status, 404);
    assert_eq!(w.ok(&["containers", "get", &a])["pid"], pid_a);
    // Another container's snapshot is not this one's.
    assert_eq!(h.request("PATCH", &format!("/containers/{b}/snapshots/base"), b"").status, 404);
    // A second restore while one runs: 409.
    let (sock, a2) = (w.socket.clone(), a.clone());
    let first = std::thread::spawn(move || {
        hoody_e2e::http::Http { socket: sock, token: None }.request("PATCH", &format!("/containers/{a2}/snapshots/base"), b"")
    });
    std::thread::sleep(Duration::from_millis(300));
    let second = h.request("PATCH", &format!("/containers/{a}/snapshots/base"), b"");
    assert_eq!(second.status, 409, "{second:?}");
    assert!(second.message().contains("in progress"));
    assert_eq!(second.json()["error"]["code"], "in_progress", "{second:?}");
    assert_eq!(first.join().unwrap().status, 200);

    // The swap fails half-way: the container stays on its previous root, and runs again.
    w.sh(&a, "echo after-snapshot > /root/marker");
    w.stop_daemon();
    w.env.push(("HOODY_FAULTS".into(), "fail:restore-swap".into()));
    w.start_daemon();
    let e = w.api(async |c| c.restore_snapshot(&a, "base").await).unwrap_err();
    let ClientError::Api { status, error } = &e else { panic!("{e:?}") };
    assert_eq!(status.as_u16(), 500, "{e:?}");
    assert!(error.text().contains("restore-swap"), "{}", error.text());
    let c = w.ok(&["containers", "get", &a]);
    assert_eq!(c["status"], "running", "running again after the failed restore");
    assert_eq!(w.exec(&a, &["cat", "/root/marker"]).stdout, "after-snapshot\n", "still on the previous root");
    assert!(!w.storage_dir.join("containers").join(&a).join(".restore").exists(), "nothing staged is left");
}

/// Written beside and renamed over, so the daemon never reads a half-written clock.
fn set_clock(path: &std::path::Path, t: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, t).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn snapshot_names(w: &World, cid: &str) -> Vec<String> {
    w.ok(&["snapshots", "list", "-c", cid]).as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

fn wait_for(w: &World, cid: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names = snapshot_names(w, cid);
        if pred(&names) {
            return names;
        }
        assert!(Instant::now() < deadline, "scheduler did not get there: {names:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn schedule_and_expiry_with_an_injected_clock() {
    let mut w = World::new(Driver::Btrfs);
    let clock = w.dir.join("clock");
    set_clock(&clock, "2026-01-01T00:00:00Z");
    w.stop_daemon();
    w.env.push(("HOODY_CLOCK_FILE".into(), clock.to_string_lossy().into()));
    w.env.push(("HOODY_SCHEDULER_TICK_MS".into(), "100".into()));
    w.start_daemon();
    let c = w.ok(&["containers", "create", "--name", "sched", "--image", "busybox", "--start", "--schedule", "hourly", "--expiry", "3h"]);
    let cid = id(&c);
    assert_eq!((c["snapshots"]["schedule"].as_str(), c["snapshots"]["expiry"].as_str()), (Some("hourly"), Some("3h")));
    w.ok(&["snapshots", "create", "--container", &cid, "--alias", "clean-slate"]);
    wait_for(&w, &cid, |n| n.contains(&"auto-20260101-000000".to_string()));
    set_clock(&clock, "2026-01-01T00:30:00Z");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(snapshot_names(&w, &cid).len(), 2, "not due yet");
    set_clock(&clock, "2026-01-01T01:00:00Z");
    wait_for(&w, &cid, |n| n.contains(&"auto-20260101-010000".to_string()));
    // Down for five hours: one catch-up snapshot, and the ones older than 3h expire; the manual
    // snapshot stays.
    w.stop_daemon();
    set_clock(&clock, "2026-01-01T06:00:00Z");
    w.start_daemon();
    let names = wait_for(&w, &cid, |n| {
        n.contains(&"auto-20260101-060000".to_string())
            && !n.contains(&"auto-20260101-000000".to_string())
            && !n.contains(&"auto-20260101-010000".to_string())
    });
    assert_eq!(names, ["clean-slate", "auto-20260101-060000"], "one catch-up, expired ones gone, manual kept");
    // Clearing the schedule stops it.
    let c = w.ok(&["containers", "set", &cid, "--schedule", ""]);
    assert!(c["snapshots"]["schedule"].is_null());
    set_clock(&clock, "2026-01-01T08:00:00Z");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(snapshot_names(&w, &cid), ["clean-slate", "auto-20260101-060000"]);
    // Bad policies are refused, naming the field.
    let sometimes =
        UpdateContainer { snapshots: Some(SnapshotPolicy { schedule: Some("sometimes".into()), expiry: None }), ..Default::default() };
    let e = w.api(async |c| c.update_container(&cid, &sometimes).await).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Invalid), "{e:?}");
    assert!(e.to_string().contains("snapshots.schedule"), "{e}");
    let forever = UpdateContainer { expiry: Some("forever".into()), ..Default::default() };
    let e = w.api(async |c| c.update_container(&cid, &forever).await).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Invalid), "{e:?}");
}
