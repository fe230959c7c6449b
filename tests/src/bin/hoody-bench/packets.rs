//! Per-packet cost of the firewall as a container sees it (issue 8): new TCP connections per
//! second from a container through an allow rule to a server in the fake internet, with 10 and
//! then 10,000 containers present (9,990 of them firewall-only, through the test hook, with 10
//! rules each). Each connection's first packet walks the fixed chains: hash lookups, the shard
//! map and the shard's interval set, so the count should show no change.
//! The host namespace's own rate to the same server (no forward path, no container chain) is
//! measured in the same rounds as a reference.

use hoody_e2e::stats::{median, percentile};
use hoody_e2e::{Driver, SERVER, World, probe_binary};

fn parse_rate(out: &str) -> f64 {
    out.strip_prefix("rate ").and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("probe rate: {out}"))
}

/// A server in `ns` that accepts and drops connections as fast as it can (a blocking accept on
/// a dedicated thread, a deep backlog), so the client's rate is the path's, not the server's.
pub fn sink(ns: &str, addr: &str) {
    let (ns, addr) = (ns.to_owned(), addr.parse::<std::net::SocketAddr>().expect("address"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        hoody_e2e::internet::enter(&ns);
        use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket};
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("sink socket");
        let std::net::SocketAddr::V4(v4) = addr else { panic!("IPv4 only") };
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)).expect("bind the sink");
        listen(&fd, Backlog::new(4096).expect("backlog")).expect("listen");
        let l = std::net::TcpListener::from(fd);
        tx.send(()).expect("ready");
        for s in l.incoming() {
            drop(s);
        }
    });
    rx.recv().expect("sink listening");
}

pub fn packet_bench(rounds: usize) {
    let mut w = World::with_net_flags(Driver::Btrfs, &["--subnet", "10.76.0.0/16"]);
    sink(w.inet(), &format!("{SERVER}:9443"));
    let http = w.http();
    let c = w.ok(&["containers", "create", "--name", "client", "--image", "busybox", "--start"]);
    let cid = c["id"].as_str().expect("id").to_owned();
    w.install_probe(&cid);
    w.ok(&[
        "firewall",
        "egress",
        "create",
        "-c",
        &cid,
        "--action",
        "allow",
        "--protocol",
        "tcp",
        "--destination",
        SERVER,
        "--destination-port",
        "9443",
    ]);
    let probe = probe_binary();
    let mut present = 1;
    println!("## Firewall per-packet cost: new TCP connections per second through an allow rule\n");
    println!("| containers present | from | n | median conn/s | p5 conn/s |\n|---|---|---|---|---|");
    let mut medians = vec![];
    for want in [10usize, 10_000] {
        if want > 1000 {
            // The container keeps running across the restart (its shim holds it).
            w.stop_daemon();
            w.env.push(("HOODY_TEST_FIREWALL_ONLY".into(), format!("{}:10", want - present)));
            w.start_daemon();
            present = want;
        }
        while present < want {
            let r = http.post("/containers", &format!(r#"{{"name":"x{present}","image":"busybox"}}"#));
            assert_eq!(r.status, 201, "{r:?}");
            present += 1;
        }
        let (mut inside, mut host) = (vec![], vec![]);
        for _ in 0..rounds {
            let (code, out) = w.probe(&cid, &["rate", SERVER, "9443", "1000"]);
            assert_eq!(code, 0, "{out}");
            inside.push(parse_rate(&out));
            let out = hoody_e2e::run("ip", &["netns", "exec", &w.host_ns, &probe.to_string_lossy(), "rate", SERVER, "9443", "1000"]);
            host.push(parse_rate(out.trim()));
        }
        println!(
            "| {want} | a container (forward path, its chain) | {rounds} | {:.0} | {:.0} |",
            median(&inside),
            percentile(&inside, 5.0)
        );
        println!("| {want} | the host namespace (reference) | {rounds} | {:.0} | {:.0} |", median(&host), percentile(&host, 5.0));
        medians.push(median(&inside));
    }
    println!(
        "\nWith 10,000 containers present a container makes {:.2}× the connections per second it makes with 10 (1.00 = no cost from the count).",
        medians[1] / medians[0]
    );
}
