//! Fork (issue 21): create+start of a container forked from a snapshot against create+start
//! from the image, alternating in one run, on both drivers; the snapshot holds a prepared
//! environment (10 MB in one file and 1,000 small files beyond the image).

use std::time::Instant;

use hoody_e2e::stats::{Row, median, ms, paired_ratio, percentile, table};
use hoody_e2e::{Driver, World};

pub fn fork_bench(n: usize) {
    println!("## Fork, {n} of each, alternating\n");
    let mut rows = vec![];
    let mut ratios = vec![];
    for driver in [Driver::Btrfs, Driver::Overlay] {
        let w = World::with_disk(driver, "4G");
        let http = w.http();
        let base = w.ok(&["containers", "create", "--name", "base", "--image", "busybox", "--start"]);
        let bid = base["id"].as_str().expect("id").to_owned();
        w.sh(&bid, "mkdir -p /srv/env && dd if=/dev/urandom of=/srv/env/blob bs=1M count=10 2>/dev/null && for i in $(seq 1000); do echo $i > /srv/env/f$i; done");
        w.ok(&["snapshots", "create", "-c", &bid, "--alias", "ready"]);
        let (mut image, mut fork, mut ids) = (vec![], vec![], vec![]);
        for i in 0..n {
            let t = Instant::now();
            let r = http.post("/containers?start=true", &format!(r#"{{"name":"i{i}","image":"busybox"}}"#));
            image.push(ms(t.elapsed()));
            assert_eq!(r.status, 201, "{r:?}");
            ids.push(r.json()["data"]["id"].as_str().expect("id").to_owned());
            let t = Instant::now();
            let r =
                http.post("/containers?start=true", &format!(r#"{{"name":"f{i}","source":{{"container":"{bid}","snapshot":"ready"}}}}"#));
            fork.push(ms(t.elapsed()));
            assert_eq!(r.status, 201, "{r:?}");
            ids.push(r.json()["data"]["id"].as_str().expect("id").to_owned());
        }
        for id in &ids {
            let r = http.request("DELETE", &format!("/containers/{id}?force=true"), b"");
            assert_eq!(r.status, 200, "{r:?}");
        }
        let d = driver.name();
        rows.push(Row { what: format!("create+start, {d}"), tool: "from the image".into(), samples: image.clone() });
        rows.push(Row {
            what: format!("create+start, {d}"),
            tool: "fork of a snapshot (10 MB + 1,000 files)".into(),
            samples: fork.clone(),
        });
        ratios.push((d, paired_ratio(&fork, &image), median(&fork), percentile(&fork, 95.0)));
    }
    print!("{}", table(&rows));
    println!();
    for (d, r, m, p) in ratios {
        println!(
            "{d}: fork / create from the image, paired {r:.2}× (target ≤ 1.2×: {}); fork median {m:.2} ms, p95 {p:.2} ms.",
            if r <= 1.2 { "met" } else { "MISSED" }
        );
    }
    println!();
}
