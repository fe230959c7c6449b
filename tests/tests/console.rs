//! The console (issue 14, first part): a container's stdout and stderr are a pipe to its shim,
//! which keeps the log on the state file system bounded (`--log-max-size`, one rotation), out of
//! the tenant's reach, and working across daemon restarts.

use std::time::{Duration, Instant};

use hoody_e2e::{Driver, World};

const CAP: u64 = 1 << 20;

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn log_sizes(w: &World, c: &str) -> (u64, u64) {
    let d = w.state_dir.join("containers").join(c);
    let size = |n: &str| std::fs::metadata(d.join(n)).map(|m| m.len()).unwrap_or(0);
    (size("console.log"), size("console.log.1"))
}

#[test]
fn a_500mb_flood_leaves_the_log_at_its_cap_and_the_tail_answers_at_once() {
    let w = World::with_flags(Driver::Overlay, &["--log-max-size", "1MiB"]);
    let script = "yes 'flooding the console' | head -n 23809524; echo END-OF-FLOOD; exec sleep 1000";
    let c = id(&w.ok(&["containers", "create", "--name", "flood", "--image", "busybox", "--start", "--", "sh", "-c", script]));
    let t = Instant::now();
    loop {
        let r = w.ctl(&["logs", "--tail", "1", &c]);
        if r.stdout.contains("END-OF-FLOOD") {
            break;
        }
        let (cur, old) = log_sizes(&w, &c);
        assert!(cur <= CAP && old <= CAP, "during the flood: console.log {cur}, console.log.1 {old}, cap {CAP}");
        assert!(t.elapsed() < Duration::from_secs(120), "the flood did not get through in 2 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cur, old) = log_sizes(&w, &c);
    assert!(cur <= CAP && old <= CAP && old > 0, "after the flood: console.log {cur}, console.log.1 {old}, cap {CAP}");
    let t = Instant::now();
    let tail = w.ctl(&["logs", "--tail", "5", &c]);
    assert!(t.elapsed() < Duration::from_secs(2), "logs --tail 5 took {:?}", t.elapsed());
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{:?}", tail.stdout);
    assert_eq!(lines[4], "END-OF-FLOOD");
    assert!(lines[..4].iter().all(|l| l.ends_with("flooding the console")), "{lines:?}");
    let usage = w.ok(&["containers", "get", &c])["usage"]["log_bytes"].as_u64().unwrap();
    assert_eq!(usage, cur + old, "usage.log_bytes counts both parts");
    // The whole log (no tail) is the rotated part then the current one, in order.
    let all = w.ctl(&["logs", &c]).stdout;
    assert_eq!(all.len() as u64, cur + old);
    assert!(all.ends_with("END-OF-FLOOD\n"));
}

#[test]
fn no_process_in_the_container_holds_a_host_file() {
    let w = World::new(Driver::Btrfs);
    let c = id(&w.running("fds"));
    for fd in 0..3 {
        let link = w.sh(&c, &format!("readlink /proc/1/fd/{fd}"));
        assert!(link.trim().starts_with("pipe:"), "init's fd {fd} is {link:?}");
    }
    w.install_probe(&c);
    for fd in 0..3 {
        let (code, out) = w.probe(&c, &["getfd", "1", &fd.to_string()]);
        assert_eq!((code, out.as_str()), (0, "fifo"), "pidfd_getfd of init's fd {fd}");
    }
}

/// Numbers of the `n=…` lines in `text`.
fn numbers(text: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.strip_prefix("n=")).filter_map(|n| n.parse().ok()).collect()
}

#[test]
fn a_killed_daemon_loses_no_output_and_logs_follow_works_after_the_restart() {
    let mut w = World::with_flags(Driver::Overlay, &["--log-max-size", "1MiB"]);
    let script = "i=0; while :; do echo n=$i; i=$((i+1)); done";
    let c = id(&w.ok(&["containers", "create", "--name", "counter", "--image", "busybox", "--start", "--", "sh", "-c", script]));
    hoody_e2e::eventually("the counter writes", || log_sizes(&w, &c).0 > 0);
    w.kill_daemon();
    std::thread::sleep(Duration::from_secs(2));
    let (cur, old) = log_sizes(&w, &c);
    assert!(cur + old > 0 && cur <= CAP && old <= CAP, "the shim kept the log while no daemon ran: {cur} {old}");
    w.start_daemon();
    assert_eq!(w.ok(&["containers", "get", &c])["status"], "running", "the container kept running");
    // logs -f streams what the shim writes now.
    let mut follow = w.hoodyctl().args(["logs", "-f", &c]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = follow.kill();
    let out = follow.wait_with_output().unwrap();
    let followed = numbers(&String::from_utf8_lossy(&out.stdout));
    assert!(followed.len() > 1000, "logs -f gave {} lines after the restart", followed.len());
    // Stopped: the two parts hold one unbroken run of numbers, ending with the last written.
    w.ok(&["containers", "stop", "--timeout", "0", &c]);
    let all = numbers(&w.ctl(&["logs", &c]).stdout);
    assert!(all.len() > 1000);
    for pair in all.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "output lost between n={} and n={}", pair[0], pair[1]);
    }
    assert!(all.last() >= followed.last(), "the log ends with the latest output");
}
