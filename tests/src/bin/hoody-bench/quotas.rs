//! The cost of disk quotas, side by side in one run: two btrfs worlds, one where hoodyd turns on
//! qgroups and bounds every container (`--default-disk`), one with `--disk-quotas off`; rounds
//! alternate between them. Overlay's project quotas cannot be measured on these hosts (their
//! kernel has no CONFIG_QUOTA).

use std::time::Instant;

use hoody_e2e::stats::{Row, median, ms, paired_ratio, table};
use hoody_e2e::{Driver, World};

use crate::verdict;

fn create_start(w: &World, name: &str) -> (f64, String) {
    let t = Instant::now();
    let r = w.http().post("/containers?start=true", &format!(r#"{{"name":"{name}","image":"busybox"}}"#));
    let took = ms(t.elapsed());
    assert_eq!(r.status, 201, "{r:?}");
    (took, r.json()["data"]["id"].as_str().expect("id").to_owned())
}

/// Seconds to write `mib` MiB sequentially inside `c`, synced.
fn write_mib(w: &World, c: &str, mib: u64) -> f64 {
    let t = Instant::now();
    w.sh(c, &format!("dd if=/dev/zero of=/big bs=1M count={mib} conv=fsync 2>/dev/null"));
    let s = t.elapsed().as_secs_f64();
    w.sh(c, "rm -f /big; sync");
    s
}

fn snapshot_ms(w: &World, c: &str, alias: &str) -> f64 {
    let t = Instant::now();
    let r = w.http().post(&format!("/containers/{c}/snapshots"), &format!(r#"{{"alias":"{alias}"}}"#));
    let took = ms(t.elapsed());
    assert_eq!(r.status, 201, "{r:?}");
    took
}

fn delete_snapshot_ms(w: &World, c: &str, alias: &str) -> f64 {
    let t = Instant::now();
    let r = w.http().request("DELETE", &format!("/containers/{c}/snapshots/{alias}"), b"");
    let took = ms(t.elapsed());
    assert_eq!(r.status, 200, "{r:?}");
    took
}

pub fn quotas_bench(rounds: usize) {
    let q = World::with_flags_and_disk(Driver::Btrfs, "12G", &["--default-disk", "4GiB"]);
    let plain = World::with_flags_and_disk(Driver::Btrfs, "12G", &["--disk-quotas", "off"]);
    let (mut cq, mut cp) = (vec![], vec![]);
    for i in 0..rounds {
        cq.push(create_start(&q, &format!("q{i}")).0);
        cp.push(create_start(&plain, &format!("p{i}")).0);
    }
    let (_, wq) = create_start(&q, "writer");
    let (_, wp) = create_start(&plain, "writer");
    let (mut tq, mut tp) = (vec![], vec![]);
    for _ in 0..5 {
        tq.push(1024.0 / write_mib(&q, &wq, 1024));
        tp.push(1024.0 / write_mib(&plain, &wp, 1024));
    }
    // 100 snapshots, each over 1 MiB of new data, then snapshot create and delete at that depth.
    let (_, sq) = create_start(&q, "snapper");
    let (_, sp) = create_start(&plain, "snapper");
    for i in 0..100 {
        for (w, c) in [(&q, &sq), (&plain, &sp)] {
            w.sh(c, &format!("dd if=/dev/urandom of=/f{i} bs=64k count=16 2>/dev/null"));
            snapshot_ms(w, c, &format!("base{i}"));
        }
    }
    let (mut sc_q, mut sc_p, mut sd_q, mut sd_p) = (vec![], vec![], vec![], vec![]);
    for i in 0..rounds {
        sc_q.push(snapshot_ms(&q, &sq, &format!("m{i}")));
        sc_p.push(snapshot_ms(&plain, &sp, &format!("m{i}")));
    }
    for i in 0..rounds {
        sd_q.push(delete_snapshot_ms(&q, &sq, &format!("base{i}")));
        sd_p.push(delete_snapshot_ms(&plain, &sp, &format!("base{i}")));
    }
    let rows = vec![
        Row { what: "create+start (busybox)".into(), tool: "hoody, --default-disk 4GiB (qgroups)".into(), samples: cq.clone() },
        Row { what: "create+start (busybox)".into(), tool: "hoody, --disk-quotas off".into(), samples: cp.clone() },
        Row { what: "snapshot create, 100 snapshots present".into(), tool: "qgroups".into(), samples: sc_q.clone() },
        Row { what: "snapshot create, 100 snapshots present".into(), tool: "no quotas".into(), samples: sc_p.clone() },
        Row { what: "snapshot delete, 100 snapshots present".into(), tool: "qgroups".into(), samples: sd_q.clone() },
        Row { what: "snapshot delete, 100 snapshots present".into(), tool: "no quotas".into(), samples: sd_p.clone() },
    ];
    println!("## Disk quotas (btrfs qgroups) vs none, {rounds} alternating rounds\n");
    print!("{}", table(&rows));
    let (rc, rw) = (paired_ratio(&cq, &cp), paired_ratio(&tq, &tp));
    println!(
        "\n1 GiB sequential write inside (dd, fsync): {:.0} MiB/s with a 4 GiB quota, {:.0} MiB/s without (paired ratio {rw:.2}; target ≥ 0.9: {}).",
        median(&tq),
        median(&tp),
        verdict(rw >= 0.9)
    );
    println!(
        "create+start paired ratio with/without quotas {rc:.2} (target ≤ 1.1: {}); snapshot create {:.2}×, delete {:.2}× with 100 snapshots under qgroups. \
         With quotas a snapshot commits the pool's transaction first, to charge the root's exclusive bytes exactly.",
        verdict(rc <= 1.1),
        paired_ratio(&sc_q, &sc_p),
        paired_ratio(&sd_q, &sd_p)
    );
}
