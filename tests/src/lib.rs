//! The world a privileged test runs in, and helpers to drive hoodyd in it.
//!
//! A [`World`] is: a network namespace that plays the host (hoodyd runs inside it), a storage
//! file system of its own (btrfs or ext4 on a loop file), a cgroup of its own, a state
//! directory and a socket. Names carry the test process id and a counter, so tests run side by
//! side. Dropping the world (also on panic) kills the daemon and every container process in
//! the world's cgroup, removes the cgroups, unmounts, deletes the namespaces and the directory.
//! At first use, leftovers of test processes that no longer exist are swept.

pub mod consistency;
pub mod dnsmasq;
pub mod http;
pub mod internet;
pub mod netns;
pub mod schema;
pub mod sniffer;
pub mod stats;
pub mod sys;
pub mod tarball;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ROOT: &str = "/tmp/hoody-e2e";
static COUNTER: AtomicU32 = AtomicU32::new(0);
thread_local! {
    static DISK: std::cell::RefCell<String> = std::cell::RefCell::new("1G".to_owned());
    /// Overlay worlds: ext4 made with project quotas and mounted `prjquota`.
    static PRJQUOTA: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// A tmpfs of this size as the state directory (a small state file system).
    static STATE_FS: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// Extra mount options of the world's file system (e.g. a long commit interval).
    static MOUNT_OPTS: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}
static SWEEP: Once = Once::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Btrfs,
    Overlay,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Btrfs => "btrfs",
            Driver::Overlay => "overlay",
        }
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quiet(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Directory of the workspace's built binaries (target/<profile>), from the test executable.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HOODY_BIN_DIR") {
        return d.into();
    }
    let (target, profile) = target_and_profile();
    // A benchmark built into the hooked directory itself (target/hooked/release/hoody-bench)
    // finds its daemon beside it.
    let dir = if target.ends_with(HOOKED) { target.join(&profile) } else { target.join(HOOKED).join(&profile) };
    for b in ["hoodyd", "hoodyctl"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: build the daemon with its test hooks first ({HOOKED_BUILD}{}) or set HOODY_BIN_DIR",
            dir.join(b).display(),
            if profile == "release" { " --release" } else { "" }
        );
    }
    dir
}

/// Where the tests' daemon is built: with the `test-hooks` feature, in a target directory of
/// its own, so that no workspace build ships the hooks (features unify within a build).
pub const HOOKED: &str = "hooked";
pub const HOOKED_BUILD: &str = "cargo build -p hoodyd -p hoodyctl --features hoodyd/test-hooks --target-dir target/hooked";

/// The binaries of the workspace's own build (`cargo build --bins`): no test hooks, as
/// released.
pub fn release_bin_dir() -> PathBuf {
    let (target, profile) = target_and_profile();
    let dir = target.join(profile);
    assert!(dir.join("hoodyd").exists(), "{} is missing: cargo build --bins", dir.join("hoodyd").display());
    dir
}

/// The target directory and profile of this executable (test binaries live in
/// target/<profile>/deps, other binaries in target/<profile>).
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current exe");
    let parent = exe.parent().expect("exe directory");
    let dir = if parent.ends_with("deps") { parent.parent().expect("target/<profile>") } else { parent };
    let profile = dir.file_name().expect("profile").to_string_lossy().into_owned();
    (dir.parent().expect("target").to_path_buf(), profile)
}

fn is_cgroup2(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC).unwrap_or(false)
}

/// The cgroup v2 hierarchy of this machine (`/sys/fs/cgroup` or, on hybrid hosts, its `unified`).
pub fn cgroup2_root() -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    if is_cgroup2(base) { base.into() } else { base.join("unified") }
}

/// Kills everything in the cgroup tree at `p` and removes it, deepest first.
pub fn remove_cgroup_tree(p: &Path) {
    if !p.exists() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    // Open without O_CREAT: never create files in a cgroup directory.
    let _ = std::fs::OpenOptions::new().write(true).open(p.join("cgroup.kill")).and_then(|mut f| std::io::Write::write_all(&mut f, b"1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::remove_dir(p).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True while process `pid` exists and is not a zombie (an adopted init, once killed, stays a
/// zombie of its real parent until that parent reaps it).
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes what earlier test processes (now dead) left behind.
fn sweep() {
    let owner_dead = |name: &str| name.split('-').nth(2).and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| !pid_alive(p));
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("hoody-e2e-") && owner_dead(&n) {
                quiet("ip", &["netns", "del", &n]);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(cgroup2_root()) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("hoody-e2e-") && owner_dead(&n) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(ROOT) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if owner_dead(&format!("hoody-e2e-{n}")) {
                let mnt = e.path().join("mnt");
                quiet("umount", &["-l", &mnt.to_string_lossy()]);
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
}

/// Output of one hoodyctl run.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("hoodyctl printed no JSON ({e}): {self:?}"))
    }
}

/// The network part of a world: a namespace playing the internet, joined to the host namespace
/// by an uplink veth (`up0` in the host, `up1` in the internet), with documentation addresses.
pub struct Net {
    pub inet_ns: String,
    pub subnet: String,
}

/// The uplink address of the host namespace and the internet's side of the link.
pub const HOST_UPLINK: &str = "198.51.100.1";
pub const INET_UPLINK: &str = "198.51.100.2";
/// Servers of the fake internet (on its loopback).
pub const SERVER: &str = "203.0.113.10";
pub const NEIGHBOUR: &str = "203.0.113.11";

pub struct World {
    /// Unique tag: `<pid>-<n>`.
    pub tag: String,
    pub host_ns: String,
    pub dir: PathBuf,
    pub mnt: PathBuf,
    pub state_dir: PathBuf,
    pub storage_dir: PathBuf,
    pub socket: PathBuf,
    pub cgroup: PathBuf,
    pub driver: Driver,
    pub extra_flags: Vec<String>,
    /// Extra environment of the daemon (fault injection, test clock), applied at each start.
    pub env: Vec<(String, String)>,
    pub net: Option<Net>,
    /// The cgroup the daemon is started in (as systemd starts a service in its own); None: the
    /// test's.
    pub daemon_cgroup: Option<PathBuf>,
    /// Whether the daemon is told `--cgroup-root <cgroup>` (false: it picks its default).
    pub cgroup_flag: bool,
    /// The daemon binary (None: [`World::hoodyd_path`], built with the test hooks).
    pub daemon_bin: Option<PathBuf>,
    daemon: Option<Child>,
    /// Exit status of a daemon that exited by itself.
    exited: Option<i32>,
}

impl World {
    /// Builds the world and starts hoodyd in it.
    pub fn new(driver: Driver) -> World {
        Self::with_flags(driver, &[])
    }

    /// A world with a fake internet behind the host's uplink; hoodyd masquerades out of it.
    pub fn with_net(driver: Driver) -> World {
        Self::build(driver, &[], true)
    }

    /// A world whose storage file system has `size` (e.g. "8G") instead of 1G.
    pub fn with_disk(driver: Driver, size: &str) -> World {
        DISK.with(|d| *d.borrow_mut() = size.to_owned());
        let w = Self::build(driver, &[], false);
        DISK.with(|d| *d.borrow_mut() = "1G".to_owned());
        w
    }

    /// A world whose storage file system has `size`, with extra daemon flags.
    pub fn with_flags_and_disk(driver: Driver, size: &str, flags: &[&str]) -> World {
        DISK.with(|d| *d.borrow_mut() = size.to_owned());
        let w = std::panic::catch_unwind(|| Self::build(driver, flags, false));
        DISK.with(|d| *d.borrow_mut() = "1G".to_owned());
        w.unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// A world whose storage is `size` with quotas the kernel enforces: btrfs (hoodyd turns its
    /// qgroups on), or for overlay an ext4 made with `-O quota,project` and mounted `prjquota`.
    pub fn with_quotas(driver: Driver, size: &str, flags: &[&str]) -> World {
        DISK.with(|d| *d.borrow_mut() = size.to_owned());
        PRJQUOTA.with(|p| p.set(true));
        let w = std::panic::catch_unwind(|| Self::build(driver, flags, false));
        DISK.with(|d| *d.borrow_mut() = "1G".to_owned());
        PRJQUOTA.with(|p| p.set(false));
        w.unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// A world whose file system (state and storage) is mounted with `opts` added, for
    /// example `commit=300` so that only an explicit sync puts a write on the device soon.
    pub fn with_mount_options(driver: Driver, opts: &str) -> World {
        MOUNT_OPTS.with(|m| *m.borrow_mut() = Some(opts.to_owned()));
        let w = Self::build(driver, &[], false);
        MOUNT_OPTS.with(|m| *m.borrow_mut() = None);
        w
    }

    /// A world whose state directory is a tmpfs of `size` (e.g. "64m"), with extra flags.
    pub fn with_state_fs(driver: Driver, size: &str, flags: &[&str]) -> World {
        STATE_FS.with(|s| *s.borrow_mut() = Some(size.to_owned()));
        let w = World::build(driver, flags, false);
        STATE_FS.with(|s| *s.borrow_mut() = None);
        w
    }

    /// `with_net` with extra daemon flags.
    pub fn with_net_flags(driver: Driver, flags: &[&str]) -> World {
        Self::build(driver, flags, true)
    }

    pub fn with_flags(driver: Driver, flags: &[&str]) -> World {
        Self::build(driver, flags, false)
    }

    fn build(driver: Driver, flags: &[&str], with_net: bool) -> World {
        assert!(nix::unistd::geteuid().is_root(), "privileged end-to-end tests must run as root");
        SWEEP.call_once(sweep);
        let tag = format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let dir = Path::new(ROOT).join(&tag);
        std::fs::create_dir_all(&dir).expect("world directory");
        let mut w = World {
            host_ns: format!("hoody-e2e-{tag}-h"),
            mnt: dir.join("mnt"),
            state_dir: dir.join("mnt/state"),
            storage_dir: dir.join("mnt/storage"),
            socket: dir.join("hoodyd.sock"),
            cgroup: cgroup2_root().join(format!("hoody-e2e-{tag}")),
            dir,
            tag,
            driver,
            extra_flags: flags.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            net: None,
            daemon_cgroup: None,
            cgroup_flag: true,
            daemon_bin: None,
            daemon: None,
            exited: None,
        };
        // From here on, Drop cleans up whatever was made.
        run("ip", &["netns", "add", &w.host_ns]);
        run("ip", &["-n", &w.host_ns, "link", "set", "lo", "up"]);
        if with_net {
            let n = COUNTER.load(Ordering::SeqCst) as u64 + u64::from(std::process::id()) * 7;
            // A caller's own --subnet (benchmarks with a thousand containers) wins.
            let given = flags.iter().position(|f| *f == "--subnet").and_then(|i| flags.get(i + 1)).map(|s| s.to_string());
            let subnet = given.clone().unwrap_or_else(|| format!("10.77.{}.0/24", n % 250 + 1));
            let inet = format!("hoody-e2e-{}-i", w.tag);
            w.net = Some(Net { inet_ns: inet.clone(), subnet: subnet.clone() });
            run("ip", &["netns", "add", &inet]);
            let (h, i) = (w.host_ns.as_str(), inet.as_str());
            for args in [
                vec!["-n", i, "link", "set", "lo", "up"],
                vec!["-n", h, "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", i],
                vec!["-n", h, "addr", "add", &format!("{HOST_UPLINK}/24"), "dev", "up0"],
                vec!["-n", h, "link", "set", "up0", "up"],
                vec!["-n", i, "addr", "add", &format!("{INET_UPLINK}/24"), "dev", "up1"],
                vec!["-n", i, "link", "set", "up1", "up"],
                vec!["-n", i, "addr", "add", &format!("{SERVER}/32"), "dev", "lo"],
                vec!["-n", i, "addr", "add", &format!("{NEIGHBOUR}/32"), "dev", "lo"],
                vec!["-n", i, "route", "add", &subnet, "via", HOST_UPLINK],
                vec!["-n", h, "route", "add", "203.0.113.0/24", "via", INET_UPLINK],
            ] {
                run("ip", &args);
            }
            w.extra_flags.extend(["--uplink".to_string(), "up0".into()]);
            if given.is_none() {
                w.extra_flags.extend(["--subnet".to_string(), subnet]);
            }
        }
        let img = w.dir.join("fs.img");
        let size = DISK.with(|d| d.borrow().clone());
        run("truncate", &["-s", &size, &img.to_string_lossy()]);
        let prjquota = PRJQUOTA.with(|p| p.get()) && driver == Driver::Overlay;
        match driver {
            Driver::Btrfs => run("mkfs.btrfs", &["-q", "-f", &img.to_string_lossy()]),
            Driver::Overlay if prjquota => run("mkfs.ext4", &["-q", "-F", "-O", "quota,project", &img.to_string_lossy()]),
            Driver::Overlay => run("mkfs.ext4", &["-q", "-F", &img.to_string_lossy()]),
        };
        std::fs::create_dir_all(&w.mnt).expect("mount point");
        let mut opts = if prjquota { "loop,prjquota" } else { "loop" }.to_owned();
        if let Some(extra) = MOUNT_OPTS.with(|m| m.borrow().clone()) {
            opts = format!("{opts},{extra}");
        }
        run("mount", &["-o", &opts, &img.to_string_lossy(), &w.mnt.to_string_lossy()]);
        if let Some(size) = STATE_FS.with(|s| s.borrow().clone()) {
            std::fs::create_dir_all(&w.state_dir).expect("state dir");
            run("mount", &["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "hoody-e2e-state", &w.state_dir.to_string_lossy()]);
        }
        w.start_daemon();
        w
    }

    pub fn hoodyd_path() -> PathBuf {
        bin_dir().join("hoodyd")
    }

    /// Starts hoodyd in the host namespace and waits until it answers.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        self.exited = None;
        let ns = std::fs::File::open(format!("/run/netns/{}", self.host_ns)).expect("open netns");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("hoodyd.log")).expect("daemon log");
        let mut cmd = Command::new(self.daemon_bin.clone().unwrap_or_else(Self::hoodyd_path));
        cmd.args(["--socket", &self.socket.to_string_lossy()])
            .args(["--state-dir", &self.state_dir.to_string_lossy()])
            .args(["--storage-dir", &self.storage_dir.to_string_lossy()])
            .args(["--storage-driver", self.driver.name()])
            .args(if self.cgroup_flag { vec!["--cgroup-root".to_string(), self.cgroup.to_string_lossy().into_owned()] } else { vec![] })
            .args(if self.extra_flags.iter().any(|f| f == "--socket-group") { vec![] } else { vec!["--socket-group", "root"] })
            .args(&self.extra_flags)
            // The VM lane (an emulated CPU) asks for a small table: its tests are about limits,
            // and 1,024 shards cost a start there tens of seconds.
            .args(match std::env::var("HOODY_E2E_FIREWALL_SHARDS") {
                Ok(n) if !self.extra_flags.iter().any(|f| f == "--firewall-shards") => vec!["--firewall-shards".to_string(), n],
                _ => vec![],
            })
            // Debug logs for tests unless the caller says otherwise (benchmarks run at info).
            .env("HOODY_LOG", std::env::var("HOODY_LOG").unwrap_or_else(|_| "debug".into()))
            // Every JSON answer, checked against docs/openapi.json when the world is dropped.
            .env("HOODY_ANSWER_LOG", if CHECK_ANSWERS.load(Ordering::Relaxed) { self.dir.join(ANSWER_LOG) } else { PathBuf::new() })
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        sys::in_netns(&mut cmd, ns.into());
        if let Some(cg) = &self.daemon_cgroup {
            let procs = std::fs::OpenOptions::new().write(true).open(cg.join("cgroup.procs")).expect("the daemon's cgroup");
            sys::in_cgroup(&mut cmd, procs);
        }
        self.daemon = Some(cmd.spawn().expect("spawn hoodyd"));
        // A guard against a daemon that never comes up, not a timing: under TCG, with the host
        // suite beside it on two cores, a start with its image import took 24 s.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if self.ctl(&["health"]).code == 0 {
                // Hooks set for this daemon are only heard by a binary built with them.
                let hooked = self.env.iter().any(|(k, _)| k.starts_with("HOODY_") && k != "HOODY_LOG");
                assert!(
                    !hooked || self.daemon_log().contains("test_hooks=true"),
                    "this hoodyd has no test hooks: build it in the workspace (cargo build --bins), not with -p hoodyd"
                );
                return;
            }
            if let Some(Ok(Some(st))) = self.daemon.as_mut().map(|d| d.try_wait()) {
                panic!("hoodyd exited with {st}:\n{}", self.daemon_log());
            }
            assert!(Instant::now() < deadline, "hoodyd did not answer:\n{}", self.daemon_log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the daemon (containers keep running).
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// SIGTERMs the daemon and waits for it.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// The daemon's exit status once it exited by itself (then it counts as stopped).
    pub fn daemon_exited(&mut self) -> Option<i32> {
        if let Some(d) = self.daemon.as_mut()
            && let Ok(Some(st)) = d.try_wait()
        {
            self.daemon = None;
            self.exited = Some(st.code().unwrap_or(-1));
        }
        if self.daemon.is_none() { self.exited } else { None }
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|d| d.id())
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hoodyd.log")).unwrap_or_default()
    }

    pub fn hoodyctl(&self) -> Command {
        let mut c = Command::new(bin_dir().join("hoodyctl"));
        c.env("HOODY_SOCKET", &self.socket).env_remove("HOODY_TOKEN");
        c
    }

    pub fn ctl_with_input(&self, args: &[&str], input: &[u8]) -> Ctl {
        use std::io::Write;
        let mut child =
            self.hoodyctl().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("hoodyctl");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("hoodyctl output");
        let _ = feeder.join();
        to_ctl(out)
    }

    pub fn ctl(&self, args: &[&str]) -> Ctl {
        to_ctl(self.hoodyctl().args(args).stdin(Stdio::null()).output().expect("hoodyctl"))
    }

    /// Runs hoodyctl, asserting success, and returns the `data` of its JSON answer.
    pub fn ok(&self, args: &[&str]) -> Value {
        let c = self.ctl(args);
        assert_eq!(c.code, 0, "hoodyctl {args:?} failed: {c:?}\n--- daemon log tail ---\n{}", tail(&self.daemon_log(), 40));
        c.json()["data"].clone()
    }

    /// `exec` in container `id`; returns (exit code, stdout, stderr).
    pub fn exec(&self, id: &str, cmd: &[&str]) -> Ctl {
        let mut args = vec!["exec", "-c", id, "--"];
        args.extend_from_slice(cmd);
        self.ctl(&args)
    }

    /// `exec` that must succeed; returns stdout.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let c = self.exec(id, &["sh", "-c", script]);
        assert_eq!(c.code, 0, "in {id}: sh -c {script:?} failed: {c:?}");
        c.stdout
    }

    /// Creates and starts a container from the default image; returns its JSON.
    pub fn running(&self, name: &str) -> Value {
        self.ok(&["containers", "create", "--name", name, "--image", "busybox", "--start"])
    }

    /// Copies the network probe (`tests/probe/probe.c`, built static) into a running container
    /// as `/probe`.
    pub fn install_probe(&self, id: &str) {
        let c = self.ctl_with_input(
            &["exec", "-c", id, "--", "sh", "-c", "cat > /probe && chmod 755 /probe"],
            &std::fs::read(probe_binary()).expect("probe"),
        );
        assert_eq!(c.code, 0, "installing the probe: {c:?}");
    }

    /// Runs the probe in a container: (exit code, its one-line verdict).
    pub fn probe(&self, id: &str, args: &[&str]) -> (i32, String) {
        let mut a = vec!["/probe"];
        a.extend_from_slice(args);
        let c = self.exec(id, &a);
        (c.code, c.stdout.trim().to_owned())
    }

    /// The internet namespace's name (worlds made with `with_net`).
    pub fn inet(&self) -> &str {
        &self.net.as_ref().expect("a world with a network").inet_ns
    }

    /// The typed client of this world's socket (as an administrator).
    pub fn client(&self) -> hoody_api::client::Client {
        hoody_api::client::Client { socket: self.socket.clone(), token: None, idempotency_key: None }
    }

    /// Runs calls of the typed client to their end, on a runtime of their own.
    pub fn api<T>(&self, f: impl AsyncFnOnce(hoody_api::client::Client) -> T) -> T {
        run_client(self.client(), f)
    }

    /// [`World::api`] presenting `token`.
    pub fn api_as<T>(&self, token: &str, f: impl AsyncFnOnce(hoody_api::client::Client) -> T) -> T {
        run_client(hoody_api::client::Client { socket: self.socket.clone(), token: Some(token.to_owned()), idempotency_key: None }, f)
    }

    /// The raw HTTP client of this world's socket.
    pub fn http(&self) -> http::Http {
        http::Http { socket: self.socket.clone(), token: None }
    }
}

static PROBE: Once = Once::new();

/// The static probe binary, compiled once per test process.
pub fn probe_binary() -> PathBuf {
    // Named like a world ("<pid>-…") so that a later run sweeps it once this process is gone.
    let out = Path::new(ROOT).join(format!("{}-probe", std::process::id()));
    PROBE.call_once(|| {
        std::fs::create_dir_all(ROOT).expect("root");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("probe/probe.c");
        run("gcc", &["-static", "-O2", "-o", &out.to_string_lossy(), &src.to_string_lossy()]);
    });
    out
}

fn to_ctl(out: Output) -> Ctl {
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits up to 10 s for `f` to hold, checking every 50 ms.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `f` with `client` to its end on a current-thread runtime of its own.
fn run_client<T>(client: hoody_api::client::Client, f: impl AsyncFnOnce(hoody_api::client::Client) -> T) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f(client))
}

/// The daemon's answers (`HOODY_ANSWER_LOG`), in the world's directory.
const ANSWER_LOG: &str = "answers.jsonl";

/// Whether daemons log their answers for the schema check (the benchmarks turn it off: it
/// costs a copy and a write per answer).
pub static CHECK_ANSWERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- hoodyd log of world {} ---\n{}", self.tag, tail(&self.daemon_log(), 60));
        }
        self.kill_daemon();
        // Checked once the daemon is gone (its last answers are written), reported once
        // everything is cleaned up.
        let off_schema = match std::fs::read_to_string(self.dir.join(ANSWER_LOG)) {
            Ok(log) if !std::thread::panicking() => schema::check_log(&log),
            _ => vec![],
        };
        remove_cgroup_tree(&self.cgroup);
        if std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.contains(&*self.state_dir.to_string_lossy())) {
            quiet("umount", &["-l", &self.state_dir.to_string_lossy()]);
        }
        if !quiet("umount", &[&self.mnt.to_string_lossy()]) {
            quiet("umount", &["-l", &self.mnt.to_string_lossy()]);
        }
        quiet("ip", &["netns", "del", &self.host_ns]);
        if let Some(n) = &self.net {
            quiet("ip", &["netns", "del", &n.inet_ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        assert!(
            off_schema.is_empty(),
            "{} answer(s) of world {} do not match docs/openapi.json:\n{}",
            off_schema.len(),
            self.tag,
            off_schema.join("\n")
        );
    }
}
