//! Daemon restarts and boots with many containers (issue 7): how long until systemd hears
//! READY=1 and until the API answers, with every container running on and adopted; and, at a
//! simulated boot (every process, interface and the table gone, a new boot id), how long until
//! all autostart containers run again.

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use hoody_e2e::stats::{Row, median, ms, table};
use hoody_e2e::{Driver, World, eventually, run};

/// Times from `t0` to READY=1 on `notify` and to the first 200 of GET /health.
fn time_start(w: &mut World, notify: &UnixDatagram) -> (f64, f64) {
    let http = w.http();
    // What the previous daemon said (its READY=1, STOPPING=1) is not this one's.
    let mut buf = [0u8; 512];
    notify.set_nonblocking(true).expect("nonblocking");
    while notify.recv(&mut buf).is_ok() {}
    notify.set_nonblocking(false).expect("blocking");
    let t0 = Instant::now();
    let (ready, api) = std::thread::scope(|s| {
        let ready = s.spawn(|| {
            let mut buf = [0u8; 512];
            loop {
                let n = match notify.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("notify socket: {e}"),
                };
                if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                    return ms(t0.elapsed());
                }
            }
        });
        let api = s.spawn(|| {
            let deadline = t0 + Duration::from_secs(60);
            loop {
                if UnixStream::connect(&http.socket).is_ok() && http.get("/health").status == 200 {
                    return ms(t0.elapsed());
                }
                assert!(Instant::now() < deadline, "the API never answered");
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        w.start_daemon();
        (ready.join().expect("ready"), api.join().expect("api"))
    });
    (ready, api)
}

fn running(w: &World) -> usize {
    let r = w.http().get("/containers");
    r.json()["data"].as_array().map(|a| a.iter().filter(|c| c["status"] == "running").count()).unwrap_or(0)
}

pub fn restart_bench(n: usize, rounds: usize) {
    let mut w = World::with_net(Driver::Btrfs);
    let notify_path = w.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let boot_id = w.dir.join("boot_id");
    std::fs::write(&boot_id, "boot-0").expect("boot id");
    w.env = vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string()), ("HOODY_BOOT_ID_FILE".into(), boot_id.display().to_string())];
    w.stop_daemon();
    w.start_daemon();
    let http = w.http();
    let t = Instant::now();
    for i in 0..n {
        let r = http.post("/containers?start=true", &format!(r#"{{"name":"r{i}","image":"busybox","autostart":true}}"#));
        assert_eq!(r.status, 201, "{r:?}");
    }
    let create_all = ms(t.elapsed());
    assert_eq!(running(&w), n);

    let (mut term_ready, mut term_api, mut kill_ready, mut kill_api) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        w.stop_daemon();
        let (r, a) = time_start(&mut w, &notify);
        term_ready.push(r);
        term_api.push(a);
        w.kill_daemon();
        let (r, a) = time_start(&mut w, &notify);
        kill_ready.push(r);
        kill_api.push(a);
        assert_eq!(running(&w), n, "a restart stopped containers");
    }

    let (mut boot_ready, mut boot_api, mut boot_all) = (vec![], vec![], vec![]);
    for round in 0..rounds.min(3) {
        // The reboot: the daemon and every container process go (their network namespaces,
        // and with them the veths, go too), the table goes, the boot id changes.
        let pids: Vec<i64> =
            http.get("/containers").json()["data"].as_array().expect("list").iter().filter_map(|c| c["pid"].as_i64()).collect();
        w.kill_daemon();
        for e in std::fs::read_dir(&w.cgroup).expect("cgroup root").flatten() {
            let _ = std::fs::write(e.path().join("cgroup.kill"), "1");
        }
        eventually("the old boot's processes to go", || pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()));
        run("ip", &["netns", "exec", &w.host_ns, "nft", "delete table inet hoody"]);
        std::fs::write(&boot_id, format!("boot-{}", round + 1)).expect("boot id");
        let t0 = Instant::now();
        let (r, a) = time_start(&mut w, &notify);
        let deadline = Instant::now() + Duration::from_secs(300);
        while running(&w) < n {
            assert!(Instant::now() < deadline, "autostart did not start them all");
            std::thread::sleep(Duration::from_millis(5));
        }
        boot_all.push(ms(t0.elapsed()));
        boot_ready.push(r);
        boot_api.push(a);
    }
    println!("## Daemon restart and boot with {n} running containers (issue 7; network and deny-all firewall each)\n");
    let row = |what: &str, v: &Vec<f64>| Row { what: what.into(), tool: "hoody".into(), samples: v.clone() };
    print!(
        "{}",
        table(&[
            row("restart (SIGTERM): start → READY=1", &term_ready),
            row("restart (SIGTERM): start → API answers", &term_api),
            row("restart after kill -9: start → READY=1", &kill_ready),
            row("restart after kill -9: start → API answers", &kill_api),
            row(&format!("boot: start → READY=1 (table rebuilt, {n} autostart)"), &boot_ready),
            row("boot: start → API answers", &boot_api),
            row(&format!("boot: start → all {n} running"), &boot_all),
        ])
    );
    let worst = median(&term_api).max(median(&kill_api));
    println!(
        "\nCreating and starting the {n} took {create_all:.0} ms. Target: restart to API answering ≤ 1,000 ms — median {worst:.0} ms, {}.",
        if worst <= 1000.0 { "met" } else { "MISSED" }
    );
}
