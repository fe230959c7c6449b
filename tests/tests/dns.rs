//! DNS for containers and egress rules by name, end to end: a real DNS server (dnsmasq) in the
//! fake internet with records the test controls, hoodyd's resolver on the gateway, and probes in
//! real containers that must reach exactly what a name rule opened.

use std::time::{Duration, Instant};

use hoody_e2e::dnsmasq::Dnsmasq;
use hoody_e2e::internet::Servers;
use hoody_e2e::{Driver, World, run};
use serde_json::Value;

const GATEWAY: &str = "169.254.0.1";
const UPSTREAM: &str = "203.0.113.53";
const API_OLD: &str = "203.0.113.20";
const API_NEW: &str = "203.0.113.23";
const OTHER: &str = "203.0.113.21";
const EDGE: &str = "203.0.113.22";

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn hosts(api: &str) -> String {
    // The last three point where no answer may open anything: the host itself, loopback, the
    // gateway.
    format!(
        "{api} api.example.test\n{OTHER} other.example.test\n{EDGE} edge.cdnhost.test\n\
         198.51.100.1 host.example.test\n127.0.0.1 loop.example.test\n169.254.0.1 gw.example.test\n"
    )
}

/// A world whose resolver forwards to dnsmasq; learned addresses stay open for the answer's
/// TTL (2 s) clamped to at least 2 s, plus 1 s of grace.
fn world() -> (World, Dnsmasq, Servers) {
    world_with_min_ttl("2")
}

/// The same with a longer least lifetime of learned addresses.
fn world_with_min_ttl(min: &str) -> (World, Dnsmasq, Servers) {
    world_with(&["--dns-min-ttl", min])
}

fn world_with(extra: &[&str]) -> (World, Dnsmasq, Servers) {
    let mut flags = vec!["--dns-upstream", UPSTREAM, "--dns-max-ttl", "600", "--dns-grace", "1"];
    if !extra.contains(&"--dns-min-ttl") {
        flags.extend_from_slice(&["--dns-min-ttl", "2"]);
    }
    flags.extend_from_slice(extra);
    let w = World::with_net_flags(Driver::Overlay, &flags);
    for a in [API_OLD, API_NEW, OTHER, EDGE] {
        run("ip", &["-n", w.inet(), "addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    let servers: Vec<String> = [API_OLD, API_NEW, OTHER, EDGE].iter().flat_map(|a| [format!("{a}:443"), format!("{a}:80")]).collect();
    let refs: Vec<&str> = servers.iter().map(String::as_str).collect();
    let net = Servers::start(w.inet(), &refs, &[&format!("{API_OLD}:443")]);
    let dns = Dnsmasq::start(w.inet(), &w.dir, UPSTREAM, &hosts(API_OLD), 2, &["--cname=cdn.example.test,edge.cdnhost.test"]);
    (w, dns, net)
}

/// A TCP echo server in namespace `ns` on `addr`: connections stay open as long as the client's.
fn echo(ns: &str, addr: &str) {
    let (ns, addr) = (ns.to_owned(), addr.parse::<std::net::SocketAddr>().expect("address"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        hoody_e2e::internet::enter(&ns);
        let l = std::net::TcpListener::bind(addr).expect("echo bind");
        tx.send(()).expect("ready");
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s.try_clone().expect("clone"), &mut s);
            });
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("echo server listening");
}

fn probed(w: &World, name: &str) -> String {
    let c = id(&w.ok(&["containers", "create", "--name", name, "--image", "busybox", "--start"]));
    w.install_probe(&c);
    c
}

/// (rcode, addresses) of a query from the container, or the probe's verdict when no answer came.
fn resolve(w: &World, c: &str, server: &str, name: &str, proto: &str) -> Result<(u8, Vec<String>), String> {
    let (code, out) = w.probe(c, &["dns", server, name, "1500", proto]);
    if code != 0 {
        return Err(out);
    }
    let mut lines = out.lines();
    let rcode = lines.next().and_then(|l| l.strip_prefix("rcode ")).and_then(|r| r.parse().ok()).expect("an rcode line");
    Ok((rcode, lines.filter_map(|l| l.strip_prefix("a ")).map(|l| l.split(' ').next().unwrap_or("").to_owned()).collect()))
}

fn connects(w: &World, c: &str, addr: &str, port: &str) -> bool {
    w.probe(c, &["tcp", addr, port, "1000"]).0 == 0
}

fn allow_name(w: &World, c: &str, name: &str, port: &str) -> String {
    id(&w.ok(&[
        "firewall",
        "egress",
        "create",
        "-c",
        c,
        "--action",
        "allow",
        "--protocol",
        "tcp",
        "--destination-fqdn",
        name,
        "--destination-port",
        port,
    ]))
}

#[test]
fn a_name_rule_opens_what_the_container_resolved_and_nothing_else() {
    let (w, dns, net) = world();
    let a = probed(&w, "agent");
    let b = probed(&w, "neighbour");
    // The container's resolv.conf names the gateway, read-only.
    assert!(w.sh(&a, "cat /etc/resolv.conf").contains("nameserver 169.254.0.1"));
    assert_ne!(w.exec(&a, &["sh", "-c", "echo x > /etc/resolv.conf"]).code, 0, "resolv.conf is read-only");
    let rule = allow_name(&w, &a, "api.example.test", "443");
    // Before resolving, nothing is open.
    assert!(!connects(&w, &a, API_OLD, "443"));
    assert_eq!(resolve(&w, &a, GATEWAY, "api.example.test", "udp"), Ok((0, vec![API_OLD.to_owned()])));
    assert!(connects(&w, &a, API_OLD, "443"), "the learned address opens for the rule's port");
    // The connection is recorded with the name that opened it.
    hoody_e2e::eventually("an allowed event by name", || {
        let ev = w.ok(&["firewall", "events", "-c", &a, "--kind", "allowed"]);
        ev.as_array().unwrap().iter().any(|e| {
            e["name"] == "api.example.test" && e["destination"] == API_OLD && e["destination_port"] == 443 && e["rule_id"] == rule.as_str()
        })
    });
    assert!(!connects(&w, &a, API_OLD, "80"), "another port stays closed");
    assert_ne!(w.probe(&a, &["udp", API_OLD, "443", "1000", "x"]).0, 0, "another protocol stays closed");
    assert!(!connects(&w, &a, OTHER, "443"), "another address stays closed");
    // The neighbour learned nothing: closed, and its own filtered DNS refuses the name.
    assert!(!connects(&w, &b, API_OLD, "443"), "addresses learned by one container never open another's");
    assert_eq!(resolve(&w, &b, GATEWAY, "api.example.test", "udp"), Ok((5, vec![])));
    // A name no rule allows is refused and never reaches the upstream.
    let asked_before = dns.queried();
    assert_eq!(resolve(&w, &a, GATEWAY, "c2VjcmV0.other.example.test", "udp"), Ok((5, vec![])));
    assert!(!dns.log().contains("c2VjcmV0"), "a refused name never went upstream:\n{}", dns.log());
    assert_eq!(dns.queried().len(), asked_before.len());
    let ev = w.ok(&["firewall", "events", "-c", &a]);
    assert!(
        ev.as_array().unwrap().iter().any(|e| e["kind"] == "dns" && e["name"] == "c2vjcmv0.other.example.test" && e["type"] == "A"),
        "{ev}"
    );
    // Direct DNS to any other address is refused by the firewall, whatever the rules.
    let direct = resolve(&w, &a, UPSTREAM, "api.example.test", "udp");
    assert!(direct.is_err(), "{direct:?}");
    assert!(!dns.log().contains("from 10."), "the container's own query never arrived:\n{}", dns.log());
    // DNS over TCP to the gateway works.
    assert_eq!(resolve(&w, &a, GATEWAY, "api.example.test", "tcp"), Ok((0, vec![API_OLD.to_owned()])));
    // What went upstream is hoodyd's own query, from the host's uplink.
    assert!(dns.log().contains("query[A] api.example.test from 198.51.100.1"), "{}", dns.log());
    // A CNAME chain is followed: the target's address opens for the rule of the name asked.
    allow_name(&w, &a, "cdn.example.test", "443");
    assert_eq!(resolve(&w, &a, GATEWAY, "cdn.example.test", "udp").map(|r| r.1), Ok(vec![EDGE.to_owned()]));
    assert!(connects(&w, &a, EDGE, "443"));
    // The rule shows its name; deleting it closes what it opened at once.
    let fw = w.ok(&["firewall", "show", "-c", &a]);
    assert_eq!((fw["policy"].as_str(), fw["dns"].as_str()), (Some("deny"), Some("filtered")));
    assert_eq!(fw["egress"][0]["destination_fqdn"], "api.example.test");
    assert!(fw["egress"][0]["packets"].as_u64().unwrap() >= 1, "the learned elements count for the rule: {fw}");
    w.ok(&["firewall", "egress", "delete", "-c", &a, &rule]);
    assert!(!connects(&w, &a, API_OLD, "443"), "a deleted rule's addresses close with it");
    assert!(net.tcp_hits(&format!("{OTHER}:443")).is_empty() && net.tcp_hits(&format!("{API_OLD}:80")).is_empty());
}

#[test]
fn a_rotated_record_opens_the_new_address_and_the_old_one_expires() {
    let (w, dns, _net) = world();
    echo(w.inet(), &format!("{API_OLD}:7000"));
    let a = probed(&w, "rotating");
    allow_name(&w, &a, "api.example.test", "443");
    allow_name(&w, &a, "api.example.test", "7000");
    assert_eq!(resolve(&w, &a, GATEWAY, "api.example.test", "udp").map(|r| r.1), Ok(vec![API_OLD.to_owned()]));
    assert!(connects(&w, &a, API_OLD, "443"));
    // A connection through the old address, held open across its expiry.
    w.sh(&a, &format!("(/probe hold {API_OLD} 7000 9 > /tmp/hold.log 2>&1 &)"));
    dns.set_hosts(&hosts(API_NEW));
    assert_eq!(resolve(&w, &a, GATEWAY, "api.example.test", "udp").map(|r| r.1), Ok(vec![API_NEW.to_owned()]));
    assert!(connects(&w, &a, API_NEW, "443"), "the new address opens with the new answer");
    // The old one closes once its TTL (2 s) and grace (1 s) ran out, by the kernel's timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    while connects(&w, &a, API_OLD, "443") {
        assert!(Instant::now() < deadline, "the old address never closed");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!connects(&w, &a, API_OLD, "7000"), "a new connection to the old address is refused");
    let deadline = Instant::now() + Duration::from_secs(15);
    let held = loop {
        let log = w.sh(&a, "cat /tmp/hold.log");
        if !log.trim().is_empty() {
            break log;
        }
        assert!(Instant::now() < deadline, "the held connection never finished");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(held.trim(), "held", "an established connection survives the expiry of its address");
}

#[test]
fn learned_addresses_outlive_a_restart_and_a_rebuild_of_the_table() {
    let (mut w, _dns, _net) = world_with_min_ttl("120");
    let a = probed(&w, "kept");
    allow_name(&w, &a, "api.example.test", "443");
    assert_eq!(resolve(&w, &a, GATEWAY, "api.example.test", "udp").map(|r| r.1), Ok(vec![API_OLD.to_owned()]));
    let h = w.host_ns.clone();
    let table = || run("ip", &["netns", "exec", &h, "nft", "list", "table", "inet", "hoody"]);
    let t = table();
    let line = t.lines().find(|l| l.contains(API_OLD)).unwrap_or_else(|| panic!("no learned element:\n{t}"));
    assert!(line.contains("timeout 2m1s") && line.contains("expires"), "a kernel timeout of TTL clamped + grace: {line}");
    // A restart finds the table in place, learned elements and all.
    w.stop_daemon();
    w.start_daemon();
    assert!(connects(&w, &a, API_OLD, "443"), "open without resolving again after a restart");
    hoody_e2e::eventually("the name of a connection after a restart", || {
        let ev = w.ok(&["firewall", "events", "-c", &a, "--kind", "allowed"]);
        ev.as_array().unwrap().iter().any(|e| e["name"] == "api.example.test")
    });
    // A table another program changed is rebuilt in one transaction with the learned elements.
    run("ip", &["netns", "exec", &h, "nft", "insert rule inet hoody forward accept comment intruder"]);
    hoody_e2e::eventually("the table rebuilt", || !table().contains("intruder"));
    assert!(connects(&w, &a, API_OLD, "443"), "open after the table guard's rebuild");
    // A restart with another shard count rebuilds the table and moves them.
    w.stop_daemon();
    w.extra_flags.extend(["--firewall-shards".to_string(), "8".into()]);
    w.start_daemon();
    assert!(w.daemon_log().contains("firewall differs from the state store"));
    assert!(connects(&w, &a, API_OLD, "443"), "open after a rebuild with 8 shards");
    // Deleting the container removes what it learned: the next holder of its address gets nothing.
    w.ok(&["containers", "delete", "--force", &a]);
    let t = table();
    assert!(!t.contains(API_OLD), "the deleted container's learned elements went with it:\n{t}");
}

#[test]
fn dns_modes_and_a_dead_daemon_fail_closed() {
    let (mut w, dns, _net) = world();
    let a = probed(&w, "modes");
    allow_name(&w, &a, "api.example.test", "443");
    // open: any name resolves, but resolving opens nothing a rule does not name.
    let fw = w.ok(&["firewall", "set", "-c", &a, "--dns", "open"]);
    assert_eq!((fw["dns"].as_str(), fw["policy"].as_str()), (Some("open"), Some("deny")));
    assert_eq!(resolve(&w, &a, GATEWAY, "other.example.test", "udp").map(|r| r.1), Ok(vec![OTHER.to_owned()]));
    assert!(!connects(&w, &a, OTHER, "443"));
    // Policy allow: everything leaves but DNS to anywhere but the gateway (53 and 853).
    w.ok(&["firewall", "set", "-c", &a, "--policy", "allow"]);
    assert!(connects(&w, &a, OTHER, "443"), "policy allow opens everything else");
    let asked = dns.queried().len();
    for proto in ["udp", "tcp"] {
        let direct = resolve(&w, &a, UPSTREAM, "other.example.test", proto);
        assert!(direct.is_err(), "direct DNS over {proto} under policy allow: {direct:?}");
    }
    let dot = Servers::start(w.inet(), &[&format!("{UPSTREAM}:853")], &[]);
    assert!(!connects(&w, &a, UPSTREAM, "853"), "DNS over TLS is refused too");
    assert!(dot.tcp_hits(&format!("{UPSTREAM}:853")).is_empty());
    assert_eq!(dns.queried().len(), asked, "no direct query reached the upstream");
    w.ok(&["firewall", "set", "-c", &a, "--policy", "deny"]);
    // off: nothing resolves (the gateway's port 53 is denied like any packet).
    w.ok(&["firewall", "set", "-c", &a, "--dns", "off"]);
    let asked = dns.queried().len();
    assert!(resolve(&w, &a, GATEWAY, "api.example.test", "udp").is_err());
    assert_eq!(dns.queried().len(), asked);
    assert!(!connects(&w, &a, API_OLD, "443"));
    // Whatever a name under an allowed wildcard says, the host, loopback and the gateway never
    // open (the answer still comes back).
    w.ok(&["firewall", "set", "-c", &a, "--dns", "filtered"]);
    allow_name(&w, &a, "*.example.test", "7001");
    for (name, addr) in [("host.example.test", "198.51.100.1"), ("loop.example.test", "127.0.0.1"), ("gw.example.test", GATEWAY)] {
        assert_eq!(resolve(&w, &a, GATEWAY, name, "udp").map(|r| r.1), Ok(vec![addr.to_owned()]));
    }
    let h = w.host_ns.clone();
    let t = run("ip", &["netns", "exec", &h, "nft", "list", "table", "inet", "hoody"]);
    for addr in ["198.51.100.1", "127.0.0.1", "169.254.0.1 . "] {
        assert!(!t.lines().any(|l| l.contains(" . ") && l.contains(addr) && l.contains("timeout")), "{addr} was learned:\n{t}");
    }
    w.ok(&["firewall", "set", "-c", &a, "--dns", "off"]);
    // Bad input changes nothing.
    for (args, field) in [
        (vec!["firewall", "set", "-c", &a, "--dns", "sometimes"], "dns"),
        (vec!["firewall", "egress", "create", "-c", &a, "--action", "allow", "--destination-fqdn", "api.*.test"], "destination_fqdn"),
        (vec!["firewall", "egress", "create", "-c", &a, "--action", "deny", "--destination-fqdn", "api.example.test"], "destination_fqdn"),
    ] {
        let r = w.ctl(&args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(field), "{args:?}: {}", r.stderr);
    }
    // Reset: deny and filtered.
    let fw = w.ok(&["firewall", "reset", "-c", &a]);
    assert_eq!((fw["dns"].as_str(), fw["policy"].as_str()), (Some("filtered"), Some("deny")));
    allow_name(&w, &a, "api.example.test", "443");
    // A dead daemon: names stop resolving, nothing new opens; after the restart, they resolve.
    w.kill_daemon();
    assert!(resolve(&w, &a, GATEWAY, "api.example.test", "udp").is_err(), "no answer while hoodyd is down");
    assert!(!connects(&w, &a, API_OLD, "443"));
    w.start_daemon();
    assert_eq!(resolve(&w, &a, GATEWAY, "api.example.test", "udp").map(|r| r.1), Ok(vec![API_OLD.to_owned()]));
    assert!(connects(&w, &a, API_OLD, "443"));
}

#[test]
fn a_query_flood_is_refused_past_the_rate_and_never_forwarded() {
    let (w, dns, _net) = world_with(&["--dns-rate", "2"]);
    let a = probed(&w, "flood");
    allow_name(&w, &a, "api.example.test", "443");
    let before = dns.queried().len();
    let t = Instant::now();
    let out = w.sh(&a, "i=0; while [ $i -lt 30 ]; do /probe dns 169.254.0.1 api.example.test 1000; i=$((i+1)); done");
    let took = t.elapsed().as_secs_f64();
    let (ok, refused) = (out.matches("rcode 0").count(), out.matches("rcode 5").count());
    assert_eq!(ok + refused, 30, "every query answered: {out}");
    // A burst of twice the rate (4), then the rate (2 a second) over however long the loop took.
    let most = 4 + (2.0 * took).ceil() as usize + 1;
    assert!(ok >= 4 && ok <= most && refused > 0, "answered {ok} (at most {most} in {took:.1} s), refused {refused}");
    assert_eq!(dns.queried().len() - before, ok, "only the answered ones went upstream");
}
