//! Exec that an agent harness can rely on, end to end through hoodyctl and the socket: exec
//! instances with ids, signals, no orphans, detached execs, the JSON mode.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hoody_e2e::{Driver, World, eventually};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// The command lines of the container's processes (busybox ps).
fn processes(w: &World, c: &str) -> String {
    w.exec(c, &["ps", "-o", "args"]).stdout
}

/// Whether a process whose whole command line is `cmd` runs in the container (not merely a
/// shell whose script mentions it).
fn runs(w: &World, c: &str, cmd: &str) -> bool {
    processes(w, c).lines().any(|l| l.trim() == cmd)
}

/// The exec cgroups below the container's cgroup.
fn exec_cgroups(w: &World, c: &str) -> Vec<String> {
    std::fs::read_dir(w.cgroup.join(c))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).filter(|n| n.starts_with("exec-")).collect())
        .unwrap_or_default()
}

fn json_exec(w: &World, c: &str, body: &str) -> Value {
    let r = w.http().post(&format!("/containers/{c}/exec"), body);
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    r.json()["data"].clone()
}

#[test]
fn ctrl_c_without_a_terminal_ends_the_whole_tree_and_a_dead_client_its_command() {
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("agent"));
    // Ctrl-C (SIGINT to hoodyctl, no -t): the command and what it started in the background go.
    let mut child = w
        .hoodyctl()
        .args(["exec", "-c", &c, "--", "sh", "-c", "sleep 301 & sleep 302; wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hoodyctl");
    eventually("the command running", || runs(&w, &c, "sleep 302") && runs(&w, &c, "sleep 301"));
    let cgroups = exec_cgroups(&w, &c);
    assert!(!cgroups.is_empty(), "each exec runs in a child cgroup of the container's");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hoodyctl did not end after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "the command ended by SIGINT");
    eventually("nothing of the tree left", || !runs(&w, &c, "sleep 301") && !runs(&w, &c, "sleep 302"));
    let execs = w.ok(&["execs", "list", "-c", &c]);
    let first = execs.as_array().unwrap().iter().find(|e| e["command"][2] == "sleep 301 & sleep 302; wait").expect("the instance").clone();
    assert_eq!((first["status"].as_str(), first["signal"].as_i64(), first["exit_code"].as_i64()), (Some("exited"), Some(2), Some(130)));
    assert_eq!(first["started_by"]["uid"], 0);
    assert_eq!((first["detached"].as_bool(), first["tty"].as_bool()), (Some(false), Some(false)));
    // A client killed outright (SIGKILL: no signal forwarded) takes its command with it.
    let mut child = w
        .hoodyctl()
        .args(["exec", "-c", &c, "--", "sh", "-c", "sleep 303"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hoodyctl");
    eventually("the command running", || runs(&w, &c, "sleep 303"));
    child.kill().unwrap();
    let _ = child.wait();
    eventually("the orphan gone (SIGHUP, then cgroup.kill after the grace)", || !runs(&w, &c, "sleep 303"));
    eventually("its cgroup removed", || exec_cgroups(&w, &c).is_empty());
}

#[test]
fn signals_reach_the_process_group_and_a_normal_exit_leaves_background_children() {
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("signals"));
    let child = w
        .hoodyctl()
        .args(["exec", "-c", &c, "--", "sh", "-c", "trap 'echo got TERM; exit 3' TERM; sleep 304 & wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hoodyctl");
    eventually("the command running", || runs(&w, &c, "sleep 304"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got TERM\n");
    // A command that exits on its own leaves what it started in the background, as docker exec.
    let r = w.ctl(&["exec", "-c", &c, "--", "sh", "-c", "sleep 305 > /dev/null 2>&1 & echo started"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "started\n"), "{r:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(runs(&w, &c, "sleep 305"), "the background child runs on");
}

#[test]
fn a_detached_exec_runs_on_and_keeps_its_exit_code_and_output() {
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("detached"));
    let v = w.ok(&["exec", "-d", "-c", &c, "--", "sh", "-c", "echo hi; echo oops >&2; sleep 1; exit 7"]);
    let e = id(&v);
    assert_eq!((v["status"].as_str(), v["detached"].as_bool()), (Some("running"), Some(true)), "{v}");
    eventually("the detached exec finished", || w.ok(&["execs", "get", "-c", &c, &e])["status"] == "exited");
    let got = w.ok(&["execs", "get", "-c", &c, &e]);
    assert_eq!(
        (got["exit_code"].as_i64(), got["stdout"].as_str(), got["stderr"].as_str()),
        (Some(7), Some("hi\n"), Some("oops\n")),
        "{got}"
    );
    assert!(got["finished_at"].is_string() && got["started_at"].is_string());
    eventually("its cgroup removed once it ended", || exec_cgroups(&w, &c).is_empty());
    let none = w.ctl(&["execs", "get", "-c", &c, "0123456789abcdef01234567"]);
    assert_ne!(none.code, 0);
}

#[test]
fn json_mode_stdin_timeout_binary_and_capped_output() {
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("harness"));
    let d = json_exec(&w, &c, r#"{"command":["cat"],"stdin":"hello harness"}"#);
    assert_eq!((d["exit_code"].as_i64(), d["stdout"].as_str()), (Some(0), Some("hello harness")), "{d}");
    let d = json_exec(&w, &c, r#"{"command":["cat"],"stdin_base64":"/wBh"}"#);
    assert_eq!((d["stdout_base64"].as_str(), d.get("stdout")), (Some("/wBh"), None), "non-UTF-8 output comes as base64: {d}");
    let t = Instant::now();
    let d = json_exec(&w, &c, r#"{"command":["sh","-c","sleep 30 & sleep 31"],"timeout":0.5}"#);
    assert_eq!(d["timed_out"], true, "{d}");
    assert!(t.elapsed() < Duration::from_secs(10), "killed at the timeout");
    assert_eq!(d["signal"].as_i64(), Some(9), "{d}");
    assert!(!runs(&w, &c, "sleep 30") && !runs(&w, &c, "sleep 31"), "the whole tree went at the timeout");
    // 10 MB of output: capped where asked, the process keeps running to its end (no SIGPIPE).
    let d =
        json_exec(&w, &c, r#"{"command":["sh","-c","head -c 10000000 /dev/zero | tr '\\0' x; echo done >&2"],"max_output_bytes":1000}"#);
    assert_eq!((d["exit_code"].as_i64(), d["stdout"].as_str().map(str::len), d["stderr"].as_str()), (Some(0), Some(1000), Some("done\n")));
    assert_eq!((d["truncated"]["stdout"].as_bool(), d["truncated"]["stderr"].as_bool()), (Some(true), Some(false)));
    let d = json_exec(&w, &c, r#"{"command":["sh","-c","head -c 10000000 /dev/zero | tr '\\0' x"],"max_output_bytes":20000000}"#);
    assert_eq!(
        (d["exit_code"].as_i64(), d["stdout"].as_str().map(str::len), d["truncated"]["stdout"].as_bool()),
        (Some(0), Some(10_000_000), Some(false))
    );
    assert!(d["duration_ms"].as_u64().is_some() && d["id"].is_string());
    let bad = w.http().post(&format!("/containers/{c}/exec"), r#"{"command":["true"],"timeout":-1}"#);
    assert_eq!(bad.status, 422, "{bad:?}");
}

#[test]
fn a_hundred_concurrent_execs_in_one_container() {
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("busy"));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let http = w.http();
            let c = c.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"command":["sh","-c","echo n$0; exit $(($0 % 7))","{i}"]}}"#);
                let r = http.post(&format!("/containers/{c}/exec"), &body);
                assert_eq!(r.status, 200, "{r:?}");
                let d = r.json()["data"].clone();
                assert_eq!((d["stdout"].as_str(), d["exit_code"].as_i64()), (Some(format!("n{i}\n").as_str()), Some(i % 7)), "{d}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an exec thread");
    }
    let list = w.ok(&["execs", "list", "-c", &c]);
    assert_eq!(list.as_array().unwrap().iter().filter(|e| e["status"] == "exited").count(), 100);
}

#[test]
fn ten_concurrent_execs_in_each_of_fifty_containers() {
    // 500 requests at once: more than the default 256 open connections.
    let w = World::with_flags(Driver::Overlay, &["--max-connections", "1024"]);
    let http = w.http();
    let ids: Vec<String> = (0..50)
        .map(|i| {
            let r = http.post("/containers?start=true", &format!(r#"{{"name":"c{i}","image":"busybox"}}"#));
            assert_eq!(r.status, 201, "{r:?}");
            r.json()["data"]["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let threads: Vec<_> = ids
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| (0..10).map(move |k| (ci, k, c.clone())))
        .map(|(ci, k, c)| {
            let http = w.http();
            std::thread::spawn(move || {
                let body = format!(r#"{{"command":["sh","-c","echo $0-$(hostname); exit $1","{k}","{}"]}}"#, (ci + k) % 5);
                let r = http.post(&format!("/containers/{c}/exec"), &body);
                assert_eq!(r.status, 200, "{r:?}");
                let d = r.json()["data"].clone();
                let want = format!("{k}-c{ci}\n");
                assert_eq!((d["stdout"].as_str(), d["exit_code"].as_i64()), (Some(want.as_str()), Some(((ci + k) % 5) as i64)), "{d}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an exec thread");
    }
    for c in &ids {
        assert_eq!(w.ok(&["execs", "list", "-c", c]).as_array().unwrap().len(), 10);
    }
}

/// An exec killed with its helper (a timeout) leaves its command as an orphan of hoodyd in the
/// container's PID namespace; unreaped, it would keep the container's init from ever finishing
/// its exit, and the container from stopping.
#[test]
fn a_killed_exec_leaves_no_zombie_that_keeps_the_container_from_stopping() {
    let w = World::new(Driver::Btrfs);
    let c = id(&w.running("reaped"));
    for _ in 0..3 {
        let r = w.ctl(&["exec", "-c", &c, "--timeout", "0.5", "--", "sh", "-c", "sleep 60 & sleep 61"]);
        assert_eq!(r.code, 137, "{r:?}");
    }
    let t = Instant::now();
    let r = w.ctl(&["containers", "stop", "--timeout", "1", &c]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(15), "stopped at once, not after a kill that waits forever");
    assert_eq!(w.ok(&["containers", "get", &c])["status"], "stopped");
    // Nothing of the container is left: no zombie whose parent is hoodyd or one of its shims.
    let mut parents: Vec<i32> = std::fs::read_to_string(w.cgroup.join("shims/cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    parents.push(w.daemon_pid().expect("hoodyd") as i32);
    let ours = |pid: i32| parents.contains(&pid);
    let zombies: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|s| {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            let mut f = rest.split_whitespace();
            f.next() == Some("Z") && f.next().and_then(|p| p.parse::<i32>().ok()).is_some_and(ours)
        })
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
}

/// A hoodyctl started in the background, killed (and reaped) when the test ends, also when it
/// fails: a re-attaching client would otherwise retry for minutes.
struct Spawned(std::process::Child);

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hoodyctl ARGS` in the background, stdout and stderr piped.
fn spawn_ctl(w: &World, args: &[&str], stdin: Stdio) -> Spawned {
    Spawned(w.hoodyctl().args(args).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("hoodyctl"))
}

/// Collects a child's stdout as it comes.
fn collect(r: impl std::io::Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let o = out.clone();
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(r);
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut r, &mut line).is_ok_and(|n| n > 0) {
            o.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    out
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "hoodyctl did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether anything runs in the exec cgroups of the container.
fn exec_running(w: &World, c: &str) -> bool {
    exec_cgroups(w, c)
        .iter()
        .any(|g| std::fs::read_to_string(w.cgroup.join(c).join(g).join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()))
}

#[test]
fn a_session_outlives_a_killed_daemon_and_hoodyctl_reattaches() {
    use std::io::Write;
    let mut w = World::new(Driver::Overlay);
    let c = id(&w.running("outlive"));
    let mut child = spawn_ctl(
        &w,
        &["exec", "-c", &c, "--", "sh", "-c", "echo one; read line; echo got $line; sleep 1; echo two; exit 7"],
        Stdio::piped(),
    );
    let out = collect(child.stdout.take().unwrap());
    eventually("the first line", || out.lock().unwrap().contains("one\n"));
    w.kill_daemon();
    // No daemon: the command runs on under its shim, and waits for its input.
    std::thread::sleep(Duration::from_millis(300));
    assert!(exec_running(&w, &c), "the exec runs on while no daemon runs");
    assert!(child.try_wait().unwrap().is_none(), "hoodyctl waits to re-attach");
    // Input given while the daemon is away reaches the command once hoodyctl re-attached.
    child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    w.start_daemon();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(7), "the command's exit code, through the re-attached stream");
    assert_eq!(out.lock().unwrap().as_str(), "one\ngot hello\ntwo\n");
    let execs = w.ok(&["execs", "list", "-c", &c]);
    let e = execs.as_array().unwrap().iter().find(|e| e["command"][0] == "sh").expect("the instance");
    assert_eq!((e["status"].as_str(), e["exit_code"].as_i64()), (Some("exited"), Some(7)), "{e}");
}

#[test]
fn an_exec_nobody_reattaches_to_after_a_restart_is_hung_up_after_the_grace() {
    let mut w = World::with_flags(Driver::Overlay, &["--exec-reattach-grace", "4"]);
    let c = id(&w.running("grace"));
    let mut child = spawn_ctl(&w, &["exec", "-c", &c, "--", "sleep", "306"], Stdio::null());
    eventually("the command running", || runs(&w, &c, "sleep 306"));
    // The daemon first (so the client's going is not seen), then its client.
    w.kill_daemon();
    child.kill().unwrap();
    let _ = child.wait();
    w.start_daemon();
    assert!(runs(&w, &c, "sleep 306"), "within the grace it runs on");
    let execs = w.ok(&["execs", "list", "-c", &c]);
    let e = id(execs.as_array().unwrap().iter().find(|e| e["command"][1] == "306").expect("the instance"));
    assert_eq!(w.ok(&["execs", "get", "-c", &c, &e])["status"], "running");
    eventually("hung up once nobody re-attached within the grace", || !runs(&w, &c, "sleep 306"));
    eventually("its end recorded", || w.ok(&["execs", "get", "-c", &c, &e])["status"] == "exited");
    let got = w.ok(&["execs", "get", "-c", &c, &e]);
    assert_eq!((got["signal"].as_i64(), got["exit_code"].as_i64()), (Some(1), Some(129)), "ended by SIGHUP: {got}");
    eventually("its cgroup removed", || exec_cgroups(&w, &c).is_empty());
}

#[test]
fn a_detached_exec_ends_while_no_daemon_runs_and_the_next_one_reads_its_end() {
    let mut w = World::new(Driver::Btrfs);
    let c = id(&w.running("ended-away"));
    let e = id(&w.ok(&["exec", "-d", "-c", &c, "--", "sh", "-c", "echo a; sleep 1; echo b >&2; exit 3"]));
    w.kill_daemon();
    // The shim records the end on disk, durably, with no daemon to tell.
    let dir = w.state_dir.join("execs").join(&e);
    let end = || serde_json::from_slice::<Value>(&std::fs::read(dir.join("end.json")).unwrap_or_default()).ok();
    eventually("the end recorded by the shim", || end().is_some());
    let end = end().unwrap();
    assert_eq!(end["exit_code"], 3, "{end}");
    w.start_daemon();
    let got = w.ok(&["execs", "get", "-c", &c, &e]);
    assert_eq!(
        (got["status"].as_str(), got["exit_code"].as_i64(), got["stdout"].as_str(), got["stderr"].as_str()),
        (Some("exited"), Some(3), Some("a\n"), Some("b\n")),
        "{got}"
    );
    // A second restart keeps the instance; deleting the container takes its directory.
    w.kill_daemon();
    w.start_daemon();
    assert_eq!(w.ok(&["execs", "get", "-c", &c, &e])["exit_code"], 3);
    w.ok(&["containers", "delete", "--force", &c]);
    assert!(!dir.exists(), "the exec's directory went with its container");
}

#[test]
fn after_a_killed_daemon_a_second_client_attaches_while_it_runs_and_sees_the_rest() {
    let mut w = World::new(Driver::Overlay);
    let c = id(&w.running("second"));
    let script = "echo a; sleep 8; echo b; exit 4";
    let mut first = spawn_ctl(&w, &["exec", "-c", &c, "--", "sh", "-c", script], Stdio::null());
    let out = collect(first.stdout.take().unwrap());
    eventually("the first line", || out.lock().unwrap().contains("a\n"));
    // The daemon and the first client both go.
    w.kill_daemon();
    first.kill().unwrap();
    let _ = first.wait();
    w.start_daemon();
    let execs = w.ok(&["execs", "list", "-c", &c]);
    let e = id(execs.as_array().unwrap().iter().find(|e| e["command"][2] == script).expect("the instance"));
    assert_eq!(w.ok(&["execs", "get", "-c", &c, &e])["status"], "running", "it runs on under its shim");
    let r = w.ctl(&["execs", "attach", "-c", &c, &e]);
    assert_eq!((r.code, r.stdout.as_str()), (4, "b\n"), "{r:?}");
    let got = w.ok(&["execs", "get", "-c", &c, &e]);
    assert_eq!((got["status"].as_str(), got["exit_code"].as_i64()), (Some("exited"), Some(4)), "{got}");
}

#[test]
fn a_client_that_attaches_takes_the_stream_from_the_one_before() {
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("takeover"));
    let script = "sleep 2; echo late; exit 5";
    let mut first = spawn_ctl(&w, &["exec", "-c", &c, "--", "sh", "-c", script], Stdio::null());
    eventually("the command running", || runs(&w, &c, "sleep 2"));
    let execs = w.ok(&["execs", "list", "-c", &c]);
    let e = id(execs.as_array().unwrap().iter().find(|e| e["command"][2] == script).expect("the instance"));
    let r = w.ctl(&["execs", "attach", "-c", &c, &e]);
    assert_eq!((r.code, r.stdout.as_str()), (5, "late\n"), "the new client gets the rest: {r:?}");
    let (mut stdout, mut stderr) = (first.stdout.take().unwrap(), first.stderr.take().unwrap());
    let status = wait_exit(&mut first, Duration::from_secs(30));
    let (mut out, mut err) = (String::new(), String::new());
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{out} {err}");
    assert!(err.contains("another client attached"), "{err}");
    assert!(out.is_empty(), "{out}");
}

/// The typed client of `hoody-api` against a real daemon: typed answers, the daemon's error codes.
#[test]
fn the_typed_client_runs_execs_and_reads_their_instances_and_errors() {
    use hoody_api::client::Client;
    use hoody_api::envelope::ErrorCode;
    use hoody_api::exec::{ExecRequest, ExecStatus};
    let w = World::new(Driver::Overlay);
    let c = id(&w.running("typed"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = Client::from_env(Some(w.socket.clone()));
    rt.block_on(async {
        let req = ExecRequest {
            command: vec!["sh".into(), "-c".into(), "cat; exit 3".into()],
            stdin: Some("typed".into()),
            ..Default::default()
        };
        let out = client.exec_json(&c, &req).await.expect("exec");
        assert_eq!((out.exit_code, out.stdout.as_deref()), (Some(3), Some("typed")), "{out:?}");
        let execs = client.execs(&c).await.expect("execs");
        let e = execs.iter().find(|e| e.command[2] == "cat; exit 3").expect("the instance");
        assert_eq!((e.status, e.exit_code, e.detached), (ExecStatus::Exited, Some(3), false));
        assert_eq!(client.exec_instance(&c, &e.id).await.expect("one").exec.id, e.id);
        let missing = client.exec_instance(&c, "0123456789abcdef01234567").await.unwrap_err();
        assert_eq!(missing.code(), Some(ErrorCode::NotFound), "{missing}");
        let bad = client.exec_json(&c, &ExecRequest { command: vec![], ..Default::default() }).await.unwrap_err();
        assert_eq!(bad.code(), Some(ErrorCode::Invalid), "{bad}");
        let gone = client.execs("no-such-container").await.unwrap_err();
        assert_eq!(gone.code(), Some(ErrorCode::NotFound), "{gone}");
    });
}

/// The pids of the spare exec shims waiting now (`hoodyd __exec-shim --spare …` in the shims'
/// cgroup that keep no exec yet: no exec directory names them).
fn spares(w: &World) -> Vec<i32> {
    let kept: Vec<i32> = std::fs::read_dir(w.state_dir.join("execs"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("shim.json")).ok())
                .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s).ok()?["shim_pid"].as_i64())
                .map(|p| p as i32)
                .collect()
        })
        .unwrap_or_default();
    std::fs::read_to_string(w.cgroup.join("shims/cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter(|p| {
            let argv = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = argv.split(|b| *b == 0).collect();
            argv.get(1) == Some(&&b"__exec-shim"[..]) && argv.get(2) == Some(&&b"--spare"[..])
        })
        .filter(|p| !kept.contains(p))
        .collect()
}

#[test]
fn an_exec_is_kept_by_a_spare_shim_and_spares_never_outlive_the_daemon() {
    let mut w = World::new(Driver::Overlay);
    let c = id(&w.running("warm"));
    let wait_for = |w: &World, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = spares(w);
            if s.len() == n {
                return s;
            }
            assert!(Instant::now() < deadline, "spares {s:?}, not {n}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ready = wait_for(&w, 2);
    // The exec's shim is one of them, and another is started behind it.
    let d = w.ok(&["exec", "-d", "-c", &c, "--", "sleep", "30"]);
    let dir = w.state_dir.join("execs").join(d["id"].as_str().unwrap());
    let pids: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("shim.json")).unwrap()).unwrap();
    let shim = pids["shim_pid"].as_i64().unwrap() as i32;
    assert!(ready.contains(&shim), "the exec's shim {shim} was not one of the spares {ready:?}");
    let now = wait_for(&w, 2);
    assert!(!now.contains(&shim), "{now:?}");
    assert_eq!(w.exec(&c, &["echo", "warm"]).stdout, "warm\n");
    // A spare holds nothing of any container: without its daemon it ends, the exec's shim runs on.
    let waiting = wait_for(&w, 2);
    w.kill_daemon();
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = |p: &i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
    };
    while waiting.iter().any(alive) {
        assert!(Instant::now() < deadline, "spares outlived their daemon: {waiting:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alive(&shim), "the exec's shim went with the daemon");
    w.start_daemon();
    assert_eq!(w.ok(&["execs", "get", "-c", &c, d["id"].as_str().unwrap()])["status"], "running");
}
