//! What durability costs (issue 15), side by side in one run, per driver: a snapshot and a
//! restore through the storage driver with and without the pool sync hoodyd now does before
//! answering; on overlay also the two ways to make a copied tree durable: fsync of every file
//! and directory, or one `syncfs`. The tree: 500 files of 8 KiB in the container's root. The
//! page cache is flushed (`sync`) before each timed step, so each sync pays for its own writes.

use std::path::Path;
use std::time::Instant;

use hoody_e2e::stats::{Row, ms, paired_ratio, table};
use hoody_e2e::{Driver, World, run};
use hoody_snapshot::{DiskLimits, StorageDriver};

const FILES: usize = 500;

fn fill(root: &Path) {
    let dir = root.join("work-tree");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in 0..FILES {
        std::fs::write(dir.join(format!("f{f}")), vec![b'a' + (f % 26) as u8; 8192]).expect("write");
    }
}

/// fsync of every file and directory under `p` (and `p`).
fn fsync_tree(p: &Path) {
    for e in std::fs::read_dir(p).expect("read_dir").flatten() {
        let t = e.file_type().expect("type");
        if t.is_dir() {
            fsync_tree(&e.path());
        } else if t.is_file() {
            std::fs::File::open(e.path()).and_then(|f| f.sync_all()).expect("fsync");
        }
    }
    std::fs::File::open(p).and_then(|f| f.sync_all()).expect("fsync dir");
}

fn timed(f: impl FnOnce()) -> f64 {
    run("sync", &[]);
    let t = Instant::now();
    f();
    ms(t.elapsed())
}

fn driver_rows(driver: Driver, rounds: usize) -> (Vec<Row>, Vec<String>) {
    let mut w = World::with_disk(driver, "2G");
    let c = w.ok(&["containers", "create", "--name", "dur", "--image", "busybox"])["id"].as_str().expect("id").to_owned();
    let dir = w.storage_dir.join("containers").join(&c);
    fill(&dir.join(if driver == Driver::Btrfs { "rootfs" } else { "upper" }));
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "base"]);
    // The driver is driven directly from here on: the daemon must not touch the pool.
    w.stop_daemon();
    let choice =
        if driver == Driver::Btrfs { hoody_snapshot::driver::DriverChoice::Btrfs } else { hoody_snapshot::driver::DriverChoice::Overlay };
    let d = hoody_snapshot::open_driver(choice, &w.storage_dir, Path::new("/sys"), false).expect("open the pool");
    let (mut snap, mut snap_sync, mut rest, mut rest_sync) = (vec![], vec![], vec![], vec![]);
    let (mut each, mut once) = (vec![], vec![]);
    let restore = |d: &dyn StorageDriver, sync: bool| {
        d.restore_snapshot(&c, "base", &DiskLimits::default(), "bench", &|_| Ok(())).expect("restore");
        if sync {
            d.sync().expect("sync");
        }
        d.finish_restore(&c).expect("finish");
    };
    for i in 0..rounds {
        // Which of the pair goes first alternates, so neither pays the other's leftovers.
        for sync in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let t = timed(|| {
                d.create_snapshot(&c, &format!("s{i}"), None).expect("snapshot");
                if sync {
                    d.sync().expect("sync");
                }
            });
            if sync { &mut snap_sync } else { &mut snap }.push(t);
            d.delete_snapshot(&c, &format!("s{i}")).expect("delete");
            run("sync", &[]);
            let t = timed(|| restore(d.as_ref(), sync));
            if sync { &mut rest_sync } else { &mut rest }.push(t);
            d.cleanup_restore(&c).expect("cleanup");
        }
        if driver == Driver::Overlay {
            let (src, dst) = (dir.join("upper"), w.storage_dir.join("bench-copy"));
            each.push(timed(|| {
                hoody_snapshot::copy::copy_tree(&src, &dst).expect("copy");
                fsync_tree(&dst);
            }));
            let _ = std::fs::remove_dir_all(&dst);
            once.push(timed(|| {
                hoody_snapshot::copy::copy_tree(&src, &dst).expect("copy");
                d.sync().expect("syncfs");
            }));
            let _ = std::fs::remove_dir_all(&dst);
        }
    }
    let name = driver.name();
    let mut notes = vec![
        format!("{name}: snapshot with the sync / without: paired ratio {:.2}", paired_ratio(&snap_sync, &snap)),
        format!("{name}: restore with the sync / without: paired ratio {:.2}", paired_ratio(&rest_sync, &rest)),
    ];
    let what = |op: &str| format!("{name} {op}, {FILES} files of 8 KiB");
    let mut rows = vec![
        Row { what: what("snapshot"), tool: "without a sync (before)".into(), samples: snap },
        Row { what: what("snapshot"), tool: "then the pool synced (hoodyd now)".into(), samples: snap_sync },
        Row { what: what("restore"), tool: "without a sync (before)".into(), samples: rest },
        Row { what: what("restore"), tool: "then the pool synced (hoodyd now)".into(), samples: rest_sync },
    ];
    if driver == Driver::Overlay {
        notes.push(format!(
            "overlay: copy + fsync of every file and directory / copy + one syncfs: paired ratio {:.2}",
            paired_ratio(&each, &once)
        ));
        rows.push(Row { what: what("copy made durable"), tool: "fsync of every file and directory".into(), samples: each });
        rows.push(Row { what: what("copy made durable"), tool: "one syncfs (hoodyd)".into(), samples: once });
    }
    (rows, notes)
}

pub fn durability_bench(rounds: usize) {
    let (mut rows, mut notes) = driver_rows(Driver::Btrfs, rounds);
    let (r, n) = driver_rows(Driver::Overlay, rounds);
    rows.extend(r);
    notes.extend(n);
    println!("## Durability: snapshot and restore with and without the sync before the answer ({rounds} alternating rounds)\n");
    print!("{}", table(&rows));
    println!();
    for n in notes {
        println!("- {n}");
    }
}
