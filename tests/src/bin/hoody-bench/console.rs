//! The console through the shim, side by side in one run: 1 GiB of `yes` written to the init's
//! stdout (a pipe to the shim, which writes the log and rotates it) vs the same 1 GiB written by
//! `yes | head -c 1G` straight into a file on the same state file system (the old way: the init
//! wrote the host file itself). Also the memory of one shim.

use std::time::{Duration, Instant};

use hoody_e2e::stats::{Row, median, ms, paired_ratio, table};
use hoody_e2e::{Driver, World, run};

use crate::verdict;

const GIB: u64 = 1 << 30;

fn through_shim(w: &World, c: &str, round: usize) -> f64 {
    let mark = format!("DONE-{round}");
    let t = Instant::now();
    w.sh(c, &format!("yes | head -c {GIB} > /proc/1/fd/1; echo {mark} > /proc/1/fd/1"));
    // Written into the pipe; done once the shim has put the mark in the log.
    loop {
        if w.ctl(&["logs", "--tail", "1", c]).stdout.contains(&mark) {
            return ms(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn direct(w: &World) -> f64 {
    let f = w.state_dir.join("direct.log");
    let t = Instant::now();
    run("sh", &["-c", &format!("yes | head -c {GIB} >> {}", f.display())]);
    let took = ms(t.elapsed());
    let _ = std::fs::remove_file(&f);
    took
}

fn shim_rss_kib(w: &World) -> u64 {
    let procs = std::fs::read_to_string(w.cgroup.join("shims/cgroup.procs")).unwrap_or_default();
    let pid = procs.lines().next().expect("a shim runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("shim status");
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

pub fn console_bench(rounds: usize) {
    let w = World::with_disk(Driver::Overlay, "8G");
    let c = w.running("console")["id"].as_str().expect("id").to_owned();
    let rss = shim_rss_kib(&w);
    let (mut shim, mut file) = (vec![], vec![]);
    for i in 0..rounds {
        shim.push(through_shim(&w, &c, i));
        file.push(direct(&w));
    }
    let gibps = |s: &[f64]| 1000.0 / median(s);
    let r = paired_ratio(&file, &shim);
    let rows = vec![
        Row {
            what: "1 GiB of console output".into(),
            tool: "init's stdout → shim → console.log (rotating at 8 MiB)".into(),
            samples: shim.clone(),
        },
        Row {
            what: "1 GiB of console output".into(),
            tool: "yes | head -c 1G >> a file on the state file system".into(),
            samples: file.clone(),
        },
    ];
    println!("## Console through the shim vs a direct file, {rounds} alternating rounds\n");
    print!("{}", table(&rows));
    println!(
        "\nThroughput {:.2} GiB/s through the shim, {:.2} GiB/s into the file directly: ratio {r:.2} (target ≥ 0.8: {}). \
         One shim's resident memory: {rss} KiB (target ≤ 1024 KiB: {}).",
        gibps(&shim),
        gibps(&file),
        verdict(r >= 0.8),
        verdict(rss <= 1024)
    );
}
