//! What the kernel and the disk hold for a world's daemon, against what its API says: the
//! check every crash test runs after a restart. Objects by kind: container storage and state
//! directories, cgroups (and any frozen level), shims, veths, each container's firewall elements
//! (address, counters, policy, every rule's regions), the table's fixed chain count, failsafe
//! `ip rule`s, snapshots and images in the pool, and leftovers that must never survive a start
//! (staging entries, `.restore`, diff snapshots, stray mounts).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{World, run};

fn dirs(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn names(p: &Path) -> Vec<String> {
    std::fs::read_dir(p).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

/// Frozen cgroups at any level under `top`, as paths relative to the world's cgroup.
fn frozen(w: &World, top: &Path, out: &mut BTreeSet<String>) {
    if std::fs::read_to_string(top.join("cgroup.freeze")).is_ok_and(|v| v.trim() == "1") {
        out.insert(format!("frozen {}", top.strip_prefix(&w.cgroup).unwrap_or(top).display()));
    }
    for d in dirs(top) {
        frozen(w, &top.join(d), out);
    }
}

/// Every kernel and storage object that carries a container id, by kind.
pub fn objects(w: &World) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pool = w.storage_dir.join("containers");
    for d in dirs(&pool) {
        out.insert(format!("storage {d}"));
        for s in names(&pool.join(&d).join("snapshots")) {
            out.insert(format!("snapshot {d} {s}"));
        }
        for n in names(&pool.join(&d)) {
            if !["rootfs", "snapshots", "upper", "work"].contains(&n.as_str()) {
                out.insert(format!("leftover {d} {n}"));
            }
        }
    }
    for n in names(&w.storage_dir.join("images")) {
        out.insert(if n.starts_with('.') { format!("leftover images {n}") } else { format!("image {n}") });
    }
    for d in dirs(&w.state_dir.join("containers")) {
        out.insert(format!("state {d}"));
    }
    for d in dirs(&w.cgroup) {
        if d != "shims" {
            out.insert(format!("cgroup {d}"));
        }
    }
    frozen(w, &w.cgroup, &mut out);
    // One console shim per running container, none left behind. (Exec shims live there too, as
    // long as their exec and, when no daemon attached to them, 10 s after it: not counted.)
    let shims = std::fs::read_to_string(w.cgroup.join("shims/cgroup.procs")).unwrap_or_default();
    let console_shims = shims
        .lines()
        .filter(|p| std::fs::read(format!("/proc/{}/cmdline", p.trim())).is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"__shim")))
        .count();
    out.insert(format!("shims {console_shims}"));
    // Mounts under the world's directory: only its own file systems.
    let world = w.dir.display().to_string();
    let own = [w.mnt.display().to_string(), w.state_dir.display().to_string()];
    for l in std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
        if let Some(m) = l.split(' ').nth(4)
            && m.starts_with(&world)
            && !own.iter().any(|o| o == m)
        {
            out.insert(format!("mount {m}"));
        }
    }
    let links = run("ip", &["-n", &w.host_ns, "-o", "link", "show"]);
    for l in links.lines() {
        if let Some(name) = l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n)).filter(|n| n.starts_with("hv")) {
            out.insert(format!("veth {name}"));
        }
    }
    firewall_objects(w, &mut out);
    let rules = run("ip", &["-n", &w.host_ns, "rule", "show"]);
    out.insert(format!("failsafe rules {}", rules.lines().filter(|l| l.contains("prohibit") || l.contains("fwmark")).count()));
    out
}

/// A value of an element as text (the first field of a concatenation where `first`).
fn elem_val(v: &serde_json::Value) -> &serde_json::Value {
    v.get("elem").and_then(|e| e.get("val")).unwrap_or(v)
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

/// The firewall's per-container elements (`nft -j list table inet hoody`): which address each
/// host end may send from, the counters and open policy by address, and every rule id in a
/// region set by the address of its owner; plus the number of chains, which must not depend on
/// the containers.
fn firewall_objects(w: &World, out: &mut BTreeSet<String>) {
    let json = run("ip", &["netns", "exec", &w.host_ns, "nft", "-j", "list", "table", "inet", "hoody"]);
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&json) else {
        out.insert("firewall table missing".into());
        return;
    };
    let mut chains = 0;
    for o in doc["nftables"].as_array().map(Vec::as_slice).unwrap_or_default() {
        if o.get("chain").is_some() {
            chains += 1;
        }
        let Some(set) = o.get("set").or_else(|| o.get("map")) else { continue };
        let name = set["name"].as_str().unwrap_or_default();
        for e in set["elem"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let val = elem_val(e);
            let fields: Vec<String> =
                val.get("concat").and_then(|c| c.as_array()).map(|c| c.iter().map(text).collect()).unwrap_or_else(|| vec![text(val)]);
            match name {
                "ctr" => out.insert(format!("ctr {}", fields.join(" "))),
                "spoofed" | "denied" | "idenied" | "open" => out.insert(format!("{name} {}", fields[0])),
                "eap" | "edp" | "iap" => {
                    let comment = e.get("elem").and_then(|x| x["comment"].as_str()).unwrap_or("no comment");
                    out.insert(format!("rule {} {}", fields[0], comment.trim_start_matches("r:")))
                }
                // Shard sets: `kind . own address . …`.
                n if n.len() == 5 && n.starts_with("sh") => {
                    let comment = e.get("elem").and_then(|x| x["comment"].as_str()).unwrap_or("no comment");
                    out.insert(format!("rule {} {}", fields.get(1).map(String::as_str).unwrap_or("?"), comment.trim_start_matches("r:")))
                }
                _ => false,
            };
        }
    }
    out.insert(format!("chains {chains}"));
}

/// A rule as `firewall show` lists it, back as the type the firewall compiles.
fn api_rule(r: &serde_json::Value) -> hoody_net::rules::Rule {
    use hoody_net::rules::{Direction, PortRange, Rule, RuleSpec};
    let fqdn = r["destination_fqdn"].as_str().map(str::to_owned);
    let peer = match fqdn {
        Some(_) => hoody_net::rules::FQDN_PEER.to_string(),
        None => r["destination"].as_str().or(r["source"].as_str()).expect("a peer").to_owned(),
    };
    Rule {
        id: r["id"].as_str().expect("rule id").to_owned(),
        spec: RuleSpec {
            direction: if r["source"].is_string() { Direction::Ingress } else { Direction::Egress },
            action: serde_json::from_value(r["action"].clone()).expect("action"),
            protocol: serde_json::from_value(r["protocol"].clone()).expect("protocol"),
            peer: peer.parse().expect("peer"),
            ports: r["destination_port"].as_str().map(|p| PortRange::parse("port", p).expect("ports")),
            description: String::new(),
            fqdn,
        },
    }
}

/// What [`objects`] should be, from the API: storage, state, chains and snapshots of each
/// container with its verdict-map entries; a cgroup and a veth for each running one; the images; the
/// failsafe rules; nothing frozen, mounted or left over.
pub fn expected(w: &World) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let list = w.ok(&["containers", "list"]);
    let list = list.as_array().expect("a list");
    let running = list.iter().filter(|c| c["status"] == "running").count();
    out.insert(format!("shims {running}"));
    // The failsafe pair: marked traffic of the subnet is routed, the rest prohibited.
    out.insert("failsafe rules 2".to_owned());
    let (mut ips, mut ranges) = (BTreeSet::new(), BTreeSet::new());
    for c in list {
        let cid = c["id"].as_str().expect("id").to_owned();
        out.insert(format!("storage {cid}"));
        out.insert(format!("state {cid}"));
        let fw = w.ok(&["firewall", "show", "-c", &cid]);
        let veth = format!("hv{}", &cid[..8]);
        // Its firewall elements are in place from create on (before any start can happen).
        if let Some(ip) = c["ipv4"].as_str() {
            // A rule is in the kernel as the regions it owns; one wholly behind earlier rules
            // owns none (it can never match).
            for dir in ["egress", "ingress"] {
                let list = fw[dir].as_array().map(Vec::as_slice).unwrap_or_default();
                let owned = hoody_net::regions::decompose(&list.iter().map(api_rule).collect::<Vec<_>>()).expect("within the limit");
                for o in owned {
                    out.insert(format!("rule {ip} {}", o.rule_id));
                }
            }
            out.insert(format!("ctr {veth} {ip}"));
            out.insert(format!("spoofed {veth}"));
            out.insert(format!("denied {ip}"));
            out.insert(format!("idenied {ip}"));
            if fw["policy"] == "allow" {
                out.insert(format!("open {ip}"));
            }
        }
        for s in w.ok(&["snapshots", "list", "-c", &cid]).as_array().expect("snapshots") {
            out.insert(format!("snapshot {cid} {}", s["name"].as_str().expect("name")));
        }
        if c["status"] == "running" {
            out.insert(format!("cgroup {cid}"));
            out.insert(format!("veth {veth}"));
        }
        // The address and id-range pools hand out nothing twice.
        if let Some(ip) = c["ipv4"].as_str() {
            assert!(ips.insert(ip.to_owned()), "address {ip} held twice: {list:?}");
        }
        if let Some(base) = c["idmap"]["host_uid_base"].as_u64() {
            assert!(ranges.insert(base), "id range {base} held twice");
        }
    }
    // deny, ingress, allowed, learned, egress, 1,024 shard chains each way, the base chains.
    let base = if w.extra_flags.iter().any(|f| f == "--uplink") { 5 } else { 4 };
    out.insert(format!("chains {}", 5 + 2 * 1024 + base));
    for i in w.ok(&["images", "list"]).as_array().expect("images") {
        out.insert(format!("image {}", i["name"].as_str().expect("name")));
    }
    out
}

/// Objects and state agree (within 10 s: a dead container's network namespace, and the veth
/// in it, are torn down by the kernel asynchronously; a restore's old root goes in the
/// background).
pub fn consistent(w: &World, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (have, want) = (objects(w), expected(w));
        if have == want {
            return;
        }
        let missing: Vec<_> = want.difference(&have).collect();
        let extra: Vec<_> = have.difference(&want).collect();
        assert!(
            Instant::now() < deadline,
            "{when}: the API says {missing:?} that the kernel and disk lack, and these are there that it does not say: {extra:?}\n{}",
            crate::tail(&w.daemon_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
