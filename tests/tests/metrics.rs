//! `GET /metrics` is worth scraping: Prometheus's own checker accepts it, and its numbers count
//! what happened — a container's CPU, its traffic, what its firewall allowed and denied, the
//! API's requests with their latencies, operation durations, event subscribers. And the
//! daemon's JSON log has plain values, never Rust's debug text.

use std::io::Write;
use std::process::{Command, Stdio};

use hoody_e2e::internet::Servers;
use hoody_e2e::{Driver, SERVER, World};

/// Prometheus's checker, taken out of Debian's package by `packaging/deps.sh test`.
fn promtool() -> std::path::PathBuf {
    let p: std::path::PathBuf =
        std::env::var_os("HOODY_PROMTOOL").map(Into::into).unwrap_or_else(|| "/var/lib/hoody-tools/promtool".into());
    assert!(std::path::Path::new(&p).exists(), "{} is missing: run `sh packaging/deps.sh test` (tests/run.sh does)", p.display());
    p
}

/// The value of the sample whose line begins with `prefix` (name and labels as written).
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit_once(' ')).map(|(_, v)| v.parse().unwrap())
}

#[test]
fn metrics_pass_promtool_and_count_what_happened() {
    let w = World::with_net_flags(Driver::Overlay, &["--log-format", "json"]);
    let _net = Servers::start(w.inet(), &[&format!("{SERVER}:443")], &[]);
    let id = w.running("app")["id"].as_str().unwrap().to_owned();
    // A finished operation: a restore in the background (first: it restarts the
    // container, whose veth then counts from zero).
    w.ok(&["snapshots", "create", "app", "--alias", "s1"]);
    let op = w.ok(&["snapshots", "restore", "app", "--name", "s1", "--async"]);
    w.ok(&["operations", "wait", op["id"].as_str().unwrap()]);
    let mut events = w.hoodyctl().args(["events"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    w.ok(&[
        "firewall",
        "egress",
        "create",
        "-c",
        "app",
        "--action",
        "allow",
        "--protocol",
        "tcp",
        "--destination",
        &format!("{SERVER}/32"),
        "--destination-port",
        "443",
    ]);
    let sent = w.sh(&id, &format!("echo hello | nc -w 3 {SERVER} 443; echo sent"));
    assert!(sent.contains("sent"), "{sent}");
    let denied = w.exec(&id, &["nc", "-w", "2", SERVER, "80"]);
    assert_ne!(denied.code, 0, "{denied:?}");
    for _ in 0..3 {
        w.ok(&["containers", "get", "app"]);
    }
    assert_eq!(w.ctl(&["containers", "get", "nope"]).code, 3);
    std::thread::sleep(std::time::Duration::from_millis(300));

    let r = w.http().get("/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    let text = r.body;
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");

    let of = |name: &str| format!("{name}{{container=\"{id}\",name=\"app\"");
    let sent_bytes = value(&text, &of("hoody_container_network_transmit_bytes_total")).expect("transmit bytes");
    assert!(sent_bytes > 0.0, "{text}");
    assert!(value(&text, &of("hoody_container_network_receive_packets_total")).unwrap() > 0.0);
    assert!(value(&text, &of("hoody_container_cpu_seconds_total")).expect("cpu") > 0.0, "{text}");
    let fw = |direction: &str, verdict: &str| {
        value(&text, &format!("{},direction=\"{direction}\",verdict=\"{verdict}\"}}", of("hoody_container_firewall_packets_total")))
            .unwrap()
    };
    assert!(fw("egress", "allowed") > 0.0 && fw("egress", "denied") > 0.0, "{text}");
    let gets = value(&text, "hoody_api_requests_total{route=\"/api/v1/containers/{id}\",method=\"GET\",status=\"200\"}").unwrap();
    assert!(gets >= 3.0, "{gets}");
    assert!(value(&text, "hoody_api_requests_total{route=\"/api/v1/containers/{id}\",method=\"GET\",status=\"404\"}").unwrap() >= 1.0);
    let inf = value(
        &text,
        "hoody_api_request_duration_seconds_bucket{route=\"/api/v1/containers/{id}\",method=\"GET\",status=\"200\",le=\"+Inf\"}",
    );
    assert_eq!(inf, Some(gets), "the histogram counts what the counter counts");
    assert_eq!(value(&text, "hoody_operation_duration_seconds_count{kind=\"snapshot_restore\",status=\"succeeded\"}"), Some(1.0), "{text}");
    assert!(value(&text, "hoody_event_subscribers ").unwrap() >= 1.0);
    assert!(value(&text, "hoody_api_streams ").unwrap() >= 1.0);
    let _ = events.kill();
    let _ = events.wait();

    // The JSON log: every line an object, its fields plain JSON values.
    let log = w.daemon_log();
    let mut lines = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        lines += 1;
        for (k, f) in v["fields"].as_object().into_iter().flatten() {
            let s = f.as_str().unwrap_or_default();
            let debug_text = s.starts_with("Some(") || s == "None" || s.contains(" { ") || s.contains("(\"");
            assert!(!debug_text, "field {k} is Rust debug text: {line}");
        }
    }
    assert!(lines > 20, "{log}");
}
