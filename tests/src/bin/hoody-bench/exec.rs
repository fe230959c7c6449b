//! Exec (issue 18), side by side in one run: `true` to its exit status through hoodyd (the JSON
//! mode over the socket, and `hoodyctl exec` as a person types it) against `nsenter --all -t PID
//! true` (the floor: joining the namespaces and nothing else) and `crun exec` of a crun
//! container from the same root file system; then exec throughput with 16 concurrent clients.

use std::time::{Duration, Instant};

use hoody_e2e::stats::{Row, median, ms, paired_ratio, percentile, table};
use hoody_e2e::{Driver, World};

pub fn exec_bench(rounds: usize) {
    let w = World::new(Driver::Btrfs);
    let http = w.http();
    let c = w.ok(&["containers", "create", "--name", "target", "--image", "busybox", "--start"]);
    let (cid, pid) = (c["id"].as_str().expect("id").to_owned(), c["pid"].as_i64().expect("pid").to_string());
    // The same daemon keeping no spare exec shims (every shim started cold), side by side.
    let mut cold = World::new(Driver::Btrfs);
    cold.env.push(("HOODY_EXEC_SPARES".into(), "0".into()));
    cold.stop_daemon();
    cold.start_daemon();
    let cold_http = cold.http();
    let cold_cid =
        cold.ok(&["containers", "create", "--name", "target", "--image", "busybox", "--start"])["id"].as_str().expect("id").to_owned();
    let cold_socket = cold.socket.display().to_string();
    let bundle = super::peers::oci_bundle(&w.dir.join("crun"), &super::peers::shifted_rootfs(&w), None);
    let state = w.dir.join("crun-state").display().to_string();
    let mut runner = super::peers::Runner::spawn(&w.host_ns);
    let crun = |runner: &mut super::peers::Runner, args: &[&str]| {
        let mut a = vec!["crun", "--root", &state, "--cgroup-manager=disabled"];
        a.extend_from_slice(args);
        runner.time(&a)
    };
    crun(&mut runner, &["run", "-d", "--bundle", &bundle, "peer"]);
    let hoodyctl = hoody_e2e::bin_dir().join("hoodyctl").display().to_string();
    let socket = w.socket.display().to_string();
    let (mut json, mut ctl, mut ns, mut cr) = (vec![], vec![], vec![], vec![]);
    let (mut json_cold, mut ctl_cold) = (vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        let r = http.post(&format!("/containers/{cid}/exec"), r#"{"command":["true"]}"#);
        json.push(ms(t.elapsed()));
        assert_eq!((r.status, r.json()["data"]["exit_code"].as_i64()), (200, Some(0)), "{r:?}");
        ctl.push(runner.time(&[&hoodyctl, "--socket", &socket, "exec", "-c", &cid, "--", "true"]));
        ns.push(runner.time(&["nsenter", "--all", "-t", &pid, "true"]));
        cr.push(crun(&mut runner, &["exec", "peer", "true"]));
        let t = Instant::now();
        let r = cold_http.post(&format!("/containers/{cold_cid}/exec"), r#"{"command":["true"]}"#);
        json_cold.push(ms(t.elapsed()));
        assert_eq!((r.status, r.json()["data"]["exit_code"].as_i64()), (200, Some(0)), "{r:?}");
        ctl_cold.push(runner.time(&[&hoodyctl, "--socket", &cold_socket, "exec", "-c", &cold_cid, "--", "true"]));
    }
    crun(&mut runner, &["delete", "-f", "peer"]);
    drop(runner);
    let rows = vec![
        Row { what: "exec true (to its exit status)".into(), tool: "hoody, JSON over the socket".into(), samples: json.clone() },
        Row { what: "exec true (to its exit status)".into(), tool: "hoodyctl exec".into(), samples: ctl.clone() },
        Row { what: "exec true (to its exit status)".into(), tool: "hoody, JSON, no spare shims".into(), samples: json_cold.clone() },
        Row { what: "exec true (to its exit status)".into(), tool: "hoodyctl exec, no spare shims".into(), samples: ctl_cold.clone() },
        Row { what: "exec true (to its exit status)".into(), tool: "nsenter --all -t PID (floor)".into(), samples: ns.clone() },
        Row { what: "exec true (to its exit status)".into(), tool: "crun exec".into(), samples: cr.clone() },
    ];
    println!("## Exec, {rounds} rounds (each round visits every tool in turn)\n");
    print!("{}", table(&rows));
    let r = paired_ratio(&ctl, &ns);
    println!(
        "\nhoodyctl exec / nsenter paired ratio {r:.2}× (target ≤ 2×: {}); JSON mode / nsenter {:.2}×; hoodyctl exec / crun exec {:.2}×. hoodyctl exec p50 {:.2} ms, p95 {:.2} ms.\n",
        if r <= 2.0 { "met" } else { "MISSED" },
        paired_ratio(&json, &ns),
        paired_ratio(&ctl, &cr),
        median(&ctl),
        percentile(&ctl, 95.0)
    );
    println!(
        "Spare shims against none (every shim started cold), paired: JSON mode {:.2}×, hoodyctl exec {:.2}×; without them hoodyctl exec / nsenter {:.2}×.\n",
        paired_ratio(&json, &json_cold),
        paired_ratio(&ctl, &ctl_cold),
        paired_ratio(&ctl_cold, &ns)
    );
    drop(cold);
    // Throughput: 16 clients, each running `true` in a loop for 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let t0 = Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (http, cid) = (w.http(), cid.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let r = http.post(&format!("/containers/{cid}/exec"), r#"{"command":["true"]}"#);
                    assert_eq!(r.status, 200, "{r:?}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().expect("client")).sum();
    println!("Exec throughput, 16 concurrent clients, 5 s: {:.0} execs/s ({total} in all).", total as f64 / t0.elapsed().as_secs_f64());
}
