//! What the hostile-tree defences cost, side by side in one run:
//! - a diff of a 100,000-file btrfs root (1 % of it changed) through a temporary read-only
//!   snapshot of the live root (what hoodyd does) vs a walk of the live root itself (what it did
//!   before), both with the same beneath-the-root, no-symlink resolution;
//! - an overlay snapshot of a tree with large sparse files (hoodyd's copy, SEEK_DATA segments)
//!   vs `cp -a --sparse=always` of the same tree.

use std::path::Path;
use std::time::Instant;

use hoody_e2e::stats::{Row, ms, paired_ratio, table};
use hoody_e2e::{Driver, World, run};
use hoody_snapshot::diff::{DirView, diff};

const FILES: usize = 100_000;

fn fill(root: &Path) {
    for d in 0..100 {
        let dir = root.join(format!("tree/d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..FILES / 100 {
            std::fs::write(dir.join(format!("f{f}")), format!("file {d}/{f}\n")).expect("write");
        }
    }
}

fn diff_bench(rounds: usize) -> (Vec<Row>, f64) {
    let w = World::with_disk(Driver::Btrfs, "4G");
    let c = w.ok(&["containers", "create", "--name", "big", "--image", "busybox"])["id"].as_str().expect("id").to_owned();
    let dir = w.storage_dir.join("containers").join(&c);
    fill(&dir.join("rootfs"));
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "s"]);
    for d in 0..100 {
        for f in (0..FILES / 100).step_by(100) {
            std::fs::write(dir.join(format!("rootfs/tree/d{d}/f{f}")), format!("changed {d}/{f}\n")).expect("write");
        }
    }
    // The pool as the daemon sees it (quotas untouched: this instance only reads and snapshots).
    let driver = hoody_snapshot::open_driver(hoody_snapshot::driver::DriverChoice::Btrfs, &w.storage_dir, Path::new("/sys"), false)
        .expect("open the pool");
    // The same lineage the driver gives its views: unchanged files are settled by inode and
    // change time, not read, in both ways.
    let lineage = nix::sys::statvfs::statvfs(&w.storage_dir).ok().map(|s| s.filesystem_id());
    let (mut snap, mut live) = (vec![], vec![]);
    let mut counts = (0, 0);
    for _ in 0..rounds {
        let t = Instant::now();
        let a = driver.snapshot_view("busybox", &c, "s").expect("snapshot view");
        let b = driver.live_view("busybox", &c).expect("temporary snapshot");
        counts.0 = diff(a.as_ref(), b.as_ref()).len();
        drop(b);
        snap.push(ms(t.elapsed()));
        let t = Instant::now();
        let a = driver.snapshot_view("busybox", &c, "s").expect("snapshot view");
        let b = DirView::open(&dir.join("rootfs"), lineage).expect("live root");
        counts.1 = diff(a.as_ref(), &b).len();
        live.push(ms(t.elapsed()));
    }
    assert_eq!(counts.0, counts.1, "both ways find the same changes");
    let r = paired_ratio(&snap, &live);
    let what = format!("diff, {FILES} files, {} changed", counts.0);
    (
        vec![
            Row { what: what.clone(), tool: "temporary read-only snapshot (hoodyd)".into(), samples: snap },
            Row { what, tool: "live root walked in place".into(), samples: live },
        ],
        r,
    )
}

fn sparse_bench(rounds: usize) -> (Vec<Row>, f64, u64, u64) {
    let w = World::with_disk(Driver::Overlay, "4G");
    let c = w.running("sparse")["id"].as_str().expect("id").to_owned();
    // 8 files of 1 GiB, each holding 1 MiB of data in 4 places.
    w.sh(
        &c,
        "for i in 1 2 3 4 5 6 7 8; do for o in 0 256 512 1023; do \
         dd if=/dev/urandom of=/s$i bs=256k count=1 seek=$((o * 4)) conv=notrunc 2>/dev/null; done; \
         dd if=/dev/zero of=/s$i bs=1 count=1 seek=1073741823 conv=notrunc 2>/dev/null; done",
    );
    let upper = w.storage_dir.join("containers").join(&c).join("upper");
    let scratch = w.storage_dir.join("cp-scratch");
    let (mut ours, mut cp) = (vec![], vec![]);
    let (mut ours_bytes, mut cp_bytes) = (0, 0);
    for i in 0..rounds {
        let t = Instant::now();
        w.ok(&["snapshots", "create", "--container", &c, "--alias", &format!("s{i}")]);
        ours.push(ms(t.elapsed()));
        ours_bytes = allocated(&w.storage_dir.join("containers").join(&c).join(format!("snapshots/s{i}/upper")));
        w.ok(&["snapshots", "delete", "--container", &c, &format!("s{i}")]);
        let _ = std::fs::remove_dir_all(&scratch);
        let t = Instant::now();
        run("cp", &["-a", "--sparse=always", &upper.to_string_lossy(), &scratch.to_string_lossy()]);
        run("sync", &["-f", &scratch.to_string_lossy()]);
        cp.push(ms(t.elapsed()));
        cp_bytes = allocated(&scratch);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let r = paired_ratio(&ours, &cp);
    let what = "snapshot of 8 × 1 GiB sparse files (4 MiB data each)".to_owned();
    (
        vec![
            Row { what: what.clone(), tool: "hoodyd (SEEK_DATA segments), through the API".into(), samples: ours },
            Row { what, tool: "cp -a --sparse=always".into(), samples: cp },
        ],
        r,
        ours_bytes,
        cp_bytes,
    )
}

/// Bytes allocated by the regular files under `p`.
fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(p).expect("read_dir").flatten() {
        let m = e.metadata().expect("stat");
        if m.is_file() {
            total += m.blocks() * 512;
        }
    }
    total
}

pub fn hostile_tree_bench(rounds: usize) {
    let (mut rows, rd) = diff_bench(rounds);
    let (more, rs, ours, cp) = sparse_bench(rounds);
    rows.extend(more);
    println!("## Hostile tree: diff through a temporary snapshot, sparse snapshot copies ({rounds} alternating rounds)\n");
    print!("{}", table(&rows));
    println!(
        "\nDiff through a temporary read-only snapshot vs the live walk: paired ratio {rd:.2} (what a stable tree costs: one snapshot \
         and its deletion, each a btrfs commit, against a walk that may see the tree change under it). Overlay sparse snapshot (through the API, container frozen) vs cp --sparse=always: paired ratio {rs:.2}; \
         allocated {} MiB by hoodyd's copy, {} MiB by cp's, for 8 GiB of apparent size.",
        ours >> 20,
        cp >> 20
    );
}
