//! What the kernel and the disk hold for a world's daemon, against what its API says: the
//! check every crash test runs after a restart. Objects by kind: container storage and state
//! directories, cgroups (and any frozen level), shims, veths, nftables chains and verdict-map
//! entries, each rule of each container's chains, failsafe `ip rule`s, snapshots and images in the pool, and leftovers that must
//! never survive a start (staging entries, `.restore`, diff snapshots, stray mounts).

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
    // One shim per running container, none left behind.
    let shims = std::fs::read_to_string(w.cgroup.join("shims/cgroup.procs")).unwrap_or_default();
    out.insert(format!("shims {}", shims.lines().count()));
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
    let nft = run("ip", &["netns", "exec", &w.host_ns, "nft", "list", "table", "inet", "hoody"]);
    let (mut map, mut chain) = (None, String::new());
    for l in nft.lines() {
        let l = l.trim();
        if let Some(c) = l.strip_prefix("chain ").and_then(|c| c.split_whitespace().next()) {
            chain = c.to_owned();
            if let Some(owner) = ["e_", "i_", "d_"].iter().find_map(|p| c.strip_prefix(p)) {
                out.insert(format!("chain {owner}"));
            }
        }
        // A container's rules carry `comment "r:<rule id>…"` in its e_/i_ chain.
        if let Some(rest) = l.split("comment \"r:").nth(1)
            && let Some(owner) = ["e_", "i_"].iter().find_map(|p| chain.strip_prefix(p))
        {
            let rule = rest.split([':', '"']).next().unwrap_or_default();
            out.insert(format!("rule {owner} {rule}"));
        }
        if let Some(m) = l.strip_prefix("map ").and_then(|c| c.split_whitespace().next()) {
            map = Some(m.to_owned());
        }
        // Verdict-map entries: `"hvXXXXXXXX" : jump e_<id>`, one per line or comma-separated.
        for part in l.split(',') {
            if let Some((k, v)) = part.split_once(" : ")
                && let Some(target) = v.trim().trim_end_matches('}').split_whitespace().last()
            {
                let k = k.trim().trim_start_matches("elements = {").trim().trim_matches('"');
                if !k.starts_with("hv") {
                    continue;
                }
                out.insert(format!("map {} {k} {target}", map.as_deref().unwrap_or("?")));
            }
        }
    }
    let rules = run("ip", &["-n", &w.host_ns, "rule", "show"]);
    out.insert(format!("failsafe rules {}", rules.lines().filter(|l| l.contains("prohibit") || l.contains("fwmark")).count()));
    out
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
        out.insert(format!("chain {cid}"));
        let fw = w.ok(&["firewall", "show", "-c", &cid]);
        for dir in ["egress", "ingress"] {
            for r in fw[dir].as_array().map(Vec::as_slice).unwrap_or_default() {
                out.insert(format!("rule {cid} {}", r["id"].as_str().expect("rule id")));
            }
        }
        // Dispatch to its chains is in place from create on (before any start can happen).
        let veth = format!("hv{}", &cid[..8]);
        out.insert(format!("map eg {veth} e_{cid}"));
        out.insert(format!("map in {veth} i_{cid}"));
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
