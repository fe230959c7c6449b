//! The console through the shim, side by side in one run: 1 GiB of `yes` written to the init's
//! stdout (a pipe to the shim, which writes the log and rotates it) vs the same `yes | head -c
//! 1G` in the same container writing a file of its own root (a direct file write, as the init's
//! stdout was a host file before the shim). Also the memory of one shim.

use std::time::{Duration, Instant};

use hoody_e2e::stats::{Row, median, ms, paired_ratio, table};
use hoody_e2e::{Driver, World};

use crate::verdict;

const GIB: u64 = 1 << 30;

fn through_shim(w: &World, c: &str, round: usize) -> f64 {
    let mark = format!("DONE-{round}");
    let t = Instant::now();
    // The init floods its own stdout when told to (see `console_bench`).
    w.sh(c, &format!("touch /go{round}"));
    // Done once the shim has put the mark in the log.
    loop {
        if w.ctl(&["logs", "--tail", "1", c]).stdout.contains(&mark) {
            return ms(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The same writer in the same container, into a file of its own root (what writing a file
/// costs there, without the console pipe and the shim).
fn direct(w: &World, c: &str) -> f64 {
    let t = Instant::now();
    w.sh(c, &format!("yes | head -c {GIB} > /flood; sync /flood"));
    let took = ms(t.elapsed());
    w.sh(c, "rm -f /flood");
    took
}

/// One shim's memory in KiB: (resident, private — what it alone holds, not the pages of the
/// hoodyd binary and libc it shares with the daemon and every other shim).
fn shim_memory_kib(w: &World) -> (u64, u64) {
    let procs = std::fs::read_to_string(w.cgroup.join("shims/cgroup.procs")).unwrap_or_default();
    let pid = procs.lines().next().expect("a shim runs");
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("shim smaps_rollup");
    let kib = |key: &str| -> u64 {
        rollup.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
    };
    (kib("Rss:"), kib("Private_Clean:") + kib("Private_Dirty:"))
}

pub fn console_bench(rounds: usize) {
    let w = World::with_disk(Driver::Overlay, "8G");
    let init = format!("i=0; while :; do if [ -e /go$i ]; then yes | head -c {GIB}; echo DONE-$i; i=$((i+1)); fi; sleep 0.02; done");
    let c = w.ok(&["containers", "create", "--name", "console", "--image", "busybox", "--start", "--", "sh", "-c", &init])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (rss, private) = shim_memory_kib(&w);
    let (mut shim, mut file) = (vec![], vec![]);
    for i in 0..rounds {
        shim.push(through_shim(&w, &c, i));
        file.push(direct(&w, &c));
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
            tool: "the same yes and head in the container, into a file of its root".into(),
            samples: file.clone(),
        },
    ];
    println!("## Console through the shim vs a direct file, {rounds} alternating rounds\n");
    print!("{}", table(&rows));
    println!(
        "\nThroughput {:.2} GiB/s through the shim, {:.2} GiB/s into the file directly: ratio {r:.2} (target ≥ 0.8: {}). \
         One shim's resident memory: {rss} KiB (target ≤ 1024 KiB: {}), of which {private} KiB are its own (private pages) \
         and the rest the hoodyd binary's and libc's pages it shares with the daemon and every other shim.",
        gibps(&shim),
        gibps(&file),
        verdict(r >= 0.8),
        verdict(rss <= 1024)
    );
}
