//! DNS (issue 17), side by side in one run: queries per second and latency through hoodyd's
//! resolver (from a container, to the gateway) against the same dnsmasq asked straight (from the
//! host namespace), with 1 and 1,000 containers; new connections per second through a rule by
//! name against a rule by address; and the per-packet cost with 10,000 learned addresses present
//! against 10.

use hoody_e2e::dnsmasq::Dnsmasq;
use hoody_e2e::stats::{median, percentile};
use hoody_e2e::{Driver, World, probe_binary, run};

const UPSTREAM: &str = "203.0.113.53";
const NAMED: &str = "203.0.113.30";
const BY_CIDR: &str = "203.0.113.31";
const GATEWAY: &str = "169.254.0.1";

/// (queries/s, p50 µs, p99 µs) of a `probe dnsrate` line.
fn parse(out: &str) -> (f64, f64, f64) {
    let w: Vec<&str> = out.split_whitespace().collect();
    let num = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)).and_then(|v| v.parse().ok());
    match (num("rate"), num("p50"), num("p99")) {
        (Some(r), Some(a), Some(b)) => (r, a, b),
        _ => panic!("probe dnsrate: {out}"),
    }
}

fn conn_rate(w: &World, c: &str, addr: &str) -> f64 {
    let (code, out) = w.probe(c, &["rate", addr, "9443", "1000"]);
    assert_eq!(code, 0, "{out}");
    out.strip_prefix("rate ").and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("probe rate: {out}"))
}

pub fn dns_bench(rounds: usize) {
    let mut w = World::with_net_flags(
        Driver::Btrfs,
        &["--subnet", "10.75.0.0/16", "--dns-upstream", UPSTREAM, "--dns-rate", "1000000", "--dns-min-ttl", "600", "--dns-max-ttl", "3600"],
    );
    for a in [NAMED, BY_CIDR] {
        run("ip", &["-n", w.inet(), "addr", "add", &format!("{a}/32"), "dev", "lo"]);
        super::packets::sink(w.inet(), &format!("{a}:9443"));
    }
    // 10,000 names under many.test on benchmark addresses (RFC 2544: only learned, never sent to).
    let mut hosts = format!("{NAMED} api.bench.test\n");
    for i in 0..10_000u32 {
        hosts.push_str(&format!("198.18.{}.{} h{i}.many.test\n", i / 250, i % 250 + 1));
    }
    let _dns = Dnsmasq::start(w.inet(), &w.dir, UPSTREAM, &hosts, 3600, &["--cache-size=0"]);
    let c = w.ok(&["containers", "create", "--name", "client", "--image", "busybox", "--start"]);
    let cid = c["id"].as_str().expect("id").to_owned();
    w.install_probe(&cid);
    let rule = |dest: &[&str]| {
        let mut a =
            vec!["firewall", "egress", "create", "-c", &cid, "--action", "allow", "--protocol", "tcp", "--destination-port", "9443"];
        a.extend_from_slice(dest);
        w.ok(&a);
    };
    rule(&["--destination-fqdn", "api.bench.test"]);
    rule(&["--destination", BY_CIDR]);
    rule(&["--destination-fqdn", "*.many.test"]);
    let probe = probe_binary();
    let host_ns = w.host_ns.clone();
    let host_rate = |name: &str| {
        let out = run("ip", &["netns", "exec", &host_ns, &probe.to_string_lossy(), "dnsrate", UPSTREAM, name, "1000"]);
        parse(out.trim())
    };
    println!("## DNS: queries through hoodyd's resolver against the same dnsmasq asked straight\n");
    println!(
        "Sequential A queries over UDP for 1 s per round, {rounds} rounds; hoodyd's path is from a container to the gateway (policed, a fresh upstream query, the answer's address committed to the firewall before the answer goes back), the straight path from the host namespace to dnsmasq.\n"
    );
    println!("| containers | path | median queries/s | median p50 µs | median p99 µs |\n|---|---|---|---|---|");
    let mut ratios = vec![];
    let mut present = 1;
    for want in [1usize, 1000] {
        if want > present {
            w.stop_daemon();
            w.env.push(("HOODY_TEST_FIREWALL_ONLY".into(), format!("{}:10", want - present)));
            w.start_daemon();
            present = want;
        }
        let (mut through, mut refused, mut straight) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            let (code, out) = w.probe(&cid, &["dnsrate", GATEWAY, "api.bench.test", "1000"]);
            assert_eq!(code, 0, "{out}");
            through.push(parse(&out));
            let (code, out) = w.probe(&cid, &["dnsrate", GATEWAY, "secret.not-allowed.test", "1000"]);
            assert_eq!(code, 0, "{out}");
            refused.push(parse(&out));
            straight.push(host_rate("api.bench.test"));
        }
        let col = |v: &[(f64, f64, f64)], i: usize| v.iter().map(|x| [x.0, x.1, x.2][i]).collect::<Vec<f64>>();
        for (what, v) in [
            ("hoodyd, a name a rule allows (forwarded, learned)", &through),
            ("hoodyd, a name no rule allows (REFUSED, not forwarded)", &refused),
            ("dnsmasq straight", &straight),
        ] {
            println!("| {want} | {what} | {:.0} | {:.0} | {:.0} |", median(&col(v, 0)), median(&col(v, 1)), median(&col(v, 2)));
        }
        let r: Vec<f64> = through.iter().zip(&straight).map(|(a, b)| a.0 / b.0).collect();
        ratios.push(median(&r));
    }
    println!(
        "\nThrough hoodyd a container gets {:.2}× (1 container) and {:.2}× (1,000) the queries per second of dnsmasq asked straight.\n",
        ratios[0], ratios[1]
    );
    // Connections through a name rule against an address rule, and with 10,000 learned present.
    println!("## Firewall: connections per second through a rule by name\n");
    println!("| what | n | median conn/s | p5 conn/s |\n|---|---|---|---|");
    let (code, out) = w.probe(&cid, &["dns", GATEWAY, "api.bench.test", "2000"]);
    assert!(code == 0 && out.contains(NAMED), "{out}");
    let (mut named, mut cidr) = (vec![], vec![]);
    for _ in 0..rounds {
        named.push(conn_rate(&w, &cid, NAMED));
        cidr.push(conn_rate(&w, &cid, BY_CIDR));
    }
    let (code, out) = w.probe(&cid, &["dnsrate", GATEWAY, "many.test", "60000", "10"]);
    assert_eq!(code, 0, "{out}");
    let mut few = vec![];
    for _ in 0..rounds {
        few.push(conn_rate(&w, &cid, NAMED));
    }
    let (code, out) = w.probe(&cid, &["dnsrate", GATEWAY, "many.test", "600000", "10000"]);
    assert_eq!(code, 0, "{out}");
    let learned = run("ip", &["netns", "exec", &w.host_ns, "nft", "list", "table", "inet", "hoody"]).matches("198.18.").count();
    let mut many = vec![];
    for _ in 0..rounds {
        many.push(conn_rate(&w, &cid, NAMED));
    }
    for (what, v) in [
        ("by address (CIDR rule)".to_string(), &cidr),
        ("by name (a learned address)".to_string(), &named),
        ("by name, 10 more learned addresses present".to_string(), &few),
        (format!("by name, {learned} more learned addresses present"), &many),
    ] {
        println!("| {what} | {rounds} | {:.0} | {:.0} |", median(v), percentile(v, 5.0));
    }
    println!(
        "\nA rule by name gives {:.2}× the connections per second of a rule by address; with {learned} learned addresses present, {:.2}× what it gives with 10 (1.00 = no cost from the count). Learning 10,000 names took the resolver {}.",
        median(&named) / median(&cidr),
        median(&many) / median(&few),
        out.trim()
    );
}
