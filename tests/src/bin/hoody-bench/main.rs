//! Benchmarks of hoodyd against the tools operators use today, run side by side in the same run
//! (rounds alternate A B A B so machine noise hits both). Prints Markdown tables of medians,
//! p95 and paired ratios; asserts nothing about time.
//!
//!   hoody-bench lifecycle [N]     create+start and stop+delete, vs crun
//!   hoody-bench exec [ROUNDS]     exec true vs nsenter and crun exec; 16 concurrent clients
//!   hoody-bench dns [ROUNDS]      queries through the resolver vs dnsmasq straight; conn/s by name
//!   hoody-bench api [N]           GET latency and throughput with N containers, 16 clients, audit on/off
//!   hoody-bench events [N]        API latency with N event subscribers attached vs none; events/s delivered
//!   hoody-bench restart [N]       daemon restart and boot with N running containers
//!   hoody-bench console [N]       1 GiB of console output through the shim vs into a file; shim memory
//!   hoody-bench durability [N]    snapshot and restore with and without the sync before the answer
//!   hoody-bench hostile-tree [N]  diff via a temporary snapshot vs the live walk; sparse snapshots vs cp
//!   hoody-bench quotas [N]        create+start, writes and snapshots with btrfs qgroups vs without

use std::io::{BufRead, BufReader, Write};
use std::time::Instant;

mod console;
mod density;
mod dns;
mod durability;
mod events;
mod exec;
mod fork;
mod hostile_tree;
mod packets;
mod peers;
mod quotas;
mod restart;

use hoody_e2e::stats::{Row, median, ms, paired_ratio, percentile, table};
use hoody_e2e::{Driver, World};

fn lifecycle(n: usize) {
    let w = World::new(Driver::Btrfs);
    let http = w.http();
    let bundle = peers::oci_bundle(&w.dir.join("crun"), &peers::shifted_rootfs(&w), None);
    let state = w.dir.join("crun-state").display().to_string();
    let mut runner = peers::Runner::spawn(&w.host_ns);
    let mut crun = |args: &[&str]| {
        let mut a = vec!["crun", "--root", &state, "--cgroup-manager=disabled"];
        a.extend_from_slice(args);
        runner.time(&a)
    };
    let (mut hc, mut cc, mut hd, mut cd) = (vec![], vec![], vec![], vec![]);
    let mut ids = vec![];
    // Warm up both once.
    crun(&["run", "-d", "--bundle", &bundle, "warm"]);
    crun(&["delete", "-f", "warm"]);
    for i in 0..n {
        let t = Instant::now();
        let r = http.post("/containers?start=true", &format!(r#"{{"name":"b{i}","image":"busybox"}}"#));
        hc.push(ms(t.elapsed()));
        assert_eq!(r.status, 201, "{r:?}");
        ids.push(r.json()["data"]["id"].as_str().expect("id").to_owned());
        cc.push(crun(&["run", "-d", "--bundle", &bundle, &format!("c{i}")]));
    }
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        let r = http.request("DELETE", &format!("/containers/{id}?force=true"), b"");
        hd.push(ms(t.elapsed()));
        assert_eq!(r.status, 200, "{r:?}");
        cd.push(crun(&["delete", "-f", &format!("c{i}")]));
    }
    let rows = vec![
        Row { what: "create+start (busybox, to init running)".into(), tool: "hoody".into(), samples: hc.clone() },
        Row { what: "create+start (busybox, to init running)".into(), tool: "crun run -d".into(), samples: cc.clone() },
        Row { what: "stop+delete (kill)".into(), tool: "hoody".into(), samples: hd.clone() },
        Row { what: "stop+delete (kill)".into(), tool: "crun delete -f".into(), samples: cd.clone() },
    ];
    println!("## Container lifecycle, {n} containers, btrfs, user namespace on both sides\n");
    print!("{}", table(&rows));
    println!(
        "\nhoody/crun paired ratio: create+start {:.2}×, stop+delete {:.2}×  (hoody create+start median {:.2} ms, p95 {:.2} ms; target ≤ 15 ms and ≤ 3× crun: {})",
        paired_ratio(&hc, &cc),
        paired_ratio(&hd, &cd),
        median(&hc),
        percentile(&hc, 95.0),
        verdict(median(&hc) <= 15.0 && paired_ratio(&hc, &cc) <= 3.0)
    );
    drop(runner);
    image_size(&w, 20);
}

/// Create+start of a 50,000-file image against the 290-file busybox image, alternating: with
/// idmapped mounts and snapshot/overlay roots the cost must not depend on the image's size.
fn image_size(w: &World, rounds: usize) {
    let big = w.dir.join("big");
    for d in 0..100 {
        let sub = big.join(format!("usr/share/d{d}"));
        std::fs::create_dir_all(&sub).expect("dir");
        for f in 0..500 {
            std::fs::write(sub.join(format!("f{f}")), b"x").expect("file");
        }
    }
    hoody_e2e::run("cp", &["-a", &w.storage_dir.join("images/busybox/.").to_string_lossy(), &big.to_string_lossy()]);
    let t = Instant::now();
    w.ok(&["images", "import", "big", &big.to_string_lossy()]);
    let import_ms = ms(t.elapsed());
    let http = w.http();
    let (mut small, mut large) = (vec![], vec![]);
    for i in 0..rounds {
        for (image, v) in [("busybox", &mut small), ("big", &mut large)] {
            let t = Instant::now();
            let r = http.post("/containers?start=true", &format!(r#"{{"name":"{image}{i}","image":"{image}"}}"#));
            v.push(ms(t.elapsed()));
            assert_eq!(r.status, 201, "{r:?}");
            let id = r.json()["data"]["id"].as_str().expect("id").to_owned();
            http.request("DELETE", &format!("/containers/{id}?force=true"), b"");
        }
    }
    println!("\n## Create+start against image size (btrfs, {rounds} rounds each)\n");
    print!(
        "{}",
        table(&[
            Row { what: "create+start, busybox image (290 files)".into(), tool: "hoody".into(), samples: small.clone() },
            Row { what: "create+start, 50,290-file image".into(), tool: "hoody".into(), samples: large.clone() },
        ])
    );
    println!("\nlarge/small paired ratio {:.2}× (importing the large image once took {import_ms:.0} ms)", paired_ratio(&large, &small));
}

/// Milliseconds of the last "firewall in place" line of the daemon's log, and its result.
fn last_reconcile(w: &World) -> (String, f64) {
    let log = w.daemon_log();
    let line = log.lines().rev().find(|l| l.contains("firewall in place")).expect("reconcile line");
    let field = |k: &str| {
        line.split(&format!("{k}="))
            .nth(1)
            .and_then(|r| r.split(|c: char| c.is_whitespace() || c == '\u{1b}').next())
            .unwrap_or("")
            .to_owned()
    };
    (field("result"), field("elapsed_ms").parse().unwrap_or(f64::NAN))
}

fn rule_body(port: u32) -> String {
    format!(r#"{{"action":"allow","protocol":"tcp","destination":"203.0.113.0/24","destination_port":"{port}"}}"#)
}

/// Rule add and delete latency through the API with `present` containers, `rounds` each.
fn rule_latency(w: &World, target: &str, rounds: usize) -> (Vec<f64>, Vec<f64>) {
    let http = w.http();
    let (mut add, mut del) = (vec![], vec![]);
    for i in 0..rounds {
        let t = Instant::now();
        let r = http.post(&format!("/containers/{target}/firewall/egress"), &rule_body(20000 + i as u32));
        add.push(ms(t.elapsed()));
        assert_eq!(r.status, 201, "{r:?}");
        let rid = r.json()["data"]["id"].as_str().expect("rule id").to_owned();
        let t = Instant::now();
        let r = http.request("DELETE", &format!("/containers/{target}/firewall/egress/{rid}"), b"");
        del.push(ms(t.elapsed()));
        assert_eq!(r.status, 200, "{r:?}");
    }
    (add, del)
}

/// Firewall reset latency: three rules added (not timed), then the reset, `rounds` times.
fn reset_latency(w: &World, target: &str, rounds: usize) -> Vec<f64> {
    let http = w.http();
    let mut out = vec![];
    for i in 0..rounds {
        for k in 0..3 {
            let r = http.post(&format!("/containers/{target}/firewall/egress"), &rule_body(30000 + (i * 3 + k) as u32));
            assert_eq!(r.status, 201, "{r:?}");
        }
        let t = Instant::now();
        let r = http.post(&format!("/containers/{target}/firewall/reset"), "{}");
        out.push(ms(t.elapsed()));
        assert!(r.status < 300, "{r:?}");
    }
    out
}

/// Create (not started) and delete latency of a container, `rounds` each.
fn create_delete_latency(w: &World, rounds: usize) -> (Vec<f64>, Vec<f64>) {
    let http = w.http();
    let (mut create, mut delete) = (vec![], vec![]);
    for i in 0..rounds {
        let t = Instant::now();
        let r = http.post("/containers", &format!(r#"{{"name":"cd{i}","image":"busybox"}}"#));
        create.push(ms(t.elapsed()));
        assert_eq!(r.status, 201, "{r:?}");
        let id = r.json()["data"]["id"].as_str().expect("id").to_owned();
        let t = Instant::now();
        let r = http.request("DELETE", &format!("/containers/{id}"), b"");
        delete.push(ms(t.elapsed()));
        assert!(r.status < 300, "{r:?}");
    }
    (create, delete)
}

/// The kernel-transaction times (ms) the daemon logged after byte `from` of its log.
fn transaction_ms(w: &World, from: usize) -> Vec<f64> {
    let log = w.daemon_log();
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("nftables transaction applied"))
        .filter_map(|l| l.split("elapsed_us=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<f64>().ok())
        .map(|us| us / 1000.0)
        .collect()
}

/// A `key=value` number of the last log line containing `what`.
fn logged(w: &World, what: &str, key: &str) -> f64 {
    let log = w.daemon_log();
    let line = log.lines().rev().find(|l| l.contains(what)).unwrap_or("");
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time (user, system) in ms of the children waited for so far.
fn children_cpu_ms() -> (f64, f64) {
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1000.0 + tv.tv_usec() as f64 / 1000.0;
    (t(ru.user_time()), t(ru.system_time()))
}

fn firewall_bench(rules_per_container: usize) {
    let mut w = World::with_flags(Driver::Btrfs, &["--subnet", "10.78.0.0/16"]);
    let r = w.http().post("/containers", r#"{"name":"f0","image":"busybox"}"#);
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["data"]["id"].as_str().expect("id").to_owned();
    let mut rows = vec![];
    let mut medians: Vec<(usize, [f64; 6])> = vec![];
    let hook = "HOODY_TEST_FIREWALL_ONLY";
    let set_present = |w: &mut World, n: usize| {
        w.stop_daemon();
        w.env.retain(|(k, _)| k != hook);
        w.env.push((hook.into(), format!("{}:{rules_per_container}", n - 1)));
        w.start_daemon();
    };
    // HOODY_BENCH_FW_COUNTS=1,10000 measures only those counts (a quicker look).
    let counts: Vec<usize> = std::env::var("HOODY_BENCH_FW_COUNTS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1000, 10_000]);
    for &present in &counts {
        set_present(&mut w, present);
        let mark = w.daemon_log().len();
        let (add, del) = rule_latency(&w, &id, 30);
        let txn = transaction_ms(&w, mark);
        for l in w.daemon_log().get(mark..).unwrap_or("").lines().filter(|l| l.contains("elements synced")).take(6) {
            eprintln!("{present}: {}", l.split("DEBUG").nth(1).unwrap_or(l));
        }
        let reset = reset_latency(&w, &id, 15);
        let (create, delete) = create_delete_latency(&w, 10);
        medians.push((present, [median(&add), median(&del), median(&reset), median(&create), median(&delete), median(&txn)]));
        for (what, samples) in [
            ("rule add", add),
            ("rule delete", del),
            ("firewall reset (3 rules)", reset),
            ("create (not started)", create),
            ("delete", delete),
            ("kernel transaction of a rule add/delete", txn),
        ] {
            rows.push(Row { what: format!("{what}, {present} containers × {rules_per_container} rules"), tool: "hoody".into(), samples });
        }
    }
    // Rebuild of 1,000 containers × R rules from the state store vs `nft -f` of the same table.
    set_present(&mut w, 1000);
    let nft_file = w.dir.join("ruleset.nft");
    let listing = hoody_e2e::run("ip", &["netns", "exec", &w.host_ns, "nft", "list", "table", "inet", "hoody"]);
    std::fs::write(&nft_file, &listing).expect("ruleset");
    let scratch = hoody_e2e::netns::NetNs::new(&format!("hoody-e2e-{}-nftf", w.tag));
    let (mut in_place, mut rebuilt, mut userspace, mut nft_f, mut nft_user) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        w.stop_daemon();
        w.start_daemon();
        let (how, t) = last_reconcile(&w);
        assert!(how.contains("InPlace"), "{how}");
        in_place.push(t);
        w.stop_daemon();
        hoody_e2e::run("ip", &["netns", "exec", &w.host_ns, "nft", "delete", "table", "inet", "hoody"]);
        w.start_daemon();
        let (how, _) = last_reconcile(&w);
        assert!(how.contains("Rebuilt"), "{how}");
        let (compile, dump, apply) = (
            logged(&w, "firewall rebuilt", "compile_us"),
            logged(&w, "firewall rebuilt", "dump_us"),
            logged(&w, "firewall rebuilt", "apply_us"),
        );
        let built = logged(&w, "nftables transaction applied", "built_us");
        // compile + apply (the dump of the missing table before it excluded), and hoody's own
        // userspace part of it: compiling and encoding the batch.
        rebuilt.push((compile + apply - dump) / 1000.0);
        userspace.push((compile + built) / 1000.0);
        let _ = scratch.exec(&["nft", "delete", "table", "inet", "hoody"]);
        let before = children_cpu_ms();
        let t = Instant::now();
        let out = scratch.exec(&["nft", "-f", &nft_file.to_string_lossy()]);
        nft_f.push(ms(t.elapsed()));
        nft_user.push(children_cpu_ms().0 - before.0);
        assert!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
    }
    let n = 1000;
    let r = rules_per_container;
    rows.push(Row {
        what: format!("start-up reconcile, {n} containers × {r} rules, table already right"),
        tool: "hoody".into(),
        samples: in_place,
    });
    rows.push(Row {
        what: format!("rebuild, {n} containers × {r} rules (compile + one transaction)"),
        tool: "hoody".into(),
        samples: rebuilt.clone(),
    });
    rows.push(Row { what: format!("rebuild, {n} × {r}: userspace (compile + encode)"), tool: "hoody".into(), samples: userspace.clone() });
    rows.push(Row { what: format!("load of the same table from a file ({n} × {r})"), tool: "nft -f".into(), samples: nft_f.clone() });
    rows.push(Row {
        what: format!("load of the same table: nft's userspace CPU ({n} × {r})"),
        tool: "nft -f".into(),
        samples: nft_user.clone(),
    });
    println!("## Firewall (nftables, one fixed table; containers as set elements)\n");
    print!("{}", table(&rows));
    let one = medians[0].1;
    let names = ["rule add", "rule delete", "reset", "create", "delete", "kernel transaction"];
    let mut ratio_lines = vec![];
    let mut worst: f64 = 0.0;
    for (present, m) in &medians[1..] {
        let parts: Vec<String> = names.iter().zip(m.iter().zip(one.iter())).map(|(n, (v, b))| format!("{n} {:.2}×", v / b)).collect();
        if *present == 10_000 {
            worst = m.iter().zip(one.iter()).map(|(v, b)| v / b).fold(0.0, f64::max);
        }
        ratio_lines.push(format!("{present}: {}", parts.join(", ")));
    }
    println!(
        "\nMedian at N containers / median at 1 — {}. Target ≤ 1.3× at 10,000: {} (worst {worst:.2}×). Rebuild {:.0} ms vs nft -f {:.0} ms (target ≤ 1×: {}); userspace {:.0} ms vs nft's {:.0} ms (target ≤ 0.5×: {}).",
        ratio_lines.join("; "),
        verdict(worst <= 1.3),
        median(&rebuilt),
        median(&nft_f),
        verdict(median(&rebuilt) <= median(&nft_f)),
        median(&userspace),
        median(&nft_user),
        verdict(median(&userspace) <= 0.5 * median(&nft_user)),
    );
}

/// Where a stopped container's files can be written from the host.
fn data_dir(w: &World, driver: Driver, id: &str) -> std::path::PathBuf {
    let c = w.storage_dir.join("containers").join(id);
    match driver {
        Driver::Btrfs => c.join("rootfs/data"),
        Driver::Overlay => c.join("upper/data"),
    }
}

fn fill(dir: &std::path::Path, files: usize, size: usize) {
    let chunk = vec![7u8; size];
    for i in 0..files {
        let d = dir.join(format!("d{}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&d).expect("dir");
        }
        std::fs::write(d.join(format!("f{i}")), &chunk).expect("file");
    }
    hoody_e2e::run("sync", &[]);
}

fn snapshots_bench(driver: Driver) {
    let w = World::with_disk(driver, "16G");
    let http = w.http();
    let mut rows = vec![];
    let mut notes = vec![];
    let (mut worst_create, mut worst_restore, mut diff_100k) = (0.0f64, 0.0f64, 0.0f64);
    for (label, files, size) in
        [("10 MB in 10 files", 10usize, 1usize << 20), ("1 GB in 16 files", 16, 64 << 20), ("100,000 files", 100_000, 100)]
    {
        let r = http.post("/containers", &format!(r#"{{"name":"s{files}","image":"busybox"}}"#));
        assert_eq!(r.status, 201, "{r:?}");
        let id = r.json()["data"]["id"].as_str().expect("id").to_owned();
        let dir = data_dir(&w, driver, &id);
        fill(&dir, files, size);
        let (mut create, mut restore, mut cp) = (vec![], vec![], vec![]);
        for i in 0..3 {
            let t = Instant::now();
            let r = http.post(&format!("/containers/{id}/snapshots"), &format!(r#"{{"alias":"s{i}"}}"#));
            create.push(ms(t.elapsed()));
            assert_eq!(r.status, 201, "{r:?}");
            let dst = w.dir.join(format!("cp{i}"));
            let t = Instant::now();
            hoody_e2e::run("cp", &["-a", "--reflink=auto", &dir.to_string_lossy(), &dst.to_string_lossy()]);
            cp.push(ms(t.elapsed()));
            hoody_e2e::run("rm", &["-rf", &dst.to_string_lossy()]);
        }
        // 100 changes, then the diff against the first snapshot.
        for i in 0..100 {
            let d = dir.join(format!("d{}", (i % files) / 1000));
            std::fs::write(d.join(format!("changed{i}")), b"new").expect("change");
        }
        let mut diff = vec![];
        let mut changes = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let r = http.get(&format!("/containers/{id}/snapshots/s0/diff"));
            diff.push(ms(t.elapsed()));
            assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
            changes = r.json()["data"]["changes"].as_array().map(|a| a.len()).unwrap_or(0);
        }
        for i in 0..4 {
            let t = Instant::now();
            let r = http.request("PATCH", &format!("/containers/{id}/snapshots/s{}", 1 + i % 2), b"");
            restore.push(ms(t.elapsed()));
            assert_eq!(r.status, 200, "{r:?}");
        }
        notes.push(format!("{label}: diff found {changes} changes"));
        worst_create = worst_create.max(median(&create));
        worst_restore = worst_restore.max(median(&restore));
        if files == 100_000 {
            diff_100k = median(&diff);
        }
        let d = driver.name();
        rows.push(Row { what: format!("snapshot create, {label}, {d}"), tool: "hoody".into(), samples: create });
        rows.push(Row { what: format!("restore (stopped), {label}, {d}"), tool: "hoody".into(), samples: restore });
        rows.push(Row { what: format!("diff with 100 changes, {label}, {d}"), tool: "hoody".into(), samples: diff });
        rows.push(Row { what: format!("copy of the same data, {label}"), tool: "cp -a --reflink=auto".into(), samples: cp });
        let r = http.request("DELETE", &format!("/containers/{id}"), b"");
        assert_eq!(r.status, 200, "{r:?}");
        hoody_e2e::run("sync", &[]);
    }
    println!("## Snapshots, {} driver\n", driver.name());
    print!("{}", table(&rows));
    println!("\n{}.", notes.join("; "));
    if driver == Driver::Btrfs {
        println!(
            "\nTargets (btrfs, medians at the worst size): snapshot ≤ 20 ms — {worst_create:.1} ms, {}; restore ≤ 50 ms — {worst_restore:.1} ms, {}; diff of 100,000 files with 100 changes ≤ 1 s — {diff_100k:.0} ms, {}.",
            verdict(worst_create <= 20.0),
            verdict(worst_restore <= 50.0),
            verdict(diff_100k <= 1000.0)
        );
    } else {
        println!(
            "\nNo targets for the overlay driver: without reflinks a snapshot copies the upper directory, so its cost grows with the data."
        );
    }
}

/// A keep-alive HTTP/1.1 client of the daemon's socket, as a control plane would hold one.
struct KeepAlive {
    r: BufReader<std::os::unix::net::UnixStream>,
    token: Option<String>,
}

impl KeepAlive {
    fn connect(socket: &std::path::Path, token: Option<&str>) -> KeepAlive {
        KeepAlive { r: BufReader::new(std::os::unix::net::UnixStream::connect(socket).expect("connect")), token: token.map(str::to_owned) }
    }

    /// `method path` with a JSON `body` (none when empty); the status and the round trip in ms.
    fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, f64) {
        let auth = self.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let sent =
            if body.is_empty() { String::new() } else { format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()) };
        let t = Instant::now();
        write!(self.r.get_mut(), "{method} /api/v1{path} HTTP/1.1\r\nHost: hoodyd\r\n{auth}{sent}\r\n{body}").expect("write");
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0u8; len];
        std::io::Read::read_exact(&mut self.r, &mut body).expect("body");
        (status, ms(t.elapsed()))
    }
}

/// A world with `n` containers (created, not started) in one realm, and a token of that realm;
/// its daemon without the audit log, or another binary, when asked.
fn api_world(n: usize, audit: bool, daemon: Option<std::path::PathBuf>) -> (World, Vec<String>, String) {
    let mut w = World::new(Driver::Btrfs);
    if !audit || daemon.is_some() {
        if !audit {
            w.env.push(("HOODY_BENCH_NO_AUDIT".into(), "1".into()));
        }
        w.stop_daemon();
        w.daemon_bin = daemon;
        w.start_daemon();
    }
    let realm = w.ok(&["realms", "create"])["id"].as_str().unwrap().to_owned();
    let token = w.ok(&["tokens", "create", "--realm", &realm])["token"].as_str().unwrap().to_owned();
    let ids = w.api(async |c| {
        let mut ids = vec![];
        for i in 0..n {
            let req = hoody_api::containers::CreateContainer {
                name: format!("c{i}"),
                image: "busybox".into(),
                realm_ids: vec![realm.clone()],
                ..Default::default()
            };
            ids.push(c.create_container(&req, false).await.expect("create").id);
        }
        ids
    });
    (w, ids, token)
}

/// `clients` threads, each on its own keep-alive connection, each sending `per_client` GETs of
/// `path(i)`; returns every latency and the requests per second.
fn hammer(w: &World, token: Option<&str>, clients: usize, per_client: usize, path: &(dyn Fn(usize) -> String + Sync)) -> (Vec<f64>, f64) {
    hammer_with(w, token, clients, per_client, "GET", "", path)
}

/// [`hammer`] with any method and JSON body.
fn hammer_with(
    w: &World,
    token: Option<&str>,
    clients: usize,
    per_client: usize,
    method: &str,
    body: &str,
    path: &(dyn Fn(usize) -> String + Sync),
) -> (Vec<f64>, f64) {
    let t = Instant::now();
    let all: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut k = KeepAlive::connect(&w.socket, token);
                    (0..per_client)
                        .map(|i| {
                            let (status, ms) = k.request(method, &path(c * per_client + i), body);
                            assert_eq!(status, 200);
                            ms
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().expect("client")).collect()
    });
    let rps = all.len() as f64 / t.elapsed().as_secs_f64();
    (all, rps)
}

/// One daemon the API benchmark measures: what it is, its world, its containers and a token.
type ApiSide = (&'static str, World, Vec<String>, String);

/// Latencies of the three request kinds on two daemons, rounds alternating between them;
/// returns per kind the paired ratio of the medians (first / second) and the worst p99 of the
/// first.
fn api_rounds(sides: &[ApiSide; 2], clients: usize) -> (Vec<f64>, f64) {
    let rounds = 10;
    let per_client = 50;
    let kinds = ["GET /containers (admin)", "GET /containers/{id} (admin)", "GET /containers/{id} (token)"];
    let mut samples: Vec<[Vec<f64>; 2]> = kinds.iter().map(|_| [vec![], vec![]]).collect();
    let mut rps: Vec<[Vec<f64>; 2]> = kinds.iter().map(|_| [vec![], vec![]]).collect();
    // Per round and kind, the median of each side (paired, for the ratio).
    let mut round_medians: Vec<[Vec<f64>; 2]> = kinds.iter().map(|_| [vec![], vec![]]).collect();
    for _ in 0..rounds {
        for (side, (_, w, ids, token)) in sides.iter().enumerate() {
            let list = |_: usize| "/containers".to_string();
            let one = |i: usize| format!("/containers/{}", ids[i % ids.len()]);
            for (k, (tok, path)) in
                [(None, &list as &(dyn Fn(usize) -> String + Sync)), (None, &one), (Some(token.as_str()), &one)].into_iter().enumerate()
            {
                let (lat, r) = hammer(w, tok, clients, per_client, path);
                round_medians[k][side].push(median(&lat));
                samples[k][side].extend(lat);
                rps[k][side].push(r);
            }
        }
    }
    println!(
        "{} containers in the store, {clients} concurrent clients on keep-alive connections, {rounds} rounds of {} requests per measurement, alternating between the two daemons.\n",
        sides[0].2.len(),
        clients * per_client
    );
    println!("| request | daemon | median ms | p50 ms | p99 ms | requests/s |\n|---|---|---|---|---|---|");
    let mut ratios = vec![];
    let mut worst_p99 = 0.0f64;
    for (k, kind) in kinds.iter().enumerate() {
        for (side, (label, ..)) in sides.iter().enumerate() {
            let s = &samples[k][side];
            let p50 = percentile(s, 50.0);
            println!("| {kind} | {label} | {:.2} | {p50:.2} | {:.2} | {:.0} |", median(s), percentile(s, 99.0), median(&rps[k][side]));
        }
        worst_p99 = worst_p99.max(percentile(&samples[k][0], 99.0));
        ratios.push(paired_ratio(&round_medians[k][0], &round_medians[k][1]));
    }
    (ratios, worst_p99)
}

fn api_bench(n: usize, clients: usize) {
    let (on, on_ids, on_token) = api_world(n, true, None);
    let (off, off_ids, off_token) = api_world(n, false, None);
    println!("## API under load\n");
    println!("The daemon with the audit log (as shipped) against one with `HOODY_BENCH_NO_AUDIT=1`.\n");
    let kinds = ["GET /containers (admin)", "GET /containers/{id} (admin)", "GET /containers/{id} (token)"];
    let (ratios, worst_p99) = api_rounds(&[("audit on", on, on_ids, on_token), ("audit off", off, off_ids, off_token)], clients);
    let overheads: Vec<f64> = ratios.iter().map(|r| (r - 1.0) * 100.0).collect();
    let worst_overhead = overheads.iter().copied().fold(f64::MIN, f64::max);
    let list: Vec<String> = kinds.iter().zip(&overheads).map(|(k, o)| format!("{k}: {o:+.0} %")).collect();
    println!(
        "\nAudit overhead on the median (median of per-round ratios): {}. Targets: p99 ≤ 10 ms — worst {worst_p99:.2} ms, {}; audit overhead ≤ 20 % of the median — worst {worst_overhead:+.0} %, {}.",
        list.join("; "),
        verdict(worst_p99 <= 10.0),
        verdict(worst_overhead <= 20.0)
    );
}

/// This build's daemon against an earlier one (`baseline`, a hoodyd binary), both with the
/// audit log: what a change did to the API's latency.
fn api_baseline_bench(baseline: &str, n: usize, clients: usize) {
    let (now, now_ids, now_token) = api_world(n, true, None);
    let (then, then_ids, then_token) = api_world(n, true, Some(baseline.into()));
    println!("## API against the previous build\n");
    println!("This build's hoodyd against `{baseline}` (the build before), both with the audit log.\n");
    let kinds = ["GET /containers (admin)", "GET /containers/{id} (admin)", "GET /containers/{id} (token)"];
    let (ratios, _) = api_rounds(&[("this build", now, now_ids, now_token), ("previous", then, then_ids, then_token)], clients);
    let list: Vec<String> = kinds.iter().zip(&ratios).map(|(k, r)| format!("{k}: {r:.2}×")).collect();
    println!("\nThis build / previous, median of per-round ratios of the medians: {}.", list.join("; "));
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() {
    // Daemons under measurement do not log their answers for the tests' schema check.
    hoody_e2e::CHECK_ANSWERS.store(false, std::sync::atomic::Ordering::Relaxed);
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("peer-runner") => peers::peer_runner(),
        Some("density") => density::density_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200)),
        Some("packets") => packets::packet_bench(5),
        Some("exec") => exec::exec_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200)),
        Some("fork") => fork::fork_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100)),
        Some("dns") => dns::dns_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5)),
        Some("peers") => peers::peers_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(30)),
        Some("lifecycle") => lifecycle(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(50)),
        Some("firewall") => firewall_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10)),
        Some("api") => {
            api_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200), args.get(3).and_then(|n| n.parse().ok()).unwrap_or(16))
        }
        Some("api-baseline") => api_baseline_bench(
            &args
                .get(2)
                .cloned()
                .or_else(|| std::env::var("HOODY_BENCH_BASELINE_BIN").ok())
                .expect("usage: hoody-bench api-baseline HOODYD [CONTAINERS] [CLIENTS] (or HOODY_BENCH_BASELINE_BIN=HOODYD)"),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(200),
            args.get(4).and_then(|n| n.parse().ok()).unwrap_or(16),
        ),
        Some("events") => events::events_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100)),
        Some("console") => console::console_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5)),
        Some("durability") => durability::durability_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(15)),
        Some("hostile-tree") => hostile_tree::hostile_tree_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10)),
        Some("quotas") => quotas::quotas_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20)),
        Some("restart") => restart::restart_bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100), 5),
        Some("snapshots") => {
            snapshots_bench(Driver::Btrfs);
            println!();
            snapshots_bench(Driver::Overlay);
        }
        _ => {
            eprintln!(
                "usage: hoody-bench lifecycle [N] | firewall [RULES_PER_CONTAINER] | snapshots | quotas [ROUNDS] | hostile-tree [ROUNDS] | durability [ROUNDS] | console [ROUNDS] | api [CONTAINERS] | events [SUBSCRIBERS] | api-baseline HOODYD [CONTAINERS] | restart [CONTAINERS]"
            );
            std::process::exit(2);
        }
    }
}
