//! The event stream through hoodyctl and the socket: a scripted scenario seen in order with
//! its payloads, resuming after a disconnect and across a daemon restart without loss or
//! repetition, realm scoping, and a slow subscriber dropped with a gap while others go on.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hoody_e2e::{Driver, SERVER, World, schema};
use serde_json::Value;

/// `hoodyctl events ARGS…` running, its lines collected as they come.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Subscriber {
    fn start(w: &World, token: Option<&str>, args: &[&str]) -> Subscriber {
        let mut cmd = w.hoodyctl();
        if let Some(t) = token {
            cmd.env("HOODY_TOKEN", t);
        }
        let mut child = cmd.arg("events").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().expect("hoodyctl events");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                let bad = schema::check(Some("/api/v1/events"), "GET", 200, &v);
                let short: Vec<String> = bad.iter().map(|b| b.chars().take(400).collect()).collect();
                assert!(bad.is_empty(), "an event line the document does not describe: {short:?}");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Subscriber { child, lines, seen: vec![] }
    }

    /// Collects until `done` holds for what was seen (or fails after `secs`).
    fn until(&mut self, secs: u64, what: &str, done: impl Fn(&[Value]) -> bool) -> &[Value] {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!("waiting for {what}; saw:\n{}", self.dump()),
            }
        }
        &self.seen
    }

    fn dump(&self) -> String {
        self.seen.iter().map(|v| format!("  {}\n", v.to_string().chars().take(300).collect::<String>())).collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn types_of<'a>(seen: &'a [Value], container: &str) -> Vec<&'a str> {
    seen.iter().filter(|e| e["container"] == container).filter_map(|e| e["type"].as_str()).collect()
}

fn has(seen: &[Value], kind: &str, pred: impl Fn(&Value) -> bool) -> bool {
    seen.iter().any(|e| e["type"] == kind && pred(e))
}

/// `want` appears in `got` in this order (other events may come between).
fn in_order(got: &[&str], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

fn seqs(seen: &[Value]) -> Vec<u64> {
    seen.iter().filter_map(|e| e["seq"].as_u64()).collect()
}

#[test]
fn a_subscriber_sees_the_scenario_in_order_and_resumes_without_loss() {
    let mut w = World::with_net(Driver::Btrfs);
    let mut sub = Subscriber::start(&w, None, &["--since", "0"]);
    sub.until(10, "daemon.ready", |s| has(s, "daemon.ready", |_| true));

    // The scenario: create, start, exec, a rule, a denied packet, a snapshot, a restore, an
    // exit of its own, a delete.
    let app = w.ok(&["containers", "create", "--name", "app", "--image", "busybox"])["id"].as_str().unwrap().to_owned();
    w.ok(&["containers", "start", "app"]);
    assert_eq!(w.exec("app", &["sh", "-c", "exit 3"]).code, 3);
    let rule =
        w.ok(&["firewall", "egress", "create", "-c", "app", "--action", "allow", "--protocol", "tcp", "--destination", "198.51.100.7/32"])
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();
    w.install_probe(&app);
    let (code, out) = w.probe(&app, &["tcp", SERVER, "80", "1000"]);
    assert_ne!(code, 0, "{out}");
    // Denials reach the stream through the kernel's log, a moment after the packet.
    sub.until(10, "the denial", |s| has(s, "firewall.denied", |_| true));
    w.ok(&["snapshots", "create", "app", "--alias", "s1"]);
    w.ok(&["snapshots", "restore", "app", "--name", "s1"]);
    let short = w.ok(&["containers", "create", "--name", "short", "--image", "busybox", "--start", "--", "sh", "-c", "exit 7"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.ok(&["containers", "delete", "app", "--force"]);

    let seen = sub.until(20, "app's delete and short's exit", |s| {
        has(s, "container.deleted", |e| e["container"] == app.as_str()) && has(s, "container.exited", |e| e["container"] == short.as_str())
    });
    let got = types_of(seen, &app);
    let want = [
        "container.created",
        "container.started",
        "exec.started",
        "exec.exited",
        "firewall.changed",
        "firewall.denied",
        "snapshot.created",
        "container.exited",
        "container.stopped",
        "container.started",
        "snapshot.restored",
        "container.exited",
        "container.deleted",
    ];
    assert!(in_order(&got, &want), "app's events out of order or missing:\n{got:?}");
    // Their payloads.
    assert!(has(seen, "container.created", |e| e["data"]["name"] == "app" && e["data"]["image"] == "busybox"));
    assert!(has(seen, "exec.exited", |e| e["container"] == app.as_str() && e["data"]["exit_code"] == 3), "{}", sub.dump());
    assert!(has(seen, "firewall.changed", |e| e["data"]["change"] == "egress_rule_added" && e["data"]["rule_id"] == rule.as_str()));
    assert!(has(seen, "firewall.denied", |e| e["data"]["destination"] == format!("{SERVER}:80/tcp").as_str()), "{}", sub.dump());
    assert!(has(seen, "snapshot.created", |e| e["data"]["snapshot"] == "s1"));
    assert!(has(seen, "container.stopped", |e| e["data"]["reason"] == "restore"));
    assert!(has(seen, "container.exited", |e| e["container"] == short.as_str()
        && e["data"]["exit_code"] == 7
        && e["data"]["oom_killed"] == false));
    assert!(
        has(seen, "container.exited", |e| e["container"] == app.as_str() && e["data"]["signal"].as_i64().is_some()),
        "a killed init: its signal"
    );
    let s = seqs(seen);
    assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "seqs are consecutive from the start: {s:?}");
    let last = *s.last().unwrap();
    drop(sub);

    // Resumed after a disconnect: what happened meanwhile, nothing before it.
    w.ok(&["snapshots", "create", "short", "--alias", "meanwhile"]);
    let mut again = Subscriber::start(&w, None, &["--since", &last.to_string(), "--type", "snapshot"]);
    let seen = again.until(10, "the snapshot taken while away", |s| has(s, "snapshot.created", |e| e["data"]["snapshot"] == "meanwhile"));
    assert!(seqs(seen).iter().all(|q| *q > last), "nothing already seen comes again: {}", again.dump());
    assert!(seen.iter().all(|e| e["type"].as_str().unwrap().starts_with("snapshot.")), "the type filter: {}", again.dump());

    // Across a restart: a subscriber that was following goes on by itself, without loss or
    // repetition, and the seqs continue.
    let mut follower = Subscriber::start(&w, None, &["--since", &last.to_string()]);
    follower.until(10, "the backlog", |s| has(s, "snapshot.created", |e| e["data"]["snapshot"] == "meanwhile"));
    w.stop_daemon();
    w.start_daemon();
    w.ok(&["snapshots", "create", "short", "--alias", "after-restart"]);
    let seen =
        follower.until(30, "the snapshot after the restart", |s| has(s, "snapshot.created", |e| e["data"]["snapshot"] == "after-restart"));
    let s = seqs(seen);
    assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "no event lost or repeated across the restart: {s:?}");
    assert!(has(seen, "daemon.ready", |e| e["seq"].as_u64() > Some(last)));
}

#[test]
fn a_realm_token_sees_only_its_realms_events() {
    let w = World::new(Driver::Overlay);
    let realm = w.ok(&["realms", "create", "--description", "tenant"])["id"].as_str().unwrap().to_owned();
    let token = w.ok(&["tokens", "create", "--realm", &realm])["token"].as_str().unwrap().to_owned();
    let mut tenant = Subscriber::start(&w, Some(&token), &[]);
    let mut admin = Subscriber::start(&w, None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let other = w.ok(&["containers", "create", "--name", "other", "--image", "busybox"])["id"].as_str().unwrap().to_owned();
    let mine =
        w.ok(&["containers", "create", "--name", "mine", "--image", "busybox", "--realm", &realm])["id"].as_str().unwrap().to_owned();
    w.ok(&["snapshots", "create", "other", "--alias", "x"]);
    w.ok(&["snapshots", "create", "mine", "--alias", "y"]);
    admin.until(10, "both containers' snapshots", |s| {
        has(s, "snapshot.created", |e| e["container"] == mine.as_str()) && has(s, "snapshot.created", |e| e["container"] == other.as_str())
    });
    let seen = tenant.until(10, "its own container's snapshot", |s| has(s, "snapshot.created", |e| e["container"] == mine.as_str()));
    assert!(
        seen.iter().all(|e| e["container"] == mine.as_str() && e["realm_ids"] == serde_json::json!([realm])),
        "another realm's events reached the tenant: {}",
        tenant.dump()
    );
    // Asking for the other container by name or id finds nothing to follow.
    let c = w.hoodyctl().env("HOODY_TOKEN", &token).args(["events", "-c", "other"]).output().unwrap();
    assert_eq!(c.status.code(), Some(3), "{}", String::from_utf8_lossy(&c.stderr));
    // By its id (a deleted container's events are still asked for by id): nothing passes the
    // realm check, not even its past.
    let mut by_id = Subscriber::start(&w, Some(&token), &["-c", &other, "--since", "0"]);
    std::thread::sleep(Duration::from_millis(1500));
    while let Ok(v) = by_id.lines.try_recv() {
        by_id.seen.push(v);
    }
    assert!(by_id.seen.is_empty(), "another realm's container's events: {}", by_id.dump());
    let c = w.hoodyctl().args(["events", "--type", "container.exploded"]).output().unwrap();
    assert_eq!(c.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&c.stderr).contains("container.exploded"));
}

#[test]
fn a_slow_subscriber_gets_a_gap_and_is_dropped_while_others_go_on() {
    let mut w = World::new(Driver::Overlay);
    w.stop_daemon();
    w.env.push(("HOODY_EVENTS_LIVE".into(), "8".into()));
    w.env.push(("HOODY_EVENTS_KEEP".into(), "20".into()));
    w.start_daemon();
    w.ok(&["containers", "create", "--name", "busy", "--image", "busybox", "--start"]);
    // A subscriber that never reads: the kernel's socket buffers fill, then the daemon's side
    // of it falls behind the live channel.
    let mut slow = std::os::unix::net::UnixStream::connect(&w.socket).unwrap();
    slow.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: hoody\r\n\r\n").unwrap();
    let mut reader = Subscriber::start(&w, None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    // Big events: each exec's command line is in its exec.started.
    let big = "x".repeat(100_000);
    for i in 0..30 {
        let c = w.exec("busy", &["true", &big, &i.to_string()]);
        assert_eq!(c.code, 0, "{c:?}");
    }
    let seen = reader.until(30, "every exec's end", |s| s.iter().filter(|e| e["type"] == "exec.exited").count() == 30);
    assert!(!seen.iter().any(|e| e["type"] == "gap"), "a subscriber that reads is never dropped");
    // The slow one, reading at last: its stream ends with a gap line.
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"\r\n0\r\n\r\n") {
                    break;
                }
            }
            Err(e) => panic!(
                "the slow subscriber's stream did not end ({e}); {} bytes, ending {:?}",
                got.len(),
                String::from_utf8_lossy(&got[got.len().saturating_sub(300)..])
            ),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let gap = text
        .lines()
        .rfind(|l| l.starts_with("{\"type\":\"gap\""))
        .unwrap_or_else(|| panic!("no gap line; ends {:?}", &text[text.len().saturating_sub(300)..]));
    let gap: Value = serde_json::from_str(gap).unwrap();
    assert!(gap["from"].as_u64().unwrap() <= gap["to"].as_u64().unwrap(), "{gap}");

    // The window holds the newest 20: resuming from before it begins with a gap saying what
    // is gone, then the oldest still held.
    let c = w.hoodyctl().args(["events", "--since", "1", "-n", "1"]).stdin(Stdio::null()).output().unwrap();
    let out = String::from_utf8_lossy(&c.stdout);
    let mut lines = out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
    let (gap, first) = (lines.next().unwrap(), lines.next().unwrap());
    assert_eq!((gap["type"].as_str(), gap["from"].as_u64()), (Some("gap"), Some(2)), "{gap}");
    assert_eq!(first["seq"].as_u64(), Some(gap["to"].as_u64().unwrap() + 1), "{gap} then {}", first["seq"]);
}
