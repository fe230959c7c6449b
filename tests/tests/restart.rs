//! Restarts, crashes, boot and host shutdown: the daemon may come and go, the containers stay;
//! a crash at any step of create, start, delete, stop, exec or a firewall change leaves no kernel object behind; a boot starts
//! the containers marked autostart after their firewall is in place; a host shutdown stops them
//! all gracefully, in parallel.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use hoody_e2e::consistency::consistent;
use hoody_e2e::{Driver, World, alive, eventually};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Waits up to 10 s for `f`.
#[test]
fn restarted_and_killed_daemons_adopt_running_containers() {
    let mut w = World::new(Driver::Btrfs);
    // An init that writes to its log when asked (SIGUSR1), from before and after the restarts.
    let a = w.ok(&[
        "containers",
        "create",
        "--name",
        "alpha",
        "--image",
        "busybox",
        "--start",
        "--",
        "sh",
        "-c",
        "echo before; trap 'echo asked' USR1; while :; do sleep 0.1; done",
    ]);
    let b = w.running("beta");
    let (ida, idb) = (id(&a), id(&b));
    let (pa, pb) = (a["pid"].as_i64().unwrap(), b["pid"].as_i64().unwrap());
    for (round, kill) in [(0, false), (1, true)] {
        if kill {
            w.kill_daemon();
        } else {
            w.stop_daemon();
        }
        assert!(alive(pa) && alive(pb), "round {round}: the containers outlive the daemon");
        w.start_daemon();
        for (cid, pid) in [(&ida, pa), (&idb, pb)] {
            let c = w.ok(&["containers", "get", cid]);
            assert_eq!((c["status"].as_str(), c["pid"].as_i64()), (Some("running"), Some(pid)), "round {round}: {c}");
            assert_eq!(w.sh(cid, "echo adopted").trim(), "adopted");
        }
        assert!(w.daemon_log().contains("adopted running container"));
    }
    // Logs written before the restarts are still there, and new ones arrive.
    w.sh(&ida, "kill -USR1 1");
    eventually("the init's answer in its log", || w.ctl(&["logs", "-c", &ida]).stdout.contains("asked"));
    assert!(w.ctl(&["logs", "-c", &ida]).stdout.contains("before"));
    // The exit of an adopted container is noticed (its init killed from outside the daemon).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pb as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("the adopted container's exit", || w.ok(&["containers", "get", &idb])["status"] == "stopped");
    assert!(!w.cgroup.join(&idb).exists(), "its cgroup is gone");
    // And an adopted container stops on request.
    assert_eq!(w.ok(&["containers", "stop", "--timeout", "1", &ida])["status"], "stopped");
    assert!(!alive(pa));
}

fn allow_ctl(w: &World, name: &str) -> hoody_e2e::Ctl {
    w.ctl(&["firewall", "egress", "create", "-c", name, "--action", "allow", "--protocol", "tcp", "--destination", "203.0.113.10/32"])
}

/// Adds an egress allow rule; its id.
fn allow(w: &World, name: &str) -> String {
    let r = allow_ctl(w, name);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["data"]["id"].as_str().expect("rule id").to_owned()
}

#[test]
fn a_crash_at_any_step_leaves_a_consistent_state_and_nothing_behind() {
    let mut w = World::with_net(Driver::Btrfs);
    let keep = id(&w.running("keep"));
    // Every fault("…") point of create, start, delete, stop, exec and firewall changes, in order
    // (those of the storage operations: crash_storage.rs).
    let steps = [
        "create-storage",
        "create-state-dir",
        "create-record",
        "create-firewall",
        "start-cgroup",
        "start-launched",
        "delete-stopped",
        "delete-firewall",
        "delete-marked",
        "delete-cgroup",
        "delete-storage",
        "delete-record",
        "stop-exited",
        "stop-killed",
        "exec-spawned",
        "firewall-rule-recorded",
        "firewall-rule-removed",
    ];
    for (n, step) in steps.iter().enumerate() {
        let name = format!("victim{n}");
        // Deletes, stops and execs need a running container; made before the fault is armed.
        let mut rule = String::new();
        if ["delete", "stop", "exec", "firewall"].iter().any(|p| step.starts_with(p)) {
            w.running(&name);
        }
        if *step == "firewall-rule-removed" {
            rule = allow(&w, &name);
        }
        w.stop_daemon();
        w.env = vec![("HOODY_FAULTS".into(), format!("crash:{step}"))];
        w.start_daemon();
        let r = match *step {
            s if s.starts_with("create") => w.ctl(&["containers", "create", "--name", &name, "--image", "busybox"]),
            s if s.starts_with("start") => w.ctl(&["containers", "create", "--name", &name, "--image", "busybox", "--start"]),
            "stop-exited" => w.ctl(&["containers", "stop", "--timeout", "5", &name]),
            "stop-killed" => w.ctl(&["containers", "stop", "--timeout", "0", &name]),
            "exec-spawned" => w.exec(&name, &["true"]),
            "firewall-rule-recorded" => allow_ctl(&w, &name),
            "firewall-rule-removed" => w.ctl(&["firewall", "egress", "delete", "-c", &name, &rule]),
            _ => w.ctl(&["containers", "delete", "--force", &name]),
        };
        assert_ne!(r.code, 0, "{step}: the daemon should have crashed: {r:?}");
        assert!(w.daemon_log().contains("injected crash"), "{step}");
        w.kill_daemon(); // reap the aborted process
        w.env.clear();
        w.start_daemon();
        // The state the daemon reports is what the kernel holds, nothing more.
        consistent(&w, &format!("after a crash at {step}"));
        // The victim is either gone or usable, and a name once crashed on can be reused.
        if w.ctl(&["containers", "get", &name]).code == 0 {
            w.ok(&["containers", "delete", "--force", &name]);
        }
        w.running(&name);
        w.ok(&["containers", "delete", "--force", &name]);
        consistent(&w, &format!("{step}: after reuse"));
    }
    assert_eq!(w.ok(&["containers", "get", &keep])["status"], "running", "the bystander kept running");
}

/// A reboot, simulated: every container process dies with the old kernel's namespaces, and the
/// boot id changes. The new daemon starts exactly the autostart containers, after their firewall.
#[test]
fn boot_starts_autostart_containers_behind_their_firewall() {
    let mut w = World::with_net(Driver::Btrfs);
    let net = hoody_e2e::internet::Servers::start(w.inet(), &["203.0.113.10:443"], &[]);
    let boot_id = w.dir.join("boot_id");
    std::fs::write(&boot_id, "boot-1").unwrap();
    w.env = vec![("HOODY_BOOT_ID_FILE".into(), boot_id.display().to_string())];
    w.stop_daemon();
    w.start_daemon();
    // The autostart container tries to get out the moment its init runs.
    let first = "nc -w 2 203.0.113.10 443 </dev/null && echo LEAKED || echo denied; exec sleep 1000";
    let auto =
        id(&w.ok(&["containers", "create", "--name", "auto", "--image", "busybox", "--autostart", "--start", "--", "sh", "-c", first]));
    let manual = id(&w.running("manual"));
    let broken = id(&w.ok(&["containers", "create", "--name", "broken", "--image", "busybox", "--autostart", "--", "/no/such/init"]));
    // A daemon restart in the same boot starts nothing that was stopped.
    w.ok(&["containers", "stop", "--timeout", "0", "auto"]);
    w.stop_daemon();
    w.start_daemon();
    assert_eq!(w.ok(&["containers", "get", &auto])["status"], "stopped", "a restart is not a boot");
    assert_eq!(w.ok(&["health"])["autostart"]["boot"], false);
    w.ok(&["containers", "start", &auto]);

    // The reboot: the daemon and every container process go; the boot id changes.
    let inits: Vec<i64> = [&auto, &manual].iter().map(|c| w.ok(&["containers", "get", c])["pid"].as_i64().unwrap()).collect();
    w.kill_daemon();
    for cid in [&auto, &manual] {
        let _ = std::fs::write(w.cgroup.join(cid).join("cgroup.kill"), "1");
    }
    // Gone from /proc altogether (reaped), as after a real reboot.
    eventually("the old boot's processes to be gone", || inits.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()));
    std::fs::write(&boot_id, "boot-2").unwrap();
    w.start_daemon();
    eventually("autostart to finish", || w.ok(&["health"])["autostart"]["done"] == true);
    let report = w.ok(&["health"])["autostart"].clone();
    assert_eq!(report["boot"], true);
    assert_eq!(report["started"], serde_json::json!([auto]), "{report}");
    assert_eq!(report["failed"][0]["id"], broken.as_str(), "the broken one is reported: {report}");
    assert!(!report["failed"][0]["error"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(w.ok(&["containers", "get", &auto])["status"], "running");
    assert_eq!(w.ok(&["containers", "get", &manual])["status"], "stopped", "not marked autostart: left stopped");
    // Its very first attempt to get out met the firewall.
    eventually("the init's first probe", || w.ctl(&["logs", "-c", &auto]).stdout.contains("denied"));
    assert!(!w.ctl(&["logs", "-c", &auto]).stdout.contains("LEAKED"));
    assert!(net.tcp_hits("203.0.113.10:443").is_empty(), "the server saw the container: {:?}", net.tcp_hits("203.0.113.10:443"));
}

#[test]
fn host_shutdown_stops_every_container_in_parallel_then_the_daemon() {
    let mut w = World::new(Driver::Btrfs);
    let mut ids = vec![];
    for n in 0..4 {
        // Each ignores SIGTERM: only the timeout's cgroup.kill ends it.
        ids.push(id(&w.ok(&[
            "containers",
            "create",
            "--name",
            &format!("stubborn{n}"),
            "--image",
            "busybox",
            "--autostart",
            "--start",
            "--",
            "sh",
            "-c",
            "trap '' TERM; while :; do sleep 1; done",
        ])));
    }
    let polite = id(&w.running("polite"));
    let t = Instant::now();
    let r = w.ok(&["system", "shutdown", "--timeout", "2"]);
    let took = t.elapsed();
    let stopped: BTreeSet<String> = r["stopped"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(stopped.len(), 5, "{r}");
    assert!(stopped.contains(&polite));
    assert!(took < Duration::from_secs(7), "four 2 s timeouts in parallel took {took:?}");
    assert!(took >= Duration::from_secs(2), "the stubborn ones got their grace period ({took:?})");
    for cid in &ids {
        assert!(!w.cgroup.join(cid).exists(), "{cid} is still in its cgroup");
    }
    // The daemon exits by itself; the autostart marks stay for the next boot.
    eventually("the daemon to exit", || w.daemon_exited().is_some());
    assert_eq!(w.daemon_exited(), Some(0));
    w.start_daemon();
    for cid in &ids {
        let c = w.ok(&["containers", "get", cid]);
        assert_eq!((c["status"].as_str(), c["autostart"].as_bool()), (Some("stopped"), Some(true)), "{c}");
    }
}
