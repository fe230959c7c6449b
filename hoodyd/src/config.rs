//! Configuration: `/etc/hoody/hoodyd.toml` (or `--config`), every key overridden by its flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use hoody_snapshot::driver::DriverChoice;
use serde::{Deserialize, Serialize};

use crate::model::Egress;

pub const DEFAULT_CONFIG: &str = "/etc/hoody/hoodyd.toml";
pub use hoody_api::paths::DEFAULT_SOCKET;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hoody";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings of `hoodyd`, declared once: each is a flag (`--state-dir`) and a key of the
/// configuration file (`state_dir = …`); a flag given wins over the file's key, and what
/// neither gives takes its default ([`Config::load`]).
#[derive(Debug, Default, Parser, Serialize, Deserialize)]
#[command(name = "hoodyd", version, about = "hoody daemon: isolated containers with deny-all egress and instant snapshots")]
#[serde(default, deny_unknown_fields)]
pub struct Flags {
    /// Print the API's OpenAPI 3.1 document (docs/openapi.json) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub openapi: bool,
    /// Configuration file (default /etc/hoody/hoodyd.toml, if it exists).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// API socket (mode 0660, group `hoody`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// State database, audit log, container metadata.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Images, container root file systems, snapshots (default STATE_DIR/storage).
    #[arg(long)]
    pub storage_dir: Option<PathBuf>,
    /// auto (btrfs when the storage directory is on btrfs), btrfs or overlay.
    #[arg(long)]
    pub storage_driver: Option<DriverChoice>,
    /// Where container cgroups go (cgroup v2).
    #[arg(long)]
    pub cgroup_root: Option<PathBuf>,
    /// IPv4 pool of container addresses.
    #[arg(long)]
    pub subnet: Option<String>,
    /// Interface through which allowed container traffic leaves, masqueraded.
    #[arg(long)]
    pub uplink: Option<String>,
    /// Egress policy of new containers unless the request says otherwise.
    #[arg(long)]
    pub default_egress: Option<Egress>,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Name of the image built from the host's static busybox at start when missing ("" = none).
    #[arg(long)]
    pub default_image: Option<String>,
    /// The static busybox binary used for the default image.
    #[arg(long)]
    pub busybox: Option<PathBuf>,
    /// Seconds between SIGTERM and cgroup.kill when stopping a container.
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Group that owns the socket (a name or a numeric gid); its members may connect.
    #[arg(long)]
    pub socket_group: Option<String>,
    /// Group (a name or a numeric gid) whose members are administrators without a token.
    #[arg(long)]
    pub admin_group: Option<String>,
    /// What denied TCP/UDP egress gets: reject (reset / port unreachable, fails fast) or drop.
    #[arg(long)]
    pub deny_action: Option<DenyActionArg>,
    /// Seconds a client may take to send a request's headers, or its body, or to send its next
    /// request on an idle connection.
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Seconds between retries of a delete that failed half-way (the container stays listed as
    /// `deleting`, keeping its address and id range, until its storage is gone).
    #[arg(long)]
    pub delete_retry: Option<u64>,
    /// Open API connections at most; more are refused.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// NFLOG group denied egress attempts are logged to (read back for firewall/events).
    #[arg(long)]
    pub nflog_group: Option<u16>,
    /// Shards the firewall's interval sets are spread over (a power of two, 1-1024; default
    /// 1024): a rule change costs O(one shard's elements), the table two chains and a set per
    /// shard. Fewer suit a small host or a slow (emulated) one; changing it rebuilds the table.
    #[arg(long)]
    pub firewall_shards: Option<u16>,
    /// Where the containers' resolver forwards (IP or IP:PORT, repeatable; default: the
    /// host's resolvers from /etc/resolv.conf, through a local stub to its upstream servers).
    #[arg(long, value_name = "IP[:PORT]")]
    pub dns_upstream: Vec<String>,
    /// Queries per second a container may send to its resolver (burst twice that).
    #[arg(long)]
    pub dns_rate: Option<u32>,
    /// A learned address stays open at least this many seconds (an answer's TTL is clamped).
    #[arg(long)]
    pub dns_min_ttl: Option<u32>,
    /// … and at most this many (answers reach the container with their TTL capped to it).
    #[arg(long)]
    pub dns_max_ttl: Option<u32>,
    /// Seconds a learned address stays open after its TTL ran out.
    #[arg(long)]
    pub dns_grace: Option<u32>,
    /// Containers started (at boot) or stopped (at host shutdown) at the same time, at most.
    #[arg(long)]
    pub parallel: Option<usize>,
    /// `limits.disk` of containers whose create request gives none (e.g. 10GiB): bounds every
    /// container's disk. The storage directory must be able to enforce it.
    #[arg(long)]
    pub default_disk: Option<String>,
    /// `limits.inodes` of containers whose create request gives none (overlay's project
    /// quotas).
    #[arg(long)]
    pub default_inodes: Option<u64>,
    /// A container's console log is rotated when it would pass this size (e.g. 8MiB); one
    /// rotated file is kept.
    #[arg(long)]
    pub log_max_size: Option<String>,
    /// Seconds a running exec whose client lost its connection because the daemon went away
    /// waits, after the next daemon is up, for its client to re-attach; then it is hung up.
    #[arg(long)]
    pub exec_reattach_grace: Option<u64>,
    /// Free space kept on the state file system (e.g. 256MiB; 0: none): below it, requests
    /// that change anything are refused with 507.
    #[arg(long)]
    pub state_reserve: Option<String>,
    /// The audit log is sealed and a new segment begun at this size (e.g. 64MiB).
    #[arg(long)]
    pub audit_segment_size: Option<String>,
    /// Sealed audit segments older than this are removed (e.g. 90d).
    #[arg(long)]
    pub audit_retention: Option<String>,
    /// Sealed audit segments together take at most this much; the oldest go first (e.g. 4GiB).
    #[arg(long)]
    pub audit_max_space: Option<String>,
    /// auto: disk quotas wherever the storage file system has them (btrfs: hoodyd turns on its
    /// qgroups); off: none (disk limits are then refused).
    #[arg(long, value_enum)]
    pub disk_quotas: Option<DiskQuotas>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiskQuotas {
    Auto,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DenyActionArg {
    Reject,
    Drop,
}

impl Flags {
    /// These settings over `file`'s: every one given here wins.
    fn over(self, file: Flags) -> anyhow::Result<Flags> {
        let mut merged = serde_json::to_value(&file).context("the configuration file's settings")?;
        let given = serde_json::to_value(&self).context("the flags")?;
        for (key, v) in given.as_object().into_iter().flatten() {
            if !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)) {
                merged[key] = v.clone();
            }
        }
        let mut out: Flags = serde_json::from_value(merged).context("merging flags and file")?;
        (out.openapi, out.config) = (self.openapi, self.config);
        Ok(out)
    }
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub storage_dir: PathBuf,
    pub storage_driver: DriverChoice,
    pub cgroup_root: Option<PathBuf>,
    pub subnet: String,
    pub uplink: Option<String>,
    pub default_egress: Egress,
    pub log_format: LogFormat,
    pub default_image: Option<String>,
    pub busybox: PathBuf,
    pub stop_timeout: Duration,
    pub socket_group: String,
    pub admin_group: Option<String>,
    pub request_timeout: Duration,
    pub delete_retry: Duration,
    pub max_connections: usize,
    pub proc_root: PathBuf,
    /// Where sysfs is mounted (btrfs qgroup numbers are read there).
    pub sys_root: PathBuf,
    pub deny_action: DenyActionArg,
    pub nflog_group: u16,
    pub firewall_shards: u16,
    pub dns: crate::dns::DnsConfig,
    pub parallel: usize,
    pub default_disk: Option<u64>,
    pub default_inodes: Option<u64>,
    pub log_max: u64,
    pub exec_reattach_grace: Duration,
    pub state_reserve: u64,
    pub audit: crate::audit::segments::Retention,
    /// Whether the storage pool's disk quotas are used (`--disk-quotas auto`).
    pub disk_quotas: bool,
    /// A file whose contents replace the kernel's boot id (tests simulate a reboot with it).
    pub boot_id_file: Option<PathBuf>,
}

impl Config {
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(p) => read_file(p)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => Flags::default(),
        };
        Self::merge(flags, file)
    }

    fn merge(flags: Flags, file: Flags) -> anyhow::Result<Config> {
        let f = flags.over(file)?;
        let state_dir = f.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        let storage_dir = f.storage_dir.unwrap_or_else(|| state_dir.join("storage"));
        let cfg = Config {
            socket: f.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            storage_dir,
            state_dir,
            storage_driver: f.storage_driver.unwrap_or(DriverChoice::Auto),
            cgroup_root: f.cgroup_root,
            subnet: f.subnet.unwrap_or_else(|| "10.77.0.0/16".into()),
            uplink: f.uplink,
            default_egress: f.default_egress.unwrap_or(Egress::Deny),
            log_format: f.log_format.unwrap_or(LogFormat::Text),
            default_image: Some(f.default_image.unwrap_or_else(|| "busybox".into())).filter(|s| !s.is_empty()),
            busybox: f.busybox.unwrap_or_else(|| "/bin/busybox".into()),
            stop_timeout: Duration::from_secs(f.stop_timeout.unwrap_or(10)),
            socket_group: f.socket_group.unwrap_or_else(|| "hoody".into()),
            admin_group: f.admin_group.filter(|g| !g.is_empty()),
            request_timeout: Duration::from_secs(f.request_timeout.unwrap_or(30).max(1)),
            delete_retry: Duration::from_secs(f.delete_retry.unwrap_or(30).max(1)),
            max_connections: f.max_connections.unwrap_or(256).max(1),
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            deny_action: f.deny_action.unwrap_or(DenyActionArg::Reject),
            nflog_group: f.nflog_group.unwrap_or(7023),
            firewall_shards: match f.firewall_shards.unwrap_or(hoody_net::compile::MAX_SHARDS) {
                n if n.is_power_of_two() && n <= hoody_net::compile::MAX_SHARDS => n,
                n => bail!("--firewall-shards {n} is not a power of two from 1 to {}", hoody_net::compile::MAX_SHARDS),
            },
            dns: {
                let upstreams = f
                    .dns_upstream
                    .iter()
                    .map(|s| crate::dns::parse_upstream(s).map_err(|e| anyhow::anyhow!("--dns-upstream {s:?}: {e}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let min_ttl = f.dns_min_ttl.unwrap_or(30);
                let max_ttl = f.dns_max_ttl.unwrap_or(3600);
                if min_ttl > max_ttl {
                    bail!("--dns-min-ttl {min_ttl} is above --dns-max-ttl {max_ttl}");
                }
                crate::dns::DnsConfig {
                    upstreams,
                    rate: f.dns_rate.unwrap_or(100).max(1),
                    min_ttl,
                    max_ttl,
                    grace: f.dns_grace.unwrap_or(30),
                    resolv_conf: "/etc/resolv.conf".into(),
                    resolved_conf: "/run/systemd/resolve/resolv.conf".into(),
                }
            },
            parallel: f.parallel.unwrap_or(8).max(1),
            default_disk: match f.default_disk.filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => match crate::limits::parse_size(&s) {
                    Some(b) if b >= crate::limits::MIN_DISK => Some(b),
                    _ => bail!("--default-disk {s:?} is not a size of at least 1MiB (e.g. 10GiB)"),
                },
            },
            default_inodes: match f.default_inodes {
                Some(n) if n < crate::limits::MIN_INODES => bail!("--default-inodes must be at least {}", crate::limits::MIN_INODES),
                n => n,
            },
            log_max: {
                let s = f.log_max_size.unwrap_or_else(|| "8MiB".into());
                match crate::limits::parse_size(&s) {
                    Some(b) if b >= 64 << 10 => b,
                    _ => bail!("--log-max-size {s:?} is not a size of at least 64KiB (e.g. 8MiB)"),
                }
            },
            exec_reattach_grace: Duration::from_secs(f.exec_reattach_grace.unwrap_or(30)),
            state_reserve: {
                let s = f.state_reserve.unwrap_or_else(|| "256MiB".into());
                match crate::limits::parse_size(&s) {
                    Some(b) => b,
                    None if s.trim() == "0" => 0,
                    None => bail!("--state-reserve {s:?} is not a size (e.g. 256MiB, or 0 for none)"),
                }
            },
            audit: {
                let size = |flag: &str, v: Option<String>, default: &str, min: u64| -> anyhow::Result<u64> {
                    let s = v.unwrap_or_else(|| default.into());
                    match crate::limits::parse_size(&s) {
                        Some(b) if b >= min => Ok(b),
                        _ => bail!("--{flag} {s:?} is not a size of at least {}", crate::limits::format_size(min)),
                    }
                };
                let segment_size = size("audit-segment-size", f.audit_segment_size, "64MiB", 16 << 10)?;
                let max_space = size("audit-max-space", f.audit_max_space, "4GiB", segment_size)?;
                let r = f.audit_retention.unwrap_or_else(|| "90d".into());
                let max_age =
                    crate::schedule::parse_expiry("audit-retention", &r).map_err(|e| anyhow::anyhow!("--audit-retention: {e}"))?;
                crate::audit::segments::Retention { segment_size, max_age, max_space }
            },
            disk_quotas: f.disk_quotas.unwrap_or(DiskQuotas::Auto) == DiskQuotas::Auto,
            boot_id_file: crate::test_hooks::var("HOODY_BOOT_ID_FILE").map(PathBuf::from),
        };
        let subnet: hoody_net::addr::Ipv4Net = cfg.subnet.parse().map_err(|e| anyhow::anyhow!("--subnet {:?}: {e}", cfg.subnet))?;
        hoody_net::addr::Pool::new(subnet).map_err(|e| anyhow::anyhow!("--subnet: {e}"))?;
        if let Some(up) = &cfg.uplink
            && (up.is_empty() || up.len() > 15 || up.contains(['/', ' ']))
        {
            bail!("--uplink {up:?} is not an interface name");
        }
        for (name, p) in [("socket", &cfg.socket), ("state-dir", &cfg.state_dir), ("storage-dir", &cfg.storage_dir)] {
            if !p.is_absolute() {
                bail!("--{name} must be an absolute path, got {}", p.display());
            }
        }
        Ok(cfg)
    }
}

/// A group given by name or by number.
pub fn resolve_group(g: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = g.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(g) {
        Ok(Some(grp)) => Ok(grp.gid.as_raw()),
        Ok(None) => bail!("no group named {g:?}"),
        Err(e) => Err(e).with_context(|| format!("looking up group {g:?}")),
    }
}

fn read_file(p: &Path) -> anyhow::Result<Flags> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let file: Flags = toml::from_str("state_dir = \"/srv/h\"\nsubnet = \"10.9.0.0/16\"\ndefault_egress = \"allow\"\n").unwrap();
        let flags = Flags { subnet: Some("10.1.0.0/16".into()), ..Default::default() };
        let c = Config::merge(flags, file).unwrap();
        assert_eq!(c.subnet, "10.1.0.0/16");
        assert_eq!(c.state_dir, PathBuf::from("/srv/h"));
        assert_eq!(c.storage_dir, PathBuf::from("/srv/h/storage"));
        assert_eq!(c.default_egress, Egress::Allow);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.default_image.as_deref(), Some("busybox"));
    }

    #[test]
    fn lists_and_flags_only_settings_layer_too() {
        let file: Flags = toml::from_str("dns_upstream = [\"198.51.100.53\"]\nstop_timeout = 3\n").unwrap();
        let c = Config::merge(Flags::default(), file).unwrap();
        assert_eq!((c.dns.upstreams.len(), c.stop_timeout), (1, Duration::from_secs(3)));
        let file: Flags = toml::from_str("dns_upstream = [\"198.51.100.53\"]").unwrap();
        let flags = Flags { dns_upstream: vec!["198.51.100.1".into(), "198.51.100.2:5353".into()], ..Default::default() };
        assert_eq!(Config::merge(flags, file).unwrap().dns.upstreams.len(), 2, "the flag's list wins");
        assert!(toml::from_str::<Flags>("config = \"/etc/x\"").is_err(), "the file cannot name another file");
    }

    #[test]
    fn unknown_keys_and_relative_paths_are_refused() {
        assert!(toml::from_str::<Flags>("sockett = \"/x\"").is_err());
        let flags = Flags { state_dir: Some("rel".into()), ..Default::default() };
        assert!(Config::merge(flags, Flags::default()).is_err());
    }

    /// The packaged configuration, every commented key uncommented, is a valid configuration
    /// (a key misspelt there would be refused by the daemon).
    #[test]
    fn every_key_of_the_packaged_configuration_is_known() {
        let text = include_str!("../../packaging/etc/hoodyd.toml");
        let keys: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')))
            .map(|l| format!("{}\n", l.split("  #").next().unwrap_or(l).trim_end()))
            .collect();
        assert!(keys.contains("dns_upstream") && keys.contains("firewall_shards"), "{keys}");
        let file: Flags = toml::from_str(&keys).unwrap_or_else(|e| panic!("{e}\n{keys}"));
        assert!(Config::merge(Flags::default(), file).is_ok());
    }

    #[test]
    fn firewall_shards_are_a_power_of_two_up_to_the_maximum() {
        let with = |n| Config::merge(Flags { firewall_shards: Some(n), ..Default::default() }, Flags::default());
        assert_eq!(Config::merge(Flags::default(), Flags::default()).unwrap().firewall_shards, 1024);
        assert_eq!(with(16).unwrap().firewall_shards, 16);
        assert_eq!(with(1).unwrap().firewall_shards, 1);
        for bad in [0, 3, 2048] {
            assert!(with(bad).unwrap_err().to_string().contains("power of two"), "{bad}");
        }
    }
}
