//! The peer tools, run side by side with hoody in the same world: podman (rootful, bridge
//! network through netavark), crun and runc (OCI bundles), lxc-execute (veth on a bridge) and
//! systemd-nspawn (--network-veth). Every peer runs inside the world's host network namespace
//! (its bridges, veths and firewall rules never reach the machine's) and a private mount
//! namespace with a legacy cgroup v1 view and that namespace's sysfs; the machine's own mounts
//! are never changed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use hoody_e2e::stats::{Row, median, ms, paired_ratio, percentile, table};
use hoody_e2e::{Driver, World, run};

/// Inside the peers' private mount namespace: this network namespace's sysfs, and the machine's
/// cgroup v1 hierarchies mounted again on a fresh tmpfs (the same kernel hierarchies, without
/// the hybrid `unified` mount that crun, runc and podman refuse or misread).
const SETUP: &str = r#"
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
# Only controllers already in a v1 hierarchy (hierarchy id ≠ 0): nothing is bound anew.
for c in $(awk '!/^#/ && $2 != 0 && $4 == 1 {print $1}' /proc/cgroups); do
    mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c 2>/dev/null || rmdir /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd 2>/dev/null
"#;

/// A process in the world's network namespace and a private mount namespace that runs the
/// commands it is sent, one at a time, and answers with the elapsed microseconds.
pub struct Runner {
    child: Child,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
}

impl Runner {
    pub fn spawn(netns: &str) -> Runner {
        let me = std::env::current_exe().expect("exe");
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["unshare", "-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("{SETUP}\nexec \"$0\" peer-runner"))
            .arg(me)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the peer runner");
        let tx = child.stdin.take().expect("stdin");
        let rx = BufReader::new(child.stdout.take().expect("stdout"));
        Runner { child, tx, rx }
    }

    /// Runs `argv`; its wall time in milliseconds. Panics with its stderr if it fails.
    pub fn time(&mut self, argv: &[&str]) -> f64 {
        writeln!(self.tx, "{}", serde_json::to_string(argv).expect("json")).expect("runner stdin");
        let mut ans = String::new();
        self.rx.read_line(&mut ans).expect("runner answer");
        match ans.trim().parse::<f64>() {
            Ok(us) => us / 1000.0,
            Err(_) => panic!("{argv:?}: {}", ans.trim()),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = writeln!(self.tx, "[]");
        let _ = self.child.wait();
    }
}

/// The runner's side: one JSON array of arguments per line; an empty one ends it.
pub fn peer_runner() {
    // Errors go to a file, not a pipe: detached containers (and podman's conmon) inherit the
    // descriptor and would hold a pipe open for as long as they run.
    let err_path = std::env::temp_dir().join(format!("hoody-peer-runner-{}.err", std::process::id()));
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let argv: Vec<String> = serde_json::from_str(&line.expect("line")).expect("argv");
        let Some((prog, args)) = argv.split_first() else { break };
        let err = std::fs::File::create(&err_path).expect("stderr file");
        let t = Instant::now();
        let status = Command::new(prog).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err).status();
        let us = t.elapsed().as_micros();
        match status {
            Ok(s) if s.success() => println!("{us}"),
            Ok(s) => println!("failed ({s}): {}", std::fs::read_to_string(&err_path).unwrap_or_default().replace('\n', " | ")),
            Err(e) => println!("could not run {prog}: {e}"),
        }
        std::io::stdout().flush().expect("flush");
    }
    let _ = std::fs::remove_file(&err_path);
}

/// The first id of the private range every peer maps its root to, as hoody does.
const ID_BASE: u32 = 3_000_000;

/// A copy of the world's busybox image owned by the mapped range (what lxc, nspawn and
/// podman's --uidmap expect), with the /usr nspawn looks for.
pub fn shifted_rootfs(w: &World) -> PathBuf {
    let rootfs = w.dir.join("peer-rootfs");
    run("cp", &["-a", &w.storage_dir.join("images/busybox").to_string_lossy(), &rootfs.to_string_lossy()]);
    std::fs::create_dir_all(rootfs.join("usr")).expect("usr");
    run("chown", &["-R", "--no-dereference", &format!("{ID_BASE}:{ID_BASE}"), &rootfs.to_string_lossy()]);
    rootfs
}

/// An OCI bundle over `rootfs`: a user namespace like hoody's, `sleep` as init.
pub fn oci_bundle(dir: &Path, rootfs: &Path, cgroups_path: Option<&str>) -> String {
    std::fs::create_dir_all(dir).expect("bundle dir");
    let mut config = serde_json::json!({
        "ociVersion": "1.0.0",
        "process": { "terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/sleep", "1000"], "env": ["PATH=/bin:/sbin"], "cwd": "/",
                     "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}, "noNewPrivileges": true },
        "root": { "path": rootfs, "readonly": true },
        "hostname": "peer",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": ID_BASE, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": ID_BASE, "size": 65536}],
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "user"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if let Some(p) = cgroups_path {
        config["linux"]["cgroupsPath"] = p.into();
    }
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config).expect("json")).expect("config.json");
    dir.to_string_lossy().into_owned()
}

/// The limits podman would otherwise raise (1,048,576 open files, …), capped at this
/// process's own: raising them needs CAP_SYS_RESOURCE, which some machines withhold.
fn podman_ulimits() -> Vec<String> {
    let mut out = vec![];
    for (name, res) in [("nofile", libc::RLIMIT_NOFILE), ("nproc", libc::RLIMIT_NPROC)] {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit into the struct we own.
        if unsafe { libc::getrlimit(res, &mut r) } == 0 {
            let v = r.rlim_max.min(4096);
            out.extend(["--ulimit".to_owned(), format!("{name}={v}:{v}")]);
        }
    }
    out
}

/// The v1 cgroups the peers leave behind (podman's `libpod_parent`, lxc's `lxc.pivot`).
fn remove_peer_cgroups() {
    for e in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        for leftover in ["libpod_parent", "lxc.pivot", "hoody-bench-runc"] {
            let p = e.path().join(leftover);
            if p.is_dir() {
                hoody_e2e::remove_cgroup_tree(&p);
            }
        }
    }
}

struct Tool {
    name: &'static str,
    start: Vec<f64>,
    stop: Vec<f64>,
    cycle: Vec<f64>,
}

impl Tool {
    fn new(name: &'static str) -> Tool {
        Tool { name, start: vec![], stop: vec![], cycle: vec![] }
    }
}

pub fn peers_bench(rounds: usize) {
    let w = World::with_net(Driver::Btrfs);
    let http = w.http();
    let rootfs = shifted_rootfs(&w);
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    let crun_b = oci_bundle(&w.dir.join("crun"), &rootfs, None);
    let runc_b = oci_bundle(&w.dir.join("runc"), &rootfs, Some("/hoody-bench-runc"));
    let ns = w.host_ns.clone();
    run("ip", &["-n", &ns, "link", "add", "hbbr0", "type", "bridge"]);
    run("ip", &["-n", &ns, "link", "set", "hbbr0", "up"]);
    let lxc_conf = w.dir.join("lxc.conf");
    std::fs::write(
        &lxc_conf,
        format!(
            "lxc.rootfs.path = dir:{rootfs_s}\nlxc.uts.name = lxc\nlxc.idmap = u 0 {ID_BASE} 65536\nlxc.idmap = g 0 {ID_BASE} 65536\n\
             lxc.net.0.type = veth\nlxc.net.0.link = hbbr0\nlxc.net.0.flags = up\nlxc.mount.auto = proc:mixed sys:ro\nlxc.apparmor.profile = unconfined\n"
        ),
    )
    .expect("lxc.conf");
    let lxc_path = w.dir.join("lxc");
    std::fs::create_dir_all(&lxc_path).expect("lxc path");
    let (lxc_conf, lxc_path) = (lxc_conf.to_string_lossy().into_owned(), lxc_path.to_string_lossy().into_owned());
    let (pod_root, pod_run) = (w.dir.join("podman/root").display().to_string(), w.dir.join("podman/run").display().to_string());
    let podman = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> =
            ["podman", "--root", &pod_root, "--runroot", &pod_run, "--cgroup-manager", "cgroupfs", "--network-backend", "netavark"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let uidmap = format!("0:{ID_BASE}:65536");
    // The OCI runtimes keep their state in the world too.
    let (crun_root, runc_root) = (w.dir.join("crun-state").display().to_string(), w.dir.join("runc-state").display().to_string());
    let ulimits = podman_ulimits();
    let mut r = Runner::spawn(&ns);
    let mut t = |v: &[String]| r.time(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let sv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();

    let podman_run = |name: &str| {
        let mut a = sv(&["run", "-d", "--name", name, "--network", "bridge", "--uidmap", &uidmap, "--gidmap", &uidmap]);
        a.extend(ulimits.iter().cloned());
        a.extend(sv(&["--rootfs", &rootfs_s, "sleep", "1000"]));
        podman(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Warm-up: podman creates its network and storage on first use.
    t(&podman_run("warm"));
    t(&podman(&["rm", "-f", "-t", "0", "warm"]));

    let mut tools = [Tool::new("hoody"), Tool::new("podman"), Tool::new("crun"), Tool::new("runc"), Tool::new("lxc"), Tool::new("nspawn")];
    for i in 0..rounds {
        // Each round visits every tool, starting one further each time (A B C …, B C … A).
        for k in 0..tools.len() {
            let j = (i + k) % tools.len();
            let name = format!("p{i}");
            let tool = &mut tools[j];
            let (start, stop) = match tool.name {
                "hoody" => {
                    let t0 = Instant::now();
                    let rep = http.post("/containers?start=true", &format!(r#"{{"name":"{name}","image":"busybox"}}"#));
                    let start = ms(t0.elapsed());
                    assert_eq!(rep.status, 201, "{rep:?}");
                    let id = rep.json()["data"]["id"].as_str().expect("id").to_owned();
                    let t0 = Instant::now();
                    let rep = http.request("DELETE", &format!("/containers/{id}?force=true"), b"");
                    assert_eq!(rep.status, 200, "{rep:?}");
                    (Some(start), ms(t0.elapsed()))
                }
                "podman" => (Some(t(&podman_run(&name))), t(&podman(&["rm", "-f", "-t", "0", &name]))),
                "crun" => (
                    Some(t(&sv(&["crun", "--root", &crun_root, "--cgroup-manager=disabled", "run", "-d", "--bundle", &crun_b, &name]))),
                    t(&sv(&["crun", "--root", &crun_root, "--cgroup-manager=disabled", "delete", "-f", &name])),
                ),
                "runc" => (
                    Some(t(&sv(&["runc", "--root", &runc_root, "run", "-d", "--bundle", &runc_b, &name]))),
                    t(&sv(&["runc", "--root", &runc_root, "delete", "-f", &name])),
                ),
                "lxc" => (None, t(&sv(&["lxc-execute", "-P", &lxc_path, "-n", &name, "-f", &lxc_conf, "--", "/bin/true"]))),
                _ => (
                    None,
                    t(&sv(&[
                        "systemd-nspawn",
                        "-q",
                        "-D",
                        &rootfs_s,
                        "--register=no",
                        "--keep-unit",
                        &format!("--private-users={ID_BASE}:65536"),
                        "--network-veth",
                        "-M",
                        &name,
                        "/bin/true",
                    ])),
                ),
            };
            match start {
                Some(s) => {
                    tool.start.push(s);
                    tool.stop.push(stop);
                    tool.cycle.push(s + stop);
                }
                None => tool.cycle.push(stop),
            }
        }
    }
    drop(r);
    remove_peer_cgroups();
    let labels = [
        ("hoody", "hoody (API: create+start, network + deny-all firewall)"),
        ("podman", "podman run -d --network bridge (rootful, --uidmap)"),
        ("crun", "crun run -d (no network, no cgroups)"),
        ("runc", "runc run -d (no network, cgroup v1)"),
        ("lxc", "lxc-execute (veth on a bridge)"),
        ("nspawn", "systemd-nspawn --network-veth"),
    ];
    let label = |n: &str| labels.iter().find(|(k, _)| *k == n).map(|(_, v)| *v).unwrap_or(n).to_owned();
    let mut rows = vec![];
    for tool in &tools {
        if !tool.start.is_empty() {
            rows.push(Row { what: "start to a running init".into(), tool: label(tool.name), samples: tool.start.clone() });
        }
    }
    for tool in &tools {
        if !tool.stop.is_empty() {
            rows.push(Row { what: "stop + delete".into(), tool: label(tool.name), samples: tool.stop.clone() });
        }
    }
    for tool in &tools {
        let what =
            if tool.start.is_empty() { "whole cycle (run /bin/true to the end, clean up)" } else { "whole cycle (start + stop + delete)" };
        rows.push(Row { what: what.into(), tool: label(tool.name), samples: tool.cycle.clone() });
    }
    println!("## Container start against peer tools ({rounds} rounds, each round visits every tool in turn)\n");
    print!("{}", table(&rows));
    let hoody = &tools[0];
    println!("\nPaired ratios (peer ÷ hoody; above 1 means hoody is faster):\n");
    println!("| peer | start | whole cycle |\n|---|---|---|");
    for tool in &tools[1..] {
        let start = if tool.start.is_empty() { "—".to_owned() } else { format!("{:.2}×", paired_ratio(&tool.start, &hoody.start)) };
        println!("| {} | {start} | {:.2}× |", tool.name, paired_ratio(&tool.cycle, &hoody.cycle));
    }
    let podman = &tools[1];
    println!(
        "\nhoody create+start median {:.2} ms (p95 {:.2}); target ≤ 20 ms: {}. Against podman run: {:.1}× faster; target ≥ 5×: {}.",
        median(&hoody.start),
        percentile(&hoody.start, 95.0),
        if median(&hoody.start) <= 20.0 { "met" } else { "MISSED" },
        paired_ratio(&podman.start, &hoody.start),
        if paired_ratio(&podman.start, &hoody.start) >= 5.0 { "met" } else { "MISSED" }
    );
    println!(
        "\nWhat each peer was told: every one runs in the benchmark's own network namespace with a private mount namespace \
         (that namespace's sysfs, the machine's cgroup v1 hierarchies mounted again without the hybrid `unified` one); \
         all map root to the private range {ID_BASE}+65536 and use a copy of the same busybox root owned by that range. \
         podman: `--root/--runroot` in the world, `--cgroup-manager cgroupfs`, netavark bridge network, open-file and process \
         limits capped at the caller's (this machine withholds CAP_SYS_RESOURCE, so podman's default 1,048,576 cannot be set). \
         crun: `--cgroup-manager=disabled` (it refuses the hybrid layout). runc: a cgroup v1 path. lxc-execute and systemd-nspawn \
         (`--register=no --keep-unit`) run `/bin/true` in the foreground, so only their whole cycle is comparable."
    );
}
