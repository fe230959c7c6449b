//! Density (issue 8): N idle containers running, each with its network and deny-all firewall —
//! hoodyd's resident memory, the memory per container (its processes, the kernel's objects), and the time to create them all
//! and to delete them all, one at a time and from 8 clients at once (veth teardown waits for
//! an RCU grace period in the kernel; concurrent deletes let those waits overlap).

use std::time::Instant;

use hoody_e2e::stats::ms;
use hoody_e2e::{Driver, World};

fn status_kib(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn meminfo_kib(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// Proportional set size of process `pid` (its share of the pages it maps).
fn pss_kib(pid: i64) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    s.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn create_all(w: &World, n: usize, tag: &str) -> (Vec<String>, f64) {
    let http = w.http();
    let t = Instant::now();
    let ids = (0..n)
        .map(|i| {
            let r = http.post("/containers?start=true", &format!(r#"{{"name":"{tag}{i}","image":"busybox"}}"#));
            assert_eq!(r.status, 201, "{r:?}");
            r.json()["data"]["id"].as_str().expect("id").to_owned()
        })
        .collect();
    (ids, ms(t.elapsed()))
}

fn delete_all(w: &World, ids: &[String], clients: usize) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in ids.chunks(ids.len().div_ceil(clients)) {
            let http = w.http();
            s.spawn(move || {
                for id in chunk {
                    let r = http.request("DELETE", &format!("/containers/{id}?force=true"), b"");
                    assert_eq!(r.status, 200, "{r:?}");
                }
            });
        }
    });
    ms(t.elapsed())
}

pub fn density_bench(n: usize) {
    let w = World::with_net(Driver::Btrfs);
    let pid = w.daemon_pid().expect("daemon pid");
    let (rss0, slab0) = (status_kib(pid, "VmRSS:"), meminfo_kib("SUnreclaim:"));
    let (ids, create_ms) = create_all(&w, n, "d");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (rss, hwm, slab) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"), meminfo_kib("SUnreclaim:"));
    // What the containers' own processes use: everything in their cgroups.
    let user: f64 = ids
        .iter()
        .flat_map(|id| {
            std::fs::read_to_string(w.cgroup.join(id).join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|p| p.trim().parse::<i64>().ok())
        .map(pss_kib)
        .sum();
    let listed = w.http().get("/containers").json()["data"].as_array().map(|a| a.iter().filter(|c| c["status"] == "running").count());
    assert_eq!(listed, Some(n), "not all running");
    let delete_seq = delete_all(&w, &ids, 1);
    let (ids, create2_ms) = create_all(&w, n, "e");
    let delete_par = delete_all(&w, &ids, 8);
    println!("## Density: {n} idle busybox containers, each with network and a deny-all firewall (btrfs)\n");
    println!("| measurement | value |\n|---|---|");
    println!("| hoodyd RSS with no containers | {:.1} MB |", rss0 / 1024.0);
    println!("| hoodyd RSS with {n} running | {:.1} MB (peak {:.1} MB) |", rss / 1024.0, hwm / 1024.0);
    println!("| per container: its processes (PSS of everything in its cgroup) | {:.0} KiB |", user / n as f64);
    println!(
        "| per container: kernel memory (growth of unreclaimable slab ÷ {n}: namespaces, veth, nftables, cgroup, mounts) | {:.0} KiB |",
        (slab - slab0) / n as f64
    );
    println!("| create+start all {n}, one client | {:.1} s ({:.1} ms each) |", create_ms / 1000.0, create_ms / n as f64);
    println!("| delete all {n}, one client | {:.1} s ({:.1} ms each) |", delete_seq / 1000.0, delete_seq / n as f64);
    println!("| create+start all {n} again | {:.1} s |", create2_ms / 1000.0);
    println!(
        "| delete all {n}, 8 clients at once | {:.1} s ({:.2}× faster than one client) |",
        delete_par / 1000.0,
        delete_seq / delete_par
    );
    println!(
        "\nTarget: hoodyd RSS ≤ 50 MB with 200 containers — {:.1} MB, {}.",
        rss / 1024.0,
        if rss / 1024.0 <= 50.0 { "met" } else { "MISSED" }
    );
}
