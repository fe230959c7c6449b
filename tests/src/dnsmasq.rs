//! A real DNS server in the fake internet: Debian's dnsmasq with records the test controls
//! (a hosts file, re-read on SIGHUP), short TTLs and a query log.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
    log: PathBuf,
    pub addr: String,
}

impl Dnsmasq {
    /// dnsmasq in namespace `ns` on `addr`:53 (added to the namespace's lo), authoritative for
    /// `hosts` (lines `ADDR NAME`) with TTL `ttl`, plus `extra` options (`--cname=…`).
    pub fn start(ns: &str, dir: &std::path::Path, addr: &str, hosts: &str, ttl: u32, extra: &[&str]) -> Dnsmasq {
        crate::run("ip", &["-n", ns, "addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        let (hosts_file, log) = (dir.join("dnsmasq.hosts"), dir.join("dnsmasq.log"));
        std::fs::write(&hosts_file, hosts).expect("hosts file");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{ns}"))
            .arg("dnsmasq")
            .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--user=root", "--group=root"])
            .arg(format!("--listen-address={addr}"))
            .arg(format!("--addn-hosts={}", hosts_file.display()))
            .arg(format!("--local-ttl={ttl}"))
            .arg("--log-queries")
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("dnsmasq (Debian package dnsmasq-base; packaging/deps.sh test installs it)");
        let d = Dnsmasq { child, hosts: hosts_file, log, addr: addr.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.log().contains("started") {
            assert!(Instant::now() < deadline, "dnsmasq did not start: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The names dnsmasq was asked for (from its query log: `query[A] NAME from ADDR`).
    pub fn queried(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("query[").and_then(|(_, r)| r.split_whitespace().nth(1)).map(str::to_owned))
            .collect()
    }

    /// Replaces the records and makes dnsmasq read them again.
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).expect("hosts file");
        let before = self.log().matches("read ").count();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log().matches("read ").count() <= before {
            assert!(Instant::now() < deadline, "dnsmasq did not re-read its hosts: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
