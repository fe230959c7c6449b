//! Foundation: real, isolated containers driven through hoodyctl against a real hoodyd.

use std::path::Path;
use std::time::{Duration, Instant};

use hoody_e2e::{Driver, World, http::Reply, run, tarball};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// The four uids (real, effective, saved, fs) of a host process.
fn host_uids(pid: i64) -> Vec<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect()
}

fn isolation(driver: Driver) {
    let w = World::new(driver);
    let a = w.running("alpha");
    let b = w.running("beta");
    let (ida, idb) = (id(&a), id(&b));
    let base = a["idmap"]["host_uid_base"].as_u64().unwrap();
    assert_eq!(a["idmap"]["size"], 65536);

    // Root inside, an unprivileged uid from the container's range outside.
    assert!(w.exec(&ida, &["id"]).stdout.starts_with("uid=0(root) gid=0(root)"));
    let pid = a["pid"].as_i64().unwrap();
    assert_eq!(host_uids(pid), vec![base; 4], "the host sees the init as the base of the range");
    let map = w.sh(&ida, "cat /proc/self/uid_map");
    let fields: Vec<u64> = map.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!(fields, vec![0, base, 65536]);
    assert_eq!(w.sh(&ida, "hostname").trim(), "alpha");

    // Processes: only the container's own; the neighbour's are invisible.
    w.sh(&idb, "sleep 4242 >/dev/null 2>&1 &");
    let ps = w.sh(&ida, "ps -o pid,comm");
    let procs: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(procs.len(), 2, "only init and ps itself: {ps}");
    assert!(procs[0].trim().starts_with("1 ") && procs[0].contains("init"), "{ps}");
    assert!(!ps.contains("4242") && !w.sh(&ida, "ps -o args").contains("4242"));
    assert!(w.sh(&idb, "ps -o args").contains("sleep 4242"), "the neighbour does run it");

    // Files: the host's and the neighbour's are out of reach.
    let secret = w.dir.join("host-secret");
    std::fs::write(&secret, "host only").unwrap();
    let c = w.exec(&ida, &["cat", &secret.to_string_lossy()]);
    assert_ne!(c.code, 0, "host file visible: {c:?}");
    w.sh(&ida, "echo mine > /root/alpha-only");
    assert_ne!(w.exec(&idb, &["cat", "/root/alpha-only"]).code, 0);
    let mounts = w.sh(&ida, "cat /proc/self/mountinfo");
    assert!(!mounts.contains(&w.dir.to_string_lossy().to_string()), "host paths leak into the mount table: {mounts}");

    // Refused: mounting, module loading, writing /sys, new namespaces.
    let c = w.exec(&ida, &["mount", "-t", "tmpfs", "none", "/mnt"]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("denied") || c.stderr.contains("not permitted"), "{c:?}");
    let c = w.exec(&ida, &["sh", "-c", "echo junk > /root/x.ko; insmod /root/x.ko"]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("not permitted"), "{c:?}");
    let c = w.exec(&ida, &["sh", "-c", "echo 1 > /sys/kernel/mm/ksm/run"]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("Read-only"), "{c:?}");
    let c = w.exec(&ida, &["unshare", "-U", "-r", "true"]);
    assert_ne!(c.code, 0, "a nested user namespace must be refused: {c:?}");
    let caps = w.sh(&ida, "grep CapBnd /proc/self/status");
    assert!(caps.contains("00000000a80425fb"), "Docker's default bounding set: {caps}");
}

#[test]
fn isolation_btrfs() {
    isolation(Driver::Btrfs);
}

#[test]
fn isolation_overlay() {
    isolation(Driver::Overlay);
}

#[test]
fn id_ranges_are_private() {
    let w = World::new(Driver::Btrfs);
    let mut bases = vec![];
    let mut ids = vec![];
    for n in ["r1", "r2", "r3"] {
        let c = w.running(n);
        bases.push(c["idmap"]["host_uid_base"].as_u64().unwrap());
        ids.push(id(&c));
        let pid = c["pid"].as_i64().unwrap();
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        assert_eq!(map.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap(), *bases.last().unwrap());
    }
    let mut sorted = bases.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        assert!(pair[1] >= pair[0] + 65536, "ranges overlap: {bases:?}");
    }
    w.ok(&["containers", "delete", "--force", &ids[1]]);
    let again = w.running("r4");
    let b4 = again["idmap"]["host_uid_base"].as_u64().unwrap();
    for b in [bases[0], bases[2]] {
        assert!(b4 >= b + 65536 || b >= b4 + 65536, "a new range overlaps a live one");
    }
}

fn lifecycle(driver: Driver) {
    let w = World::new(driver);
    let c = w.ok(&["containers", "create", "--name", "life", "--image", "busybox"]);
    let cid = id(&c);
    assert_eq!(c["status"], "created");
    let cg = w.cgroup.join(&cid);
    let c = w.ok(&["containers", "start", &cid]);
    assert_eq!(c["status"], "running");
    let pid1 = c["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid1.to_string()), "init is in its cgroup");
    // By name, too.
    assert_eq!(w.ok(&["containers", "get", "life"])["id"], cid.as_str());

    let c = w.ok(&["containers", "stop", &cid]);
    assert_eq!(c["status"], "stopped");
    assert!(!hoody_e2e::alive(pid1), "init is gone");
    assert!(!cg.exists(), "the cgroup is removed on stop");
    let c = w.ctl(&["containers", "stop", &cid]);
    assert_eq!(c.code, 4, "a conflict with the state exits 4");
    assert!(c.stderr.contains("not running"), "{c:?}");

    let c = w.ok(&["containers", "restart", &cid]);
    assert_eq!(c["status"], "running");
    let pid2 = c["pid"].as_i64().unwrap();
    assert_ne!(pid1, pid2);
    let c = w.ok(&["containers", "restart", "--timeout", "0", &cid]);
    assert_ne!(c["pid"].as_i64().unwrap(), pid2, "restart of a running container starts a new init");

    let c = w.ctl(&["containers", "delete", &cid]);
    assert_eq!(c.code, 4);
    assert!(c.stderr.contains("running"), "{c:?}");
    w.ok(&["containers", "delete", "--force", &cid]);

    assert_eq!(w.ctl(&["containers", "get", &cid]).code, 3, "not found exits 3");
    assert!(w.ok(&["containers", "list"]).as_array().unwrap().is_empty());
    assert!(!cg.exists(), "cgroup left behind");
    assert!(!w.storage_dir.join("containers").join(&cid).exists(), "storage left behind");
    assert!(!w.state_dir.join("containers").join(&cid).exists(), "state left behind");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&cid), "a mount of the container is left on the host");
    if driver == Driver::Btrfs {
        let subvols = run("btrfs", &["subvolume", "list", &w.mnt.to_string_lossy()]);
        assert!(!subvols.contains(&cid), "subvolume left behind: {subvols}");
    }
}

#[test]
fn lifecycle_and_cleanup_btrfs() {
    lifecycle(Driver::Btrfs);
}

#[test]
fn lifecycle_and_cleanup_overlay() {
    lifecycle(Driver::Overlay);
}

#[test]
fn killed_daemon_keeps_everything_it_answered() {
    let mut w = World::new(Driver::Btrfs);
    let run1 = w.running("run1");
    let made = w.ok(&["containers", "create", "--name", "made", "--image", "busybox"]);
    w.kill_daemon();
    let pid = run1["pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the container survives the daemon");
    w.start_daemon();
    let list = w.ok(&["containers", "list"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"run1") && names.contains(&"made"), "{names:?}");
    let r = w.ok(&["containers", "get", &id(&run1)]);
    assert_eq!((r["status"].as_str(), r["pid"].as_i64()), (Some("running"), Some(pid)));
    assert_eq!(w.ok(&["containers", "get", &id(&made)])["status"], "created");
    assert_eq!(w.sh(&id(&run1), "echo still-here").trim(), "still-here");
    let r = w.ok(&["containers", "stop", "--timeout", "0", &id(&run1)]);
    assert_eq!(r["status"], "stopped");
    assert!(!hoody_e2e::alive(pid), "the adopted init was stopped");
}

fn census(w: &World) -> (usize, usize, usize) {
    let count = |p: &Path| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    let cgroups = std::fs::read_dir(&w.cgroup).map(|d| d.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0);
    (count(&w.storage_dir.join("containers")), cgroups, w.ok(&["containers", "list"]).as_array().unwrap().len())
}

fn expect(r: Reply, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let m = r.message();
    assert!(m.contains(needle), "message {m:?} does not name {needle:?}");
}

/// A refusal with `status` and `code` whose `field` member is `field`.
fn refused(r: Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{r:?}");
    let e = &r.json()["error"];
    assert_eq!((e["code"].as_str(), e["field"].as_str()), (Some(code), field), "{r:?}");
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let w = World::new(Driver::Overlay);
    let running = w.running("busy");
    w.ok(&["containers", "create", "--name", "dup", "--image", "busybox"]);
    let before = census(&w);
    let h = w.http();
    expect(h.post("/containers", r#"{"name":"Bad_Name","image":"busybox"}"#), 422, "name");
    // Codes a program can branch on, and the field at fault.
    refused(h.post("/containers", r#"{"name":"Bad_Name","image":"busybox"}"#), 422, "invalid", Some("name"));
    refused(h.post("/containers", r#"{"name":"dup","image":"busybox"}"#), 409, "already_exists", None);
    refused(h.post("/containers", r#"{"name":"ok1","image":"busybox""#), 400, "invalid", None);
    refused(h.post("/containers", r#"{"name":"ok1","image":"busybox","colour":"red"}"#), 422, "invalid", Some("colour"));
    refused(h.post("/containers", r#"{"name":"ok1","image":"busybox","limits":{"memory":"lots"}}"#), 422, "invalid", Some("limits.memory"));
    refused(h.post("/containers", r#"{"name":"ok1","image":"busybox","env":["NOEQUALS"]}"#), 422, "invalid", Some("env[0]"));
    refused(h.post("/containers?colour=red", r#"{"name":"ok1","image":"busybox"}"#), 400, "invalid", Some("?colour"));
    refused(h.post(&format!("/containers/{}/start", id(&running)), ""), 409, "already_running", None);
    refused(h.request("DELETE", &format!("/containers/{}", id(&running)), b""), 409, "needs_force", None);
    refused(h.post("/containers/dup/stop", ""), 409, "not_running", None);
    refused(h.post("/containers/dup/exec", r#"{"command":["true"]}"#), 409, "not_running", None);
    refused(h.request("DELETE", "/images/busybox", b""), 409, "in_use", None);
    refused(h.get("/containers/doesnotexist"), 404, "not_found", None);
    expect(h.post("/containers", r#"{"name":"-x","image":"busybox"}"#), 422, "name");
    expect(h.post("/containers", &format!(r#"{{"name":"{}","image":"busybox"}}"#, "a".repeat(64))), 422, "name");
    expect(h.post("/containers", r#"{"name":"dup","image":"busybox"}"#), 409, "dup");
    expect(h.post("/containers", r#"{"name":"ok1","image":"nosuchimage"}"#), 422, "image");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox""#), 400, "malformed JSON");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","colour":"red"}"#), 422, "colour");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","limits":{"memory":"lots"}}"#), 422, "limits.memory");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","limits":{"cpus":0}}"#), 422, "limits.cpus");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","limits":{"pids":0}}"#), 422, "limits.pids");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","command":[]}"#), 422, "command");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","env":["NOEQUALS"]}"#), 422, "env[0]");
    expect(h.post("/containers", r#"{"name":"ok1","image":"busybox","realm_ids":["nothex"]}"#), 422, "realm_ids[0]");
    let big = format!(r#"{{"name":"ok1","image":"busybox","env":["A={}"]}}"#, "x".repeat(2 << 20));
    let r = h.post("/containers", &big);
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(200)]);
    expect(h.post(&format!("/containers/{}/start", id(&running)), ""), 409, "already running");
    expect(h.request("DELETE", &format!("/containers/{}", id(&running)), b""), 409, "running");
    expect(h.get("/containers/doesnotexist"), 404, "doesnotexist");
    expect(h.get("/nosuchendpoint"), 404, "no such endpoint");
    expect(h.request("PUT", "/containers", b""), 405, "not allowed");
    // A command that cannot run: refused as bad input, and the create-and-start leaves nothing.
    let r = h.post("/containers?start=true", r#"{"name":"nocmd","image":"busybox","command":["/no/such/binary"]}"#);
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.json()["error"]["field"], "command", "{r:?}");
    assert!(r.message().contains("command"), "{r:?}");
    assert_eq!(w.ctl(&["containers", "get", "nocmd"]).code, 3, "a create whose start failed leaves no container");
    assert_eq!(census(&w), before, "a refused request left something behind");
    assert_eq!(w.ok(&["containers", "get", "busy"])["status"], "running");
}

#[test]
fn limits_need_their_controllers() {
    let w = World::new(Driver::Overlay);
    let controllers = std::fs::read_to_string(w.cgroup.join("cgroup.subtree_control")).unwrap();
    let c = w.ctl(&["containers", "create", "--name", "lim", "--image", "busybox", "--memory", "64MiB", "--pids", "100"]);
    if controllers.split_whitespace().any(|c| c == "memory") && controllers.split_whitespace().any(|c| c == "pids") {
        assert_eq!(c.code, 0, "{c:?}");
        let v = c.json()["data"].clone();
        assert_eq!(v["limits"]["memory"], "64MiB");
        w.ok(&["containers", "start", "lim"]);
        let max = std::fs::read_to_string(w.cgroup.join(id(&v)).join("memory.max")).unwrap();
        assert_eq!(max.trim(), (64u64 << 20).to_string());
    } else {
        assert_eq!(c.code, 5, "a refusal exits 5: {c:?}");
        assert!(c.stderr.contains("memory controller is not available"), "the 422 names the controller: {c:?}");
        assert!(w.ok(&["containers", "list"]).as_array().unwrap().is_empty(), "nothing was created");
    }
}

#[test]
fn exec_streams_and_exit_codes() {
    let w = World::new(Driver::Overlay);
    let c = w.running("ex");
    let cid = id(&c);
    let r = w.ctl_with_input(&["exec", "-c", &cid, "--", "sh", "-c", "cat; echo to-stderr >&2; exit 3"], b"hello\nworld\n");
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.stdout, "hello\nworld\n");
    assert_eq!(r.stderr, "to-stderr\n");
    let r = w.exec(&cid, &["no-such-command"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("no-such-command"), "{r:?}");
    let r = w.ctl(&["exec", "-c", &cid, "-u", "1000:1000", "--", "id"]);
    assert!(r.stdout.starts_with("uid=1000 gid=1000"), "{r:?}");
    assert_eq!(w.ctl(&["exec", "-c", &cid, "-w", "/etc", "--", "pwd"]).stdout.trim(), "/etc");
    assert_eq!(w.ctl(&["exec", "-c", &cid, "-e", "GREETING=hi", "--", "sh", "-c", "echo $GREETING"]).stdout.trim(), "hi");
    // The exec'd process is in the container's cgroup and has its confinement.
    let r = w.sh(&cid, "cat /proc/self/cgroup; grep -E 'Seccomp:|CapEff' /proc/self/status");
    assert!(r.contains("0::/exec-"), "in an exec cgroup below the container's cgroup namespace root: {r}");
    assert!(r.contains("Seccomp:\t2") && r.contains("00000000a80425fb"), "{r}");
    // Non-interactive exec without an upgrade: one JSON answer.
    let req = hoody_api::exec::ExecRequest {
        command: vec!["sh".into(), "-c".into(), "echo out; echo err >&2; exit 4".into()],
        ..Default::default()
    };
    let d = w.api(async |c| c.exec_json(&cid, &req).await).expect("JSON mode");
    assert_eq!((d.exit_code, d.stdout.as_deref(), d.stderr.as_deref()), (Some(4), Some("out\n"), Some("err\n")));
    w.ok(&["containers", "stop", "--timeout", "0", &cid]);
    let r = w.exec(&cid, &["true"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("not running"), "{r:?}");
}

/// Drives `hoodyctl exec -t` through a real pseudo-terminal, as a person at a terminal would.
#[test]
fn exec_with_a_terminal() {
    use nix::pty::{Winsize, openpty};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let w = World::new(Driver::Btrfs);
    let cid = id(&w.running("tty"));
    let pty = openpty(Some(&Winsize { ws_row: 33, ws_col: 111, ws_xpixel: 0, ws_ypixel: 0 }), None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = w
        .hoodyctl()
        .args(["exec", "-t", "-c", &cid, "--", "sh"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
    let mut seen = String::new();
    let mut wait_for = |master: &mut std::fs::File, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 4096];
        while !seen.contains(needle) {
            assert!(Instant::now() < deadline, "never saw {needle:?} in {seen:?}");
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        std::mem::take(&mut seen)
    };
    wait_for(&mut master, "# ");
    master.write_all(b"stty size; tty\r").unwrap();
    let out = wait_for(&mut master, "/dev/pts/");
    assert!(out.contains("33 111"), "window size reached the container: {out:?}");
    // Ctrl-C reaches the command in the foreground.
    master.write_all(b"sleep 300; echo after-sleep-$?\r").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    master.write_all(&[3]).unwrap();
    let out = wait_for(&mut master, "# ");
    assert!(!out.contains("after-sleep-0"), "sleep was interrupted: {out:?}");
    // Resize: the new size is forwarded on SIGWINCH.
    let ws = libc::winsize { ws_row: 50, ws_col: 160, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a valid winsize; the master fd is open.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGWINCH).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(b"stty size\r").unwrap();
    let out = wait_for(&mut master, "50 160");
    assert!(out.contains("50 160"));
    master.write_all(b"exit 9\r").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(9), "the command's exit status is hoodyctl's");
}

#[test]
fn logs_and_follow() {
    let w = World::new(Driver::Overlay);
    let c = w.ok(&[
        "containers",
        "create",
        "--name",
        "talker",
        "--image",
        "busybox",
        "--start",
        "--",
        "sh",
        "-c",
        "echo hello-from-init; echo on-stderr >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ]);
    let cid = id(&c);
    std::thread::sleep(Duration::from_millis(700));
    let logs = w.ctl(&["logs", "-c", &cid]);
    assert_eq!(logs.code, 0);
    assert!(logs.stdout.starts_with("hello-from-init\non-stderr\ntick 0\n"), "{:?}", logs.stdout);
    let last = w.ctl(&["logs", "-c", &cid, "--tail", "1"]).stdout;
    assert_eq!(last.lines().count(), 1, "{last:?}");
    assert!(last.starts_with("tick "));
    // follow: new lines stream in, and the stream ends when the container stops.
    let mut f = w.hoodyctl().args(["logs", "-f", "-c", &cid]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut out = f.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    std::thread::sleep(Duration::from_millis(1200));
    w.ok(&["containers", "stop", "--timeout", "0", &cid]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "logs -f did not end after the container stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let streamed = reader.join().unwrap();
    let ticks = streamed.lines().filter(|l| l.starts_with("tick")).count();
    let before = logs.stdout.lines().filter(|l| l.starts_with("tick")).count();
    assert!(ticks >= before + 4, "follow streamed new lines ({before} → {ticks})");
}

#[test]
fn pid1_reaps_orphans() {
    let w = World::new(Driver::Btrfs);
    let init = id(&w.running("reaper"));
    let plain = id(&w.ok(&["containers", "create", "--name", "noreap", "--image", "busybox", "--start", "--", "sleep", "1000"]));
    for cid in [&init, &plain] {
        w.sh(cid, "(sleep 0.2 &) ; (sleep 0.2 &) ; exit 0");
    }
    std::thread::sleep(Duration::from_millis(800));
    let zombies = |cid: &str| w.sh(cid, "ps -o stat,comm").lines().filter(|l| l.trim_start().starts_with('Z')).count();
    assert_eq!(zombies(&init), 0, "the image's init reaps orphans");
    assert_eq!(zombies(&plain), 2, "control: a PID 1 that does not reap leaves zombies, so the check above is real");
}

#[test]
fn image_import_is_confined() {
    let w = World::new(Driver::Btrfs);
    let dir = w.dir.join("imports");
    std::fs::create_dir_all(&dir).unwrap();
    // `..` anywhere: the whole import is refused, nothing escapes, nothing is staged.
    let evil = dir.join("evil.tar");
    std::fs::write(&evil, tarball::build(&[("ok", tarball::Kind::File(b"x")), ("../../../escaped", tarball::Kind::File(b"pwned"))]))
        .unwrap();
    let r = w.ctl(&["images", "import", "evil", &evil.to_string_lossy()]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("`..`"), "{r:?}");
    assert!(!w.mnt.join("escaped").exists() && !w.storage_dir.join("escaped").exists() && !w.dir.join("escaped").exists());
    let images: Vec<String> =
        std::fs::read_dir(w.storage_dir.join("images")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(images, vec!["busybox".to_string()], "no staging left behind");

    // Neutralised: absolute paths land inside, writes through outward symlinks stay inside,
    // hard links resolve inside, device nodes are skipped.
    let victim = w.dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let victim_s = victim.to_string_lossy().to_string();
    let tar = tarball::build(&[
        ("bin/busybox", tarball::Kind::Exec(&busybox)),
        ("bin/sh", tarball::Kind::Symlink("busybox")),
        ("bin/cat", tarball::Kind::HardLink("bin/busybox")),
        ("/etc/marker", tarball::Kind::File(b"from-the-tarball")),
        ("out", tarball::Kind::Symlink("../../../../../../../../..")),
        ("out/etc/passwd-written", tarball::Kind::File(b"inside")),
        ("v", tarball::Kind::Symlink(&victim_s)),
        ("v", tarball::Kind::File(b"replaced")),
        ("dev/mem", tarball::Kind::CharDev),
        ("tmp", tarball::Kind::Dir),
    ]);
    let tz = dir.join("odd.tar");
    std::fs::write(&tz, &tar).unwrap();
    run("zstd", &["-q", "-f", &tz.to_string_lossy()]);
    let imported = w.ok(&["images", "import", "odd", &format!("{}.zst", tz.to_string_lossy())]);
    assert_eq!(imported["report"]["skipped"].as_array().unwrap().len(), 1, "{imported}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(!Path::new("/etc/passwd-written").exists());
    let c = w.ok(&[
        "containers",
        "create",
        "--name",
        "odd",
        "--image",
        "odd",
        "--start",
        "--",
        "/bin/sh",
        "-c",
        "while true; do read x; done < /dev/zero",
    ]);
    let cid = id(&c);
    assert_eq!(w.exec(&cid, &["cat", "/etc/marker"]).stdout, "from-the-tarball");
    assert_eq!(w.exec(&cid, &["cat", "/etc/passwd-written"]).stdout, "inside");
    assert_eq!(w.exec(&cid, &["cat", "/v"]).stdout, "replaced");
    // A directory import, and a delete refused while a container uses the image.
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let d = w.ok(&["images", "import", "fromdir", &rootfs.to_string_lossy()]);
    assert_eq!(d["name"], "fromdir");
    let r = w.ctl(&["images", "delete", "odd"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("used by"), "{r:?}");
    w.ok(&["images", "delete", "fromdir"]);
    assert!(!w.storage_dir.join("images/fromdir").exists());

    // The packaging script's busybox tarball imports and boots with its own init.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/images/build-busybox.sh");
    let tgz = dir.join("bb.tar.gz");
    run("sh", &[&script.to_string_lossy(), &tgz.to_string_lossy()]);
    w.ok(&["images", "import", "bb", &tgz.to_string_lossy()]);
    let c = w.ok(&["containers", "create", "--name", "bb", "--image", "bb", "--start"]);
    assert_eq!(w.sh(&id(&c), "cat /proc/1/comm").trim(), "init");

    // From standard input (`-`, and `/dev/stdin` from a pipe: no length to send).
    let bytes = std::fs::read(&tgz).unwrap();
    let piped = w.ctl_with_input(&["images", "import", "piped", "-"], &bytes);
    assert_eq!(piped.code, 0, "{piped:?}");
    assert_eq!(piped.json()["data"]["files"], w.ok(&["images", "get", "bb"])["files"], "{piped:?}");
    let devstdin = w.ctl_with_input(&["images", "import", "devstdin", "/dev/stdin"], &bytes);
    assert_eq!(devstdin.code, 0, "{devstdin:?}");
    // What is not a root file system is refused, saying what it is, and leaves no image.
    let empty = w.ctl_with_input(&["images", "import", "empty", "-"], b"");
    assert!(empty.code != 0 && empty.stderr.contains("the archive is empty"), "{empty:?}");
    let oci = dir.join("oci.tar");
    let layout = dir.join("oci");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    std::fs::write(layout.join("index.json"), r#"{"schemaVersion": 2, "manifests": []}"#).unwrap();
    run("tar", &["-C", &layout.to_string_lossy(), "-cf", &oci.to_string_lossy(), "."]);
    let r = w.ctl(&["images", "import", "oci", &oci.to_string_lossy()]);
    assert!(r.code != 0 && r.stderr.contains("OCI image layout"), "{r:?}");
    let names: Vec<String> = w.ok(&["images", "list"]).as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect();
    assert!(!names.iter().any(|n| n == "empty" || n == "oci"), "{names:?}");
    let mut staged: Vec<String> =
        std::fs::read_dir(w.storage_dir.join("images")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    staged.retain(|n| !names.contains(n));
    assert!(staged.is_empty(), "left in the pool: {staged:?}");
}
