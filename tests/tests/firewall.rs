//! The firewall from inside real containers: a fake internet behind the host's uplink, servers
//! on documentation addresses, and probes that must get exactly what the rules allow.

use std::process::Command;
use std::time::{Duration, Instant};

use hoody_e2e::internet::{Servers, connect_from};
use hoody_e2e::sniffer::Sniffer;
use hoody_e2e::{Driver, HOST_UPLINK, INET_UPLINK, NEIGHBOUR, SERVER, World, eventually, run};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn internet(w: &World) -> Servers {
    Servers::start(
        w.inet(),
        &[&format!("{SERVER}:443"), &format!("{SERVER}:80"), &format!("{NEIGHBOUR}:443"), &format!("{INET_UPLINK}:8443")],
        &[&format!("{SERVER}:5300"), &format!("{NEIGHBOUR}:5300")],
    )
}

/// A running container from the busybox image with the probe installed.
fn probed(w: &World, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["containers", "create", "--name", name, "--image", "busybox", "--start"];
    args.extend_from_slice(extra);
    let c = w.ok(&args);
    w.install_probe(&id(&c));
    c
}

fn closed(w: &World, cid: &str, args: &[&str]) -> String {
    let (code, out) = w.probe(cid, args);
    assert_ne!(code, 0, "{args:?} got through: {out}");
    out
}

fn open(w: &World, cid: &str, args: &[&str]) -> String {
    let (code, out) = w.probe(cid, args);
    assert_eq!(code, 0, "{args:?} was blocked: {out}");
    out
}

fn allow(w: &World, cid: &str, proto: &str, dest: &str, port: Option<&str>) -> String {
    let mut args = vec!["firewall", "egress", "create", "-c", cid, "--action", "allow", "--protocol", proto, "--destination", dest];
    if let Some(p) = port {
        args.extend_from_slice(&["--destination-port", p]);
    }
    id(&w.ok(&args))
}

#[test]
fn deny_all_blocks_everything() {
    let w = World::with_net(Driver::Btrfs);
    let net = internet(&w);
    let host = Servers::start(&w.host_ns, &[&format!("{HOST_UPLINK}:7000"), "0.0.0.0:7001"], &["0.0.0.0:5353"]);
    let a = probed(&w, "alpha", &[]);
    let b = w.ok(&[
        "containers",
        "create",
        "--name",
        "beta",
        "--image",
        "busybox",
        "--start",
        "--",
        "sh",
        "-c",
        "while true; do nc -l -p 8080 </dev/null; echo got >> /tmp/conns; done",
    ]);
    let cid = id(&a);
    assert_eq!(a["egress"], "deny");
    assert!(a["ipv4"].as_str().unwrap().starts_with("10.77."), "{a}");
    // Reject makes TCP and UDP fail fast rather than hang.
    let t = Instant::now();
    assert_eq!(closed(&w, &cid, &["tcp", SERVER, "443", "3000"]), "refused");
    assert!(t.elapsed() < Duration::from_secs(2), "a denied TCP connection fails fast");
    assert_eq!(closed(&w, &cid, &["udp", SERVER, "5300", "1500", "dns"]), "refused");
    closed(&w, &cid, &["tcp", NEIGHBOUR, "443", "1000"]);
    // DNS (UDP 53 anywhere), ICMP, IPv6.
    let c = w.exec(&cid, &["nslookup", "example.org", SERVER]);
    assert_ne!(c.code, 0, "{c:?}");
    let c = w.exec(&cid, &["ping", "-c", "1", "-W", "1", SERVER]);
    assert_ne!(c.code, 0, "ICMP got through: {c:?}");
    let (code, out) = w.probe(&cid, &["tcp6", "2001:db8::10", "443", "1000"]);
    assert_ne!(code, 0, "IPv6: {out}");
    // The host itself: its uplink address, the gateway address, a UDP service.
    closed(&w, &cid, &["tcp", HOST_UPLINK, "7000", "1000"]);
    closed(&w, &cid, &["tcp", "169.254.0.1", "7001", "1000"]);
    closed(&w, &cid, &["udp", "169.254.0.1", "5353", "1000", "dns"]);
    // Another container.
    closed(&w, &cid, &["tcp", b["ipv4"].as_str().unwrap(), "8080", "1000"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.exec(&id(&b), &["sh", "-c", "cat /tmp/conns 2>/dev/null | wc -l"]).stdout.trim(), "0");
    assert!(net.tcp.lock().unwrap().is_empty() && net.udp.lock().unwrap().is_empty(), "the internet saw nothing");
    assert!(host.tcp.lock().unwrap().is_empty() && host.udp.lock().unwrap().is_empty(), "the host saw nothing");
    // The policy counted the attempts.
    let fw = w.ok(&["firewall", "show", "-c", &cid]);
    assert_eq!(fw["policy"], "deny");
    assert!(fw["denied"]["packets"].as_u64().unwrap() >= 5, "{fw}");
}

#[test]
fn one_rule_opens_exactly_that() {
    let w = World::with_net(Driver::Overlay);
    let net = internet(&w);
    let cid = id(&probed(&w, "stripe", &[]));
    let rule = allow(&w, &cid, "tcp", &format!("{SERVER}/32"), Some("443"));
    let out = open(&w, &cid, &["tcp", SERVER, "443", "2000", "hi"]);
    assert!(out.starts_with("connected hello"), "{out}");
    let hits = net.tcp_hits(&format!("{SERVER}:443"));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].peer.ip().to_string(), HOST_UPLINK, "allowed traffic leaves masqueraded through the uplink");
    assert_eq!(closed(&w, &cid, &["tcp", SERVER, "80", "1000"]), "refused");
    assert_eq!(closed(&w, &cid, &["tcp", NEIGHBOUR, "443", "1000"]), "refused");
    assert_eq!(closed(&w, &cid, &["udp", SERVER, "443", "1000", "x"]), "refused");
    closed(&w, &cid, &["udp", SERVER, "5300", "1000", "x"]);
    // Counters count; the denied attempt to port 80 is an event.
    let fw = w.ok(&["firewall", "show", "-c", &cid]);
    let r = &fw["egress"][0];
    assert_eq!(
        (r["id"].as_str(), r["destination"].as_str(), r["destination_port"].as_str()),
        (Some(rule.as_str()), Some("203.0.113.10/32"), Some("443"))
    );
    assert!(r["packets"].as_u64().unwrap() >= 1 && r["bytes"].as_u64().unwrap() > 0, "{fw}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = w.ok(&["firewall", "events", "-c", &cid]);
        let found =
            ev.as_array().unwrap().iter().any(|e| e["destination"] == SERVER && e["destination_port"] == 80 && e["protocol"] == "tcp");
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "no event for the denied attempt: {ev}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deleting the rule closes it; a second rule, then reset, closes everything.
    w.ok(&["firewall", "egress", "delete", "-c", &cid, &rule]);
    assert_eq!(closed(&w, &cid, &["tcp", SERVER, "443", "1000"]), "refused");
    allow(&w, &cid, "tcp", &format!("{SERVER}/32"), Some("443"));
    allow(&w, &cid, "udp", "203.0.113.0/24", Some("5290-5310"));
    open(&w, &cid, &["tcp", SERVER, "443", "2000"]);
    assert!(open(&w, &cid, &["udp", NEIGHBOUR, "5300", "2000", "q"]).starts_with("reply pong"));
    let reset = w.ok(&["firewall", "reset", "-c", &cid]);
    assert!(reset["egress"].as_array().unwrap().is_empty());
    closed(&w, &cid, &["tcp", SERVER, "443", "1000"]);
    closed(&w, &cid, &["udp", NEIGHBOUR, "5300", "1000", "q"]);
    assert_eq!(net.tcp_hits(&format!("{SERVER}:80")).len(), 0);
}

#[test]
fn deny_action_drop_makes_denied_traffic_time_out() {
    let w = World::with_net_flags(Driver::Overlay, &["--deny-action", "drop"]);
    let _net = internet(&w);
    let cid = id(&probed(&w, "quiet", &[]));
    let t = Instant::now();
    assert_eq!(closed(&w, &cid, &["tcp", SERVER, "443", "1000"]), "timeout", "dropped, not reset");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(closed(&w, &cid, &["udp", SERVER, "5300", "1000", "x"]), "timeout");
}

#[test]
fn deny_rules_and_allow_policy() {
    let w = World::with_net(Driver::Btrfs);
    let _net = internet(&w);
    let cid = id(&probed(&w, "open", &["--egress", "allow"]));
    open(&w, &cid, &["tcp", NEIGHBOUR, "443", "2000"]);
    // Rules match in order, then the policy: a deny rule before it closes what it names.
    let deny = w.ok(&["firewall", "egress", "create", "-c", &cid, "--action", "deny", "--protocol", "tcp", "--destination", NEIGHBOUR]);
    assert_eq!(closed(&w, &cid, &["tcp", NEIGHBOUR, "443", "1000"]), "refused");
    open(&w, &cid, &["tcp", SERVER, "443", "2000"]);
    w.ok(&["firewall", "egress", "delete", "-c", &cid, &id(&deny)]);
    open(&w, &cid, &["tcp", NEIGHBOUR, "443", "2000"]);
    // Reset means deny-all again, whatever the policy was.
    w.ok(&["firewall", "reset", "-c", &cid]);
    assert_eq!(w.ok(&["containers", "get", &cid])["egress"], "deny");
    closed(&w, &cid, &["tcp", NEIGHBOUR, "443", "1000"]);
}

#[test]
fn spoofed_and_readdressed_traffic_gets_nothing_through() {
    let w = World::with_net(Driver::Btrfs);
    let net = internet(&w);
    let a = probed(&w, "spoofer", &[]);
    let b = w.running("victim");
    let cid = id(&a);
    allow(&w, &cid, "udp", &format!("{SERVER}/32"), Some("5300"));
    assert!(open(&w, &cid, &["udp", SERVER, "5300", "2000", "legit"]).starts_with("reply pong"));
    let subnet_host = a["ipv4"].as_str().unwrap().rsplit_once('.').unwrap().0.to_owned() + ".250";
    for forged in [subnet_host.as_str(), b["ipv4"].as_str().unwrap(), "198.51.100.77", HOST_UPLINK] {
        let (code, out) = w.probe(&cid, &["spoof", forged, SERVER, "5300", &format!("spoofed-{forged}")]);
        assert_eq!(code, 0, "the raw packet could not even be sent: {out}");
    }
    // It cannot take another address either.
    let c = w.exec(&cid, &["ip", "addr", "add", &format!("{subnet_host}/32"), "dev", "eth0"]);
    assert_ne!(c.code, 0, "{c:?}");
    let c = w.exec(&cid, &["ip", "link", "set", "eth0", "down"]);
    assert_ne!(c.code, 0, "{c:?}");
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<String> = net.udp_hits(&format!("{SERVER}:5300")).into_iter().map(|h| h.data).collect();
    assert_eq!(got, vec!["legit".to_string()], "only the real source got through");
    // Three layers stop forged sources: the source filter (tc) on the host end, strict
    // reverse-path filtering there, then the firewall's guard. Switch the first two off (in
    // this test's own namespace) to see the third drop and count them on its own.
    let ifname = w.ok(&["firewall", "show", "-c", &cid])["interface"].as_str().unwrap().to_owned();
    run("ip", &["netns", "exec", &w.host_ns, "tc", "qdisc", "del", "dev", &ifname, "ingress"]);
    for key in [format!("net.ipv4.conf.{ifname}.rp_filter=0"), "net.ipv4.conf.all.rp_filter=0".into()] {
        run("ip", &["netns", "exec", &w.host_ns, "sysctl", "-q", "-w", &key]);
    }
    for forged in [subnet_host.as_str(), b["ipv4"].as_str().unwrap(), "198.51.100.77"] {
        w.probe(&cid, &["spoof", forged, SERVER, "5300", &format!("spoofed-{forged}")]);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(net.udp_hits(&format!("{SERVER}:5300")).len(), 1, "still only the real source");
    let fw = w.ok(&["firewall", "show", "-c", &cid]);
    assert!(fw["spoofed"]["packets"].as_u64().unwrap() >= 3, "the guard dropped and counted them: {fw}");
}

#[test]
fn ingress_allow_list_and_established_replies() {
    let w = World::with_net(Driver::Btrfs);
    let _net = internet(&w);
    let listener = "while true; do echo hi | nc -l -p 8080; done";
    let b = w.ok(&["containers", "create", "--name", "server", "--image", "busybox", "--start", "--", "sh", "-c", listener]);
    let a = probed(&w, "client", &[]);
    let (bid, bip) = (id(&b), b["ipv4"].as_str().unwrap().to_owned());
    let dest = format!("{bip}:8080");
    std::thread::sleep(Duration::from_millis(300));
    let t = Duration::from_millis(1500);
    assert!(connect_from(w.inet(), None, &dest, t).is_err(), "inbound is dropped by default");
    let rule = w.ok(&[
        "firewall",
        "ingress",
        "create",
        "-c",
        &bid,
        "--protocol",
        "tcp",
        "--source",
        &format!("{INET_UPLINK}/32"),
        "--destination-port",
        "8080",
    ]);
    // The reply from a deny-all container passes: it belongs to an allowed connection.
    assert_eq!(connect_from(w.inet(), None, &dest, t).expect("listed source"), "hi\n");
    assert!(connect_from(w.inet(), Some(SERVER), &dest, t).is_err(), "an unlisted source stays out");
    // Container to container needs the sender's egress and the receiver's ingress.
    let aid = id(&a);
    closed(&w, &aid, &["tcp", &bip, "8080", "1000"]);
    allow(&w, &aid, "tcp", &format!("{bip}/32"), Some("8080"));
    closed(&w, &aid, &["tcp", &bip, "8080", "1000"]);
    w.ok(&["firewall", "ingress", "create", "-c", &bid, "--protocol", "tcp", "--source", &format!("{}/32", a["ipv4"].as_str().unwrap())]);
    assert!(open(&w, &aid, &["tcp", &bip, "8080", "2000"]).starts_with("connected hi"));
    let fw = w.ok(&["firewall", "show", "-c", &bid]);
    assert_eq!(fw["ingress"].as_array().unwrap().len(), 2);
    assert!(fw["ingress"][0]["packets"].as_u64().unwrap() >= 1, "{fw}");
    w.ok(&["firewall", "ingress", "delete", "-c", &bid, &id(&rule)]);
    assert!(connect_from(w.inet(), None, &dest, t).is_err());
}

#[test]
fn unknown_interfaces_and_other_tables() {
    let w = World::with_net(Driver::Overlay);
    let host = Servers::start(&w.host_ns, &[&format!("{HOST_UPLINK}:7000")], &[]);
    let cid = id(&probed(&w, "guarded", &[]));
    // An hv* interface hoodyd does not know: dropped, both ways.
    let rogue = format!("hoody-e2e-{}-r", w.tag);
    run("ip", &["netns", "add", &rogue]);
    let h = w.host_ns.as_str();
    for args in [
        vec!["-n", h, "link", "add", "hvdeadbeef", "type", "veth", "peer", "name", "eth9", "netns", &rogue],
        vec!["-n", h, "link", "set", "hvdeadbeef", "up"],
        vec!["-n", h, "addr", "add", "169.254.9.1/32", "dev", "hvdeadbeef"],
        vec!["-n", h, "route", "add", "10.99.0.2/32", "dev", "hvdeadbeef"],
        vec!["-n", &rogue, "link", "set", "eth9", "up"],
        vec!["-n", &rogue, "addr", "add", "10.99.0.2/32", "dev", "eth9"],
        vec!["-n", &rogue, "route", "add", "169.254.9.1/32", "dev", "eth9"],
        vec!["-n", &rogue, "route", "add", "default", "via", "169.254.9.1", "dev", "eth9"],
    ] {
        run("ip", &args);
    }
    let r = connect_from(&rogue, None, &format!("{HOST_UPLINK}:7000"), Duration::from_millis(1000));
    run("ip", &["netns", "del", &rogue]);
    assert!(r.is_err(), "an interface without a map entry got through");
    assert!(host.tcp.lock().unwrap().is_empty());
    // Other tables come and go without touching ours.
    let before = run("ip", &["netns", "exec", h, "nft", "list", "table", "inet", "hoody"]);
    run(
        "ip",
        &[
            "netns",
            "exec",
            h,
            "nft",
            "add table inet other; add chain inet other c { type filter hook forward priority 0; }; add rule inet other c accept",
        ],
    );
    run("ip", &["netns", "exec", h, "nft", "flush table inet other; delete table inet other"]);
    let after = run("ip", &["netns", "exec", h, "nft", "list", "table", "inet", "hoody"]);
    let strip = |s: &str| s.lines().filter(|l| !l.contains("counter")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&before), strip(&after));
    closed(&w, &cid, &["tcp", HOST_UPLINK, "7000", "1000"]);
}

/// Another process changes our table — Debian's nftables.service runs `flush ruleset` at boot
/// and on reload; an administrator deletes the table or slips an accept rule in — and hoodyd
/// puts the policy back by itself, exactly as the state store says, allow rules included.
#[test]
fn foreign_changes_to_the_table_are_undone() {
    let w = World::with_net(Driver::Overlay);
    let net = internet(&w);
    let locked = id(&probed(&w, "locked", &[]));
    let opened = id(&probed(&w, "opened", &[]));
    allow(&w, &opened, "tcp", SERVER, Some("443"));
    let ip_of = |cid: &str| w.ok(&["containers", "get", cid])["ipv4"].as_str().unwrap().parse::<std::net::Ipv4Addr>().unwrap();
    let locked_ip = ip_of(&locked);
    let h = w.host_ns.as_str();
    let nft = |script: &str| run("ip", &["netns", "exec", h, "nft", script]);
    // Counter values change with traffic; everything else (elements included) must come back.
    let strip = |s: &str| {
        let mut out = vec![];
        let mut skip = 0;
        for t in s.split_whitespace() {
            if skip > 0 {
                skip -= 1;
            } else if t == "packets" || t == "bytes" {
                skip = 1;
            } else {
                out.push(t);
            }
        }
        out.join(" ")
    };
    let table = || std::process::Command::new("ip").args(["netns", "exec", h, "nft", "list", "table", "inet", "hoody"]).output().unwrap();
    let policy = strip(&String::from_utf8_lossy(&table().stdout));
    let restored = |what: &str| {
        eventually(what, || {
            let out = table();
            out.status.success() && strip(&String::from_utf8_lossy(&out.stdout)) == policy
        })
    };
    for (what, script) in [
        ("the table after `nft flush ruleset`", "flush ruleset"),
        ("the table after it was deleted", "delete table inet hoody"),
        ("the table after a stray accept rule", "insert rule inet hoody forward accept"),
        ("the table after the egress chain was flushed", "flush chain inet hoody egress"),
        (
            "the table after a container's address element was deleted",
            &format!("delete element inet hoody ctr {{ \"hv{}\" . {locked_ip} }}", &locked[..8]),
        ),
        ("the table after the rules' exact elements were flushed", "flush set inet hoody eap"),
    ] {
        nft(script);
        restored(what);
        closed(&w, &locked, &["tcp", SERVER, "443", "1000"]);
        closed(&w, &locked, &["udp", SERVER, "5300", "1000"]);
        open(&w, &opened, &["tcp", SERVER, "443", "2000"]);
        closed(&w, &opened, &["tcp", SERVER, "80", "1000"]);
    }
    assert!(
        net.tcp_hits(&format!("{SERVER}:80")).is_empty() && net.udp_hits(&format!("{SERVER}:5300")).is_empty(),
        "a denied connection got through"
    );
    let log = w.daemon_log();
    assert!(log.contains("another process changed table inet hoody"), "the repair is logged:\n{}", hoody_e2e::tail(&log, 20));
}

#[test]
fn bad_rules_are_refused_and_change_nothing() {
    let w = World::with_net(Driver::Btrfs);
    let cid = id(&w.running("strict"));
    let h = w.http();
    let before = w.ok(&["firewall", "show", "-c", &cid]);
    let path = format!("/containers/{cid}/firewall/egress");
    let cases = [
        (r#"{"action":"allow","protocol":"tcp","destination":"api.stripe.com","destination_port":"443"}"#, "resolve"),
        (r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.300/32","destination_port":"443"}"#, "destination"),
        (r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.0/40"}"#, "destination"),
        (r#"{"action":"allow","protocol":"tcp","destination":"2001:db8::1","destination_port":"443"}"#, "IPv6"),
        (r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10","destination_port":"0"}"#, "destination_port"),
        (r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10","destination_port":"65536"}"#, "destination_port"),
        (r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10","destination_port":"9000-8000"}"#, "reversed"),
        (r#"{"action":"allow","protocol":"icmp","destination":"203.0.113.10","destination_port":"80"}"#, "destination_port"),
        (r#"{"action":"allow","protocol":"any","destination":"203.0.113.10","destination_port":"80"}"#, "destination_port"),
        (r#"{"action":"maybe","protocol":"tcp","destination":"203.0.113.10"}"#, "action"),
        (r#"{"action":"allow","protocol":"gre","destination":"203.0.113.10"}"#, "protocol"),
        (r#"{"action":"allow","destination":"203.0.113.10","colour":"red"}"#, "colour"),
    ];
    for (body, needle) in cases {
        let r = h.post(&path, body);
        assert_eq!(r.status, 422, "{body}: {r:?}");
        assert!(r.message().contains(needle), "{body}: {}", r.message());
    }
    let long = format!(r#"{{"action":"allow","destination":"203.0.113.10","description":"{}"}}"#, "d".repeat(256));
    assert!(h.post(&path, &long).message().contains("description"));
    let ctl = r#"{"action":"allow","destination":"203.0.113.10","description":"bell\u0007"}"#;
    assert!(h.post(&path, ctl).message().contains("description"));
    let r = h.post(&format!("/containers/{cid}/firewall/ingress"), r#"{"action":"deny","source":"198.51.100.0/24"}"#);
    assert_eq!(r.status, 422);
    assert_eq!(h.request("DELETE", &format!("{path}/nosuchrule"), b"").status, 404);
    let after = w.ok(&["firewall", "show", "-c", &cid]);
    assert_eq!(before["egress"], after["egress"]);
    // The 1,001st rule is refused.
    for i in 0..1000 {
        let r = h.post(
            &path,
            &format!(r#"{{"action":"allow","protocol":"tcp","destination":"203.0.113.10","destination_port":"{}"}}"#, 1000 + i),
        );
        assert_eq!(r.status, 201, "rule {i}: {r:?}");
    }
    let r = h.post(&path, r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10","destination_port":"9"}"#);
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.message().contains("1000"), "{}", r.message());
}

/// The heart of it: while rules are added and deleted and hoodyd is restarted and killed, a
/// prober inside a deny-all container never gets a single connection through.
#[test]
fn prober_never_gets_through_while_rules_churn_and_hoodyd_restarts() {
    let mut w = World::with_net(Driver::Btrfs);
    let net = internet(&w);
    let prober = id(&probed(&w, "prober", &[]));
    let other = id(&probed(&w, "other", &[]));
    w.sh(&prober, "(while true; do /probe tcp 203.0.113.10 443 300 leak; done > /tmp/probe.log 2>&1 &)");
    for round in 0..6 {
        // Rules for the prober that open something else, and for another container that open
        // exactly the prober's target.
        let r1 = allow(&w, &prober, "tcp", &format!("{NEIGHBOUR}/32"), Some("443"));
        let r2 = allow(&w, &other, "tcp", &format!("{SERVER}/32"), Some("443"));
        w.ok(&["firewall", "egress", "delete", "-c", &prober, &r1]);
        if round % 2 == 0 {
            w.stop_daemon();
        } else {
            w.kill_daemon();
        }
        std::thread::sleep(Duration::from_millis(150));
        w.start_daemon();
        w.ok(&["firewall", "egress", "delete", "-c", &other, &r2]);
        w.ok(&["firewall", "reset", "-c", &prober]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = w.sh(&prober, "cat /tmp/probe.log");
    let attempts = log.lines().count();
    assert!(attempts >= 20, "the prober kept probing throughout ({attempts} attempts)");
    assert!(!log.contains("connected"), "a connection got through:\n{log}");
    let leaks: Vec<_> = net.tcp_hits(&format!("{SERVER}:443")).into_iter().filter(|h| h.data == "leak").collect();
    assert!(leaks.is_empty(), "the server saw the prober: {leaks:?}");
    assert!(w.daemon_log().contains("firewall in place"), "restarts reconcile the table");
}

/// A deleted container's address goes to the next one at once, while the kernel may still be
/// tearing down the old interface (network namespaces are cleaned up asynchronously): the new
/// container starts, gets the address, and reaches exactly what its rule allows.
#[test]
fn an_address_is_reused_at_once() {
    let w = World::with_net(Driver::Btrfs);
    let http = w.http();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..25 {
        let r = http.post("/containers?start=true", &format!(r#"{{"name":"again{i}","image":"busybox"}}"#));
        assert_eq!(r.status, 201, "round {i}: {r:?}");
        let c = r.json()["data"].clone();
        seen.insert(c["ipv4"].as_str().expect("ipv4").to_owned());
        let r = http.request("DELETE", &format!("/containers/{}?force=true", id(&c)), b"");
        assert_eq!(r.status, 200, "round {i}: {r:?}");
    }
    assert_eq!(seen.len(), 1, "the lowest free address is reused: {seen:?}");
    let _net = internet(&w);
    let c = id(&probed(&w, "last", &[]));
    allow(&w, &c, "tcp", SERVER, Some("443"));
    open(&w, &c, &["tcp", SERVER, "443", "2000"]);
    closed(&w, &c, &["tcp", SERVER, "80", "1000"]);
}

/// With the table gone and hoodyd unable to put it back (stopped with SIGSTOP), nothing from a
/// container is forwarded: the failsafe routing rules refuse packets without the table's mark.
/// Once hoodyd runs again it rebuilds the table and what was allowed works again.
#[test]
fn without_the_table_container_traffic_fails_closed() {
    let w = World::with_net(Driver::Btrfs);
    let net = internet(&w);
    let c = id(&probed(&w, "opened", &[]));
    allow(&w, &c, "tcp", SERVER, Some("443"));
    allow(&w, &c, "udp", SERVER, Some("5300"));
    open(&w, &c, &["tcp", SERVER, "443", "2000"]);
    let h = w.host_ns.as_str();
    let rules = run("ip", &["-n", h, "rule", "list"]);
    assert!(rules.contains("fwmark 0x686f6f64 lookup main") && rules.contains("prohibit"), "the failsafe rules are installed:\n{rules}");
    let before = net.tcp_hits(&format!("{SERVER}:443")).len();
    // The probe runs in the container's network namespace directly: exec needs the daemon.
    let init = w.ok(&["containers", "get", &c])["pid"].as_i64().expect("pid");
    let probe = hoody_e2e::probe_binary();
    let direct = |args: &[&str]| {
        let out = std::process::Command::new("nsenter").arg(format!("--net=/proc/{init}/ns/net")).arg(&probe).args(args).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let pid = nix::unistd::Pid::from_raw(w.daemon_pid().expect("daemon") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let flushed = std::process::Command::new("ip").args(["netns", "exec", h, "nft", "flush ruleset"]).status().unwrap();
    let tcp = direct(&["tcp", SERVER, "443", "1000"]);
    let udp = direct(&["udp", SERVER, "5300", "1000"]);
    let other = direct(&["tcp", NEIGHBOUR, "443", "1000"]);
    let table_gone =
        !std::process::Command::new("ip").args(["netns", "exec", h, "nft", "list", "table", "inet", "hoody"]).status().unwrap().success();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(flushed.success() && table_gone, "the table was gone while hoodyd was stopped");
    assert_ne!(tcp.0, 0, "TCP got out without the table: {tcp:?}");
    assert_ne!(udp.0, 0, "UDP got out without the table: {udp:?}");
    assert_ne!(other.0, 0, "a denied destination got out without the table: {other:?}");
    assert_eq!(net.tcp_hits(&format!("{SERVER}:443")).len(), before, "the server saw the container");
    assert!(net.udp_hits(&format!("{SERVER}:5300")).is_empty() && net.tcp_hits(&format!("{NEIGHBOUR}:443")).is_empty());
    eventually("the table to come back", || {
        std::process::Command::new("ip").args(["netns", "exec", h, "nft", "list", "table", "inet", "hoody"]).status().unwrap().success()
    });
    eventually("the allowed connection to work again", || w.probe(&c, &["tcp", SERVER, "443", "1000"]).0 == 0);
    closed(&w, &c, &["tcp", SERVER, "80", "1000"]);
}

/// Two packets that used to get past an allow rule (issue 16, item 3): a TCP SYN with a bad
/// checksum (conntrack calls it invalid while `nf_conntrack_checksum` is 1, the default) to an
/// allowed address and port, which left the uplink without masquerade; and an ICMP error the
/// container forges about its own allowed connection (conntrack calls it related), with a
/// payload of its choosing. A sniffer in the fake internet sees nothing of either. With ICMP
/// allowed by a rule, the ICMP error is the container's to send.
#[test]
fn invalid_packets_and_forged_icmp_errors_never_leave() {
    let w = World::with_net(Driver::Overlay);
    let _net = internet(&w);
    let c = probed(&w, "crafty", &[]);
    let (cid, ip) = (id(&c), c["ipv4"].as_str().unwrap().to_owned());
    allow(&w, &cid, "tcp", &format!("{SERVER}/32"), Some("443"));
    assert!(open(&w, &cid, &["tcp", SERVER, "443", "2000", "hi"]).starts_with("connected"), "the rule works");
    let checksum = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_checksum").unwrap_or_default();
    assert_eq!(checksum.trim(), "1", "bad checksums are invalid to conntrack only while nf_conntrack_checksum is 1");

    let bad = Sniffer::start(w.inet(), "BADSUM-TAG");
    for _ in 0..3 {
        assert_eq!(w.probe(&cid, &["badsum", &ip, SERVER, "443", "BADSUM-TAG"]).0, 0, "the probe sent it");
    }
    let forged = Sniffer::start(w.inet(), "ICMPERR-TAG");
    for _ in 0..3 {
        let (code, out) = w.probe(&cid, &["icmperr", &ip, SERVER, "443", "ICMPERR-TAG"]);
        assert_eq!(code, 0, "the probe's connection is allowed, then it sent its ICMP error: {out}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(bad.seen().is_empty(), "a packet conntrack calls invalid got out (sources {:?})", bad.sources());
    assert!(forged.seen().is_empty(), "a forged ICMP error got out (sources {:?})", forged.sources());
    let fw = w.ok(&["firewall", "show", "-c", &cid]);
    assert!(fw["denied"]["packets"].as_u64().unwrap() >= 3, "the ICMP errors were denied by the policy: {fw}");

    // Where ICMP is allowed, the container's ICMP errors are its own business: they go out
    // (masqueraded like everything else).
    allow(&w, &cid, "icmp", &format!("{SERVER}/32"), None);
    let allowed = Sniffer::start(w.inet(), "ICMPOK-TAG");
    let (code, out) = w.probe(&cid, &["icmperr", &ip, SERVER, "443", "ICMPOK-TAG"]);
    assert_eq!(code, 0, "{out}");
    eventually("the allowed ICMP error in the fake internet", || !allowed.seen().is_empty());
    assert!(allowed.sources().iter().all(|s| s.to_string() == HOST_UPLINK), "masqueraded: {:?}", allowed.sources());
}

/// Path-MTU discovery keeps working through the firewall (issue 16, item 3): the fake internet
/// routes to a server behind a hop of MTU 1280 (its own end of the link keeps 1500, so the
/// server advertises a full-size MSS); the container's 1500-byte segments are answered by the
/// router with ICMP "fragmentation needed", which must reach the container as related traffic
/// for the upload to finish.
#[test]
fn path_mtu_discovery_works_through_a_smaller_mtu_hop() {
    use std::io::Read;
    let w = World::with_net(Driver::Overlay);
    let far = hoody_e2e::netns::NetNs::new(&format!("hoody-e2e-{}-f", w.tag));
    let (inet, f) = (w.inet().to_owned(), far.name.clone());
    for args in [
        vec!["-n", &inet, "link", "add", "pmtu0", "mtu", "1280", "type", "veth", "peer", "name", "pmtu1", "netns", &f],
        vec!["-n", &f, "link", "set", "pmtu1", "mtu", "1500"],
        vec!["-n", &inet, "addr", "add", "203.0.113.49/32", "dev", "pmtu0"],
        vec!["-n", &f, "addr", "add", "203.0.113.50/32", "dev", "pmtu1"],
        vec!["-n", &inet, "link", "set", "pmtu0", "up"],
        vec!["-n", &f, "link", "set", "pmtu1", "up"],
        vec!["-n", &inet, "route", "add", "203.0.113.50/32", "dev", "pmtu0"],
        vec!["-n", &f, "route", "add", "default", "via", "203.0.113.49", "dev", "pmtu1", "onlink"],
    ] {
        run("ip", &args);
    }
    let fwd = Command::new("ip").args(["netns", "exec", &inet, "sysctl", "-qw", "net.ipv4.ip_forward=1"]).status().unwrap();
    assert!(fwd.success(), "forwarding in the fake internet's own namespace");
    // The far server counts what it receives until the sender closes.
    let (tx, rx) = std::sync::mpsc::channel();
    let listener_ns = f.clone();
    let server = std::thread::spawn(move || {
        hoody_e2e::internet::enter(&listener_ns);
        let l = std::net::TcpListener::bind("203.0.113.50:9000").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        tx.send(()).unwrap();
        // Never waits forever: no connection within 20 s counts as nothing received.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return 0,
            }
        };
        s.set_nonblocking(false).expect("blocking");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut n = 0usize;
        let mut buf = [0u8; 65536];
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    rx.recv().unwrap();
    let c = probed(&w, "pmtu", &[]);
    let cid = id(&c);
    allow(&w, &cid, "tcp", "203.0.113.50/32", Some("9000"));
    let r = w.exec(&cid, &["sh", "-c", "yes 0123456789 | head -c 300000 | timeout 15 nc 203.0.113.50 9000; echo rc=$?"]);
    let got = server.join().unwrap();
    assert_eq!(got, 300_000, "the upload through the 1280-byte hop did not finish: {r:?}");
    // It was path-MTU discovery that did it: the router sent "fragmentation needed".
    // nsenter, not `ip netns exec` (which also remounts /sys, and can fail at that under load):
    // /proc/net follows the reader's network namespace.
    let out = Command::new("nsenter").arg(format!("--net=/run/netns/{inet}")).args(["cat", "/proc/net/snmp"]).output().unwrap();
    assert!(out.status.success(), "reading the router's counters: {out:?}");
    let snmp = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut icmp = snmp.lines().filter(|l| l.starts_with("IcmpMsg:"));
    let (names, values) = (icmp.next().unwrap_or_default(), icmp.next().unwrap_or_default());
    let sent =
        names.split_whitespace().zip(values.split_whitespace()).find(|(n, _)| *n == "OutType3").map(|(_, v)| v.parse::<u64>().unwrap());
    assert!(sent.unwrap_or(0) >= 1, "the router sent no ICMP destination unreachable: {names} / {values}\n{snmp}");
}

/// Fail-closed without the table and without sysctls (issue 16, item 4): the failsafe routing
/// rule covers only sources inside the subnet, so a source forged *outside* it depended on the
/// host end's `rp_filter` — which a host-wide 0 or 2 loosens. The tc filter on the host end
/// (only the container's /32 and ARP get in) holds with the table flushed, the daemon stopped
/// and `rp_filter` at 0 and at 2. The control at the end removes the filter and sees the same
/// packet leak, so the test can tell.
#[test]
fn forged_sources_outside_the_subnet_never_leave_without_the_table_or_rp_filter() {
    let mut w = World::with_net(Driver::Overlay);
    let _net = internet(&w);
    let c = probed(&w, "forger", &[]);
    let cid = id(&c);
    let init = c["pid"].as_i64().expect("pid");
    let veth = format!("hv{}", &cid[..8]);
    let h = w.host_ns.clone();
    let filters = run("ip", &["netns", "exec", &h, "tc", "filter", "show", "dev", &veth, "ingress"]);
    assert!(filters.contains("hoody_source direct-action"), "the host end carries the source filter:\n{filters}");
    // The probe runs in the container's network namespace directly: exec needs the daemon.
    let probe = hoody_e2e::probe_binary();
    let spoof = |tag: &str| {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{init}/ns/net"))
            .arg(&probe)
            .args(["spoof", "203.0.113.99", SERVER, "5300", tag])
            .output()
            .unwrap();
        assert!(out.status.success(), "the probe sent it: {out:?}");
    };
    w.stop_daemon();
    let flushed = Command::new("ip").args(["netns", "exec", &h, "nft", "flush ruleset"]).status().unwrap();
    assert!(flushed.success());
    let sysctl = |k: &str, v: &str| {
        let ok = Command::new("ip").args(["netns", "exec", &h, "sysctl", "-qw", &format!("{k}={v}")]).status().unwrap();
        assert!(ok.success(), "{k}={v} in the test's host namespace");
    };
    for rp in ["0", "2"] {
        sysctl("net.ipv4.conf.all.rp_filter", rp);
        sysctl(&format!("net.ipv4.conf.{veth}.rp_filter"), rp);
        let tag = format!("FORGED-RP{rp}");
        let sniffer = Sniffer::start(w.inet(), &tag);
        for _ in 0..3 {
            spoof(&tag);
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(sniffer.seen().is_empty(), "rp_filter={rp}, no table: a forged source got out: {:?}", sniffer.sources());
    }
    // Control: without the filter, the same packet does get out (rp_filter is still 2).
    run("ip", &["netns", "exec", &h, "tc", "qdisc", "del", "dev", &veth, "ingress"]);
    let sniffer = Sniffer::start(w.inet(), "FORGED-CONTROL");
    spoof("FORGED-CONTROL");
    eventually("the unfiltered forged packet in the fake internet", || !sniffer.seen().is_empty());
    assert_eq!(sniffer.sources(), ["203.0.113.99".parse::<std::net::Ipv4Addr>().unwrap()]);
    drop(sniffer);
    // The next start puts the filter back on the running container's host end.
    w.start_daemon();
    let filters = run("ip", &["netns", "exec", &h, "tc", "filter", "show", "dev", &veth, "ingress"]);
    assert_eq!(filters.matches("hoody_source direct-action").count(), 1, "one filter, back in place:\n{filters}");
    let sniffer = Sniffer::start(w.inet(), "FORGED-AGAIN");
    spoof("FORGED-AGAIN");
    std::thread::sleep(Duration::from_millis(500));
    assert!(sniffer.seen().is_empty(), "a forged source got out after the restart: {:?}", sniffer.sources());
    w.stop_daemon();
    w.start_daemon();
    let filters = run("ip", &["netns", "exec", &h, "tc", "filter", "show", "dev", &veth, "ingress"]);
    assert_eq!(filters.matches("hoody_source direct-action").count(), 1, "a second start replaces it, adds none:\n{filters}");
}

/// 10,000 firewalled containers (9,999 of them firewall-only, through the test hook, in a /18):
/// the running one's rules still decide, a change of them touches only its own elements, and the
/// table's chains are as many as with one container.
#[test]
fn ten_thousand_firewalled_containers_and_the_rules_of_one_still_apply() {
    let mut w = World::with_net_flags(Driver::Overlay, &["--subnet", "10.96.0.0/18"]);
    w.stop_daemon();
    w.env.push(("HOODY_TEST_FIREWALL_ONLY".into(), "9999:3".into()));
    w.start_daemon();
    let net = internet(&w);
    let cid = id(&probed(&w, "one", &[]));
    closed(&w, &cid, &["tcp", SERVER, "443", "1000"]);
    let rule = allow(&w, &cid, "tcp", SERVER, Some("443"));
    open(&w, &cid, &["tcp", SERVER, "443", "2000"]);
    closed(&w, &cid, &["tcp", SERVER, "80", "1000"]);
    closed(&w, &cid, &["udp", SERVER, "5300", "1000"]);
    let list = |what: &[&str]| {
        let mut args = vec!["netns", "exec", w.host_ns.as_str(), "nft", "-j", "list"];
        args.extend_from_slice(what);
        serde_json::from_str::<Value>(&run("ip", &args)).expect("nft -j")
    };
    let ctr = list(&["set", "inet", "hoody", "ctr"]);
    let elems = ctr["nftables"].as_array().unwrap().iter().find_map(|o| o["set"]["elem"].as_array()).map(Vec::len);
    assert_eq!(elems, Some(10_000), "every container has its address element");
    let chains = list(&["chains"])["nftables"].as_array().unwrap().iter().filter(|o| o["chain"]["table"] == "hoody").count();
    assert_eq!(chains, 5 + 2 * 1024 + 5, "the chains do not depend on the containers");
    w.ok(&["firewall", "egress", "delete", "-c", &cid, &rule]);
    closed(&w, &cid, &["tcp", SERVER, "443", "1000"]);
    let log = w.daemon_log();
    for l in log.lines().filter(|l| l.contains("elements synced") || l.contains("request")) {
        eprintln!("{l}");
    }
    let applied: Vec<&str> = log.lines().filter(|l| l.contains("nftables transaction applied")).collect();
    let last = applied.last().expect("the delete's transaction");
    assert!(last.contains("ops=1 "), "a rule delete is one element message: {last}");
    assert!(
        net.tcp_hits(&format!("{SERVER}:80")).is_empty() && net.udp_hits(&format!("{SERVER}:5300")).is_empty(),
        "a denied connection got through"
    );
}

/// `--firewall-shards` sizes the table (a small or emulated host); a daemon restarted with
/// another count rebuilds the table in one transaction, and every container's rules hold in
/// both, with nothing open in between (the prober's target is never reached).
#[test]
fn a_changed_shard_count_rebuilds_the_table_and_the_rules_hold() {
    let mut w = World::with_net_flags(Driver::Overlay, &["--firewall-shards", "16"]);
    let net = internet(&w);
    let h = w.host_ns.clone();
    let shard_sets = || {
        let out = run("ip", &["netns", "exec", &h, "nft", "list", "sets", "inet"]);
        out.lines().filter(|l| l.trim_start().starts_with("set sh")).count()
    };
    assert_eq!(shard_sets(), 16);
    let a = id(&probed(&w, "alpha", &[]));
    let b = id(&probed(&w, "beta", &[]));
    allow(&w, &a, "tcp", "203.0.113.0/24", Some("443"));
    allow(&w, &b, "tcp", &format!("{SERVER}/32"), Some("80"));
    let check = |w: &World| {
        open(w, &a, &["tcp", SERVER, "443", "2000"]);
        closed(w, &a, &["tcp", SERVER, "80", "1000"]);
        open(w, &b, &["tcp", SERVER, "80", "2000"]);
        closed(w, &b, &["tcp", SERVER, "443", "1000"]);
    };
    check(&w);
    w.stop_daemon();
    w.extra_flags.retain(|f| f != "--firewall-shards" && f != "16");
    w.start_daemon();
    assert!(w.daemon_log().contains("firewall differs from the state store"), "the table was rebuilt");
    assert_eq!(shard_sets(), 1024);
    check(&w);
    let fw = w.ok(&["firewall", "show", "-c", &a]);
    assert!(fw["egress"][0]["packets"].as_u64().unwrap() >= 1, "{fw}");
    assert_eq!(net.tcp_hits(&format!("{SERVER}:443")).len(), 2, "only alpha's allowed connections");
}
