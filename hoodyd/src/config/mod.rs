//! Configuration: `/etc/hoody/hoodyd.toml` (or `--config`), every key overridden by its flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use hoody_net::addr::Ipv4Net;
use hoody_snapshot::driver::DriverChoice;
use serde::{Deserialize, Serialize};

use crate::model::Egress;

mod values;
pub use values::{ByteSize, Span, Upstream};

pub const DEFAULT_CONFIG: &str = "/etc/hoody/hoodyd.toml";
pub use hoody_api::paths::DEFAULT_SOCKET;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hoody";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings of `hoodyd`, declared once with their types and defaults: each is a flag
/// (`--state-dir`) and a key of the configuration file (`state_dir = …`). A flag given on the
/// command line wins over the file's key, and what neither gives keeps the default written here
/// ([`Config::load`]).
#[derive(Clone, Debug, Parser, Serialize, Deserialize)]
#[command(name = "hoodyd", version, about = "hoody daemon: isolated containers with deny-all egress and instant snapshots")]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Print the API's OpenAPI 3.1 document (docs/openapi.json) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub openapi: bool,
    /// Configuration file (default /etc/hoody/hoodyd.toml, if it exists).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// API socket (mode 0660, group `hoody`).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// State database, audit log, container metadata.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Images, container root file systems, snapshots (default STATE_DIR/storage).
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// auto (btrfs when the storage directory is on btrfs), btrfs or overlay.
    #[arg(long, default_value = "auto")]
    pub storage_driver: DriverChoice,
    /// Where container cgroups go (cgroup v2; default: beside hoodyd's own cgroup).
    #[arg(long)]
    pub cgroup_root: Option<PathBuf>,
    /// IPv4 pool of container addresses.
    #[arg(long, default_value = "10.77.0.0/16")]
    pub subnet: Ipv4Net,
    /// Interface through which allowed container traffic leaves, masqueraded (default: the
    /// interface of the default route).
    #[arg(long)]
    pub uplink: Option<String>,
    /// Egress policy of new containers unless the request says otherwise.
    #[arg(long, default_value = "deny")]
    pub default_egress: Egress,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Name of the image built from the host's static busybox at start when missing ("" = none).
    #[arg(long, default_value = "busybox")]
    default_image: String,
    /// The static busybox binary used for the default image.
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Time between SIGTERM and cgroup.kill when stopping a container (seconds, or e.g. 1m).
    #[arg(long, default_value = "10")]
    stop_timeout: Span,
    /// Group that owns the socket (a name or a numeric gid); its members may connect.
    #[arg(long, default_value = "hoody")]
    pub socket_group: String,
    /// Group (a name or a numeric gid) whose members are administrators without a token.
    #[arg(long)]
    admin_group: Option<String>,
    /// What denied TCP/UDP egress gets: reject (reset / port unreachable, fails fast) or drop.
    #[arg(long, value_enum, default_value = "reject")]
    pub deny_action: DenyActionArg,
    /// Time a client may take to send a request's headers, or its body, or to send its next
    /// request on an idle connection (at least 1s).
    #[arg(long, default_value = "30")]
    request_timeout: Span,
    /// Time between retries of a delete that failed half-way (the container stays listed as
    /// `deleting`, keeping its address and id range, until its storage is gone; at least 1s).
    #[arg(long, default_value = "30")]
    delete_retry: Span,
    /// Open API connections at most; more are refused (503). An eighth of them is kept for
    /// administrators (root, the admin group); long-lived streams do not count.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Open API connections one uid other than an administrator may hold (by its peer
    /// credentials); more are refused (503), so one client cannot shut the others out.
    #[arg(long, default_value_t = 64)]
    max_connections_per_peer: usize,
    /// Long-lived streams open at most — exec sessions, `logs --follow`, event streams; a
    /// request that becomes one gives its connection slot back. More are refused (503).
    #[arg(long, default_value_t = 1024)]
    max_streams: usize,
    /// NFLOG group denied egress attempts are logged to (read back for firewall/events).
    #[arg(long, default_value_t = 7023)]
    pub nflog_group: u16,
    /// Shards the firewall's interval sets are spread over (a power of two, 1-1024): a rule
    /// change costs O(one shard's elements), the table two chains and a set per shard. Fewer
    /// suit a small host or a slow (emulated) one; changing it rebuilds the table.
    #[arg(long, default_value_t = hoody_net::compile::MAX_SHARDS)]
    pub firewall_shards: u16,
    /// Where the containers' resolver forwards (IP or IP:PORT, repeatable; default: the
    /// host's resolvers from /etc/resolv.conf, through a local stub to its upstream servers).
    #[arg(long, value_name = "IP[:PORT]")]
    dns_upstream: Vec<Upstream>,
    /// Queries per second a container may send to its resolver (burst twice that).
    #[arg(long, default_value_t = 100)]
    dns_rate: u32,
    /// A learned address stays open at least this many seconds (an answer's TTL is clamped).
    #[arg(long, default_value_t = 30)]
    dns_min_ttl: u32,
    /// … and at most this many (answers reach the container with their TTL capped to it).
    #[arg(long, default_value_t = 3600)]
    dns_max_ttl: u32,
    /// Seconds a learned address stays open after its TTL ran out.
    #[arg(long, default_value_t = 30)]
    dns_grace: u32,
    /// Containers started (at boot) or stopped (at host shutdown) at the same time, at most.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// `limits.disk` of containers whose create request gives none (e.g. 10GiB, at least 1MiB):
    /// bounds every container's disk. The storage directory must be able to enforce it.
    #[arg(long)]
    default_disk: Option<ByteSize>,
    /// `limits.inodes` of containers whose create request gives none (overlay's project
    /// quotas).
    #[arg(long)]
    pub default_inodes: Option<u64>,
    /// A container's console log is rotated when it would pass this size (at least 64KiB); one
    /// rotated file is kept.
    #[arg(long, default_value = "8MiB")]
    log_max_size: ByteSize,
    /// Time a running exec whose client lost its connection because the daemon went away
    /// waits, after the next daemon is up, for its client to re-attach; then it is hung up.
    #[arg(long, default_value = "30")]
    exec_reattach_grace: Span,
    /// Free space kept on the state file system (0: none): below it, requests that change
    /// anything are refused with 507.
    #[arg(long, default_value = "256MiB")]
    state_reserve: ByteSize,
    /// The audit log is sealed and a new segment begun at this size (at least 16KiB).
    #[arg(long, default_value = "64MiB")]
    audit_segment_size: ByteSize,
    /// Sealed audit segments older than this are removed (at least 1m).
    #[arg(long, default_value = "90d")]
    audit_retention: Span,
    /// Sealed audit segments together take at most this much (at least one segment); the
    /// oldest go first.
    #[arg(long, default_value = "4GiB")]
    audit_max_space: ByteSize,
    /// auto: disk quotas wherever the storage file system has them (btrfs: hoodyd turns on its
    /// qgroups); off: none (disk limits are then refused).
    #[arg(long, value_enum, default_value = "auto")]
    disk_quotas: DiskQuotas,
    /// Where procfs is mounted (not a setting: tests pass their own roots to the parts).
    #[arg(skip = PathBuf::from("/proc"))]
    #[serde(skip)]
    pub proc_root: PathBuf,
    /// Where sysfs is mounted (btrfs qgroup numbers are read there).
    #[arg(skip = PathBuf::from("/sys"))]
    #[serde(skip)]
    pub sys_root: PathBuf,
    /// A file whose contents replace the kernel's boot id (tests simulate a reboot with it).
    #[arg(skip)]
    #[serde(skip)]
    pub boot_id_file: Option<PathBuf>,
}

impl Default for Config {
    /// Every setting at the default its declaration gives.
    fn default() -> Config {
        Config::try_parse_from(["hoodyd"]).expect("the declared defaults parse")
    }
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

/// The command line: its settings, and which of them it gave (those win over the file's).
pub struct CommandLine {
    pub config: Config,
    given: Vec<String>,
}

impl CommandLine {
    /// Parses `args` (exits with clap's message on a bad flag, `--help` or `--version`).
    pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> CommandLine {
        let matches = Config::command().get_matches_from(args);
        Self::from_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    fn from_matches(m: &clap::ArgMatches) -> Result<CommandLine, clap::Error> {
        let config = Config::from_arg_matches(m)?;
        let given = m
            .ids()
            .filter(|id| matches!(m.value_source(id.as_str()), Some(ValueSource::CommandLine | ValueSource::EnvVariable)))
            .map(|id| id.as_str().to_owned())
            .collect();
        Ok(CommandLine { config, given })
    }
}

impl Config {
    /// The command line's settings over those of the configuration file it names (or of
    /// /etc/hoody/hoodyd.toml when that exists), checked.
    pub fn load(cli: CommandLine) -> anyhow::Result<Config> {
        let file = match &cli.config.config {
            Some(p) => read_file(p)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => Config::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(cli: CommandLine, file: Config) -> anyhow::Result<Config> {
        let mut merged = serde_json::to_value(&file).context("the configuration file's settings")?;
        let flags = serde_json::to_value(&cli.config).context("the flags")?;
        for id in &cli.given {
            if let Some(v) = flags.get(id) {
                merged[id] = v.clone();
            }
        }
        let mut out: Config = serde_json::from_value(merged).context("merging flags and file")?;
        (out.openapi, out.config) = (cli.config.openapi, cli.config.config);
        out.boot_id_file = crate::test_hooks::var("HOODY_BOOT_ID_FILE").map(PathBuf::from);
        out.check()?;
        Ok(out)
    }

    /// What a type cannot say: bounds that depend on each other, names, absolute paths.
    fn check(&self) -> anyhow::Result<()> {
        let min_span = |flag: &str, v: Span, min: Duration| {
            if v.0 < min {
                bail!("--{flag} {v} is below {}", Span(min));
            }
            Ok(())
        };
        min_span("request-timeout", self.request_timeout, Duration::from_secs(1))?;
        min_span("delete-retry", self.delete_retry, Duration::from_secs(1))?;
        min_span("audit-retention", self.audit_retention, Duration::from_secs(60))?;
        let min_size = |flag: &str, v: ByteSize, min: u64| {
            if v.0 < min {
                bail!("--{flag} {v} is below {}", ByteSize(min));
            }
            Ok(())
        };
        if let Some(d) = self.default_disk {
            min_size("default-disk", d, crate::limits::MIN_DISK)?;
        }
        min_size("log-max-size", self.log_max_size, 64 << 10)?;
        min_size("audit-segment-size", self.audit_segment_size, 16 << 10)?;
        min_size("audit-max-space", self.audit_max_space, self.audit_segment_size.0)?;
        if let Some(n) = self.default_inodes
            && n < crate::limits::MIN_INODES
        {
            bail!("--default-inodes must be at least {}", crate::limits::MIN_INODES);
        }
        let max = hoody_net::compile::MAX_SHARDS;
        if !(self.firewall_shards.is_power_of_two() && self.firewall_shards <= max) {
            bail!("--firewall-shards {} is not a power of two from 1 to {max}", self.firewall_shards);
        }
        for (flag, v) in [
            ("max-connections", self.max_connections),
            ("max-connections-per-peer", self.max_connections_per_peer),
            ("max-streams", self.max_streams),
            ("parallel", self.parallel),
            ("dns-rate", self.dns_rate as usize),
        ] {
            if v == 0 {
                bail!("--{flag} must be at least 1");
            }
        }
        if self.dns_min_ttl > self.dns_max_ttl {
            bail!("--dns-min-ttl {} is above --dns-max-ttl {}", self.dns_min_ttl, self.dns_max_ttl);
        }
        hoody_net::addr::Pool::new(self.subnet).map_err(|e| anyhow::anyhow!("--subnet: {e}"))?;
        if let Some(up) = &self.uplink
            && (up.is_empty() || up.len() > 15 || up.contains(['/', ' ']))
        {
            bail!("--uplink {up:?} is not an interface name");
        }
        for (name, p) in [("socket", &self.socket), ("state-dir", &self.state_dir), ("storage-dir", &self.storage_dir())] {
            if !p.is_absolute() {
                bail!("--{name} must be an absolute path, got {}", p.display());
            }
        }
        Ok(())
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.storage_dir.clone().unwrap_or_else(|| self.state_dir.join("storage"))
    }

    pub fn default_image(&self) -> Option<&str> {
        Some(self.default_image.as_str()).filter(|s| !s.is_empty())
    }

    pub fn admin_group(&self) -> Option<&str> {
        self.admin_group.as_deref().filter(|g| !g.is_empty())
    }

    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout.0
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.0
    }

    pub fn delete_retry(&self) -> Duration {
        self.delete_retry.0
    }

    pub fn exec_reattach_grace(&self) -> Duration {
        self.exec_reattach_grace.0
    }

    /// The caps on connections and streams.
    pub fn connection_caps(&self) -> crate::api::slots::Caps {
        crate::api::slots::Caps { connections: self.max_connections, per_peer: self.max_connections_per_peer, streams: self.max_streams }
    }

    pub fn parallel(&self) -> usize {
        self.parallel
    }

    pub fn default_disk(&self) -> Option<u64> {
        self.default_disk.map(|b| b.0)
    }

    pub fn log_max(&self) -> u64 {
        self.log_max_size.0
    }

    pub fn state_reserve(&self) -> u64 {
        self.state_reserve.0
    }

    pub fn disk_quotas(&self) -> bool {
        self.disk_quotas == DiskQuotas::Auto
    }

    pub fn audit(&self) -> crate::audit::segments::Retention {
        crate::audit::segments::Retention {
            segment_size: self.audit_segment_size.0,
            max_age: self.audit_retention.0,
            max_space: self.audit_max_space.0,
        }
    }

    pub fn dns(&self) -> crate::dns::DnsConfig {
        crate::dns::DnsConfig {
            upstreams: self.dns_upstream.iter().map(|u| u.0).collect(),
            rate: self.dns_rate,
            min_ttl: self.dns_min_ttl,
            max_ttl: self.dns_max_ttl,
            grace: self.dns_grace,
            resolv_conf: "/etc/resolv.conf".into(),
            resolved_conf: "/run/systemd/resolve/resolv.conf".into(),
        }
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

fn read_file(p: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> CommandLine {
        let m = Config::command().try_get_matches_from(std::iter::once("hoodyd").chain(args.iter().copied())).unwrap();
        CommandLine::from_matches(&m).unwrap()
    }

    fn file(text: &str) -> Config {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let c = Config::merge(
            cli(&["--subnet", "10.1.0.0/16"]),
            file("state_dir = \"/srv/h\"\nsubnet = \"10.9.0.0/16\"\ndefault_egress = \"allow\"\n"),
        )
        .unwrap();
        assert_eq!(c.subnet.to_string(), "10.1.0.0/16");
        assert_eq!(c.state_dir, PathBuf::from("/srv/h"));
        assert_eq!(c.storage_dir(), PathBuf::from("/srv/h/storage"));
        assert_eq!(c.default_egress, Egress::Allow);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.default_image(), Some("busybox"));
        assert_eq!((c.proc_root.as_path(), c.sys_root.as_path()), (Path::new("/proc"), Path::new("/sys")));
    }

    /// A flag left at its default does not hide the file's value: only what the command line
    /// gives wins.
    #[test]
    fn a_default_on_the_command_line_does_not_override_the_file() {
        let c = Config::merge(cli(&[]), file("stop_timeout = 3\nlog_max_size = \"1MiB\"\nnflog_group = 9")).unwrap();
        assert_eq!((c.stop_timeout(), c.log_max(), c.nflog_group), (Duration::from_secs(3), 1 << 20, 9));
        let c = Config::merge(cli(&["--stop-timeout", "1m", "--log-max-size", "2MiB"]), file("stop_timeout = 3")).unwrap();
        assert_eq!((c.stop_timeout(), c.log_max()), (Duration::from_secs(60), 2 << 20));
    }

    #[test]
    fn typed_values_with_units_from_flags_and_file() {
        let c = Config::merge(
            cli(&["--audit-retention", "2d", "--default-disk", "10GiB"]),
            file("state_reserve = 0\naudit_segment_size = 65536"),
        )
        .unwrap();
        let a = c.audit();
        assert_eq!((a.max_age, a.segment_size, c.state_reserve()), (Duration::from_secs(2 * 86400), 65536, 0));
        assert_eq!(c.default_disk(), Some(10 << 30));
        assert!(Config::command().try_get_matches_from(["hoodyd", "--log-max-size", "lots"]).is_err());
        assert!(toml::from_str::<Config>("stop_timeout = \"soon\"").is_err());
        assert!(toml::from_str::<Config>("subnet = \"10.1.0.1/16\"").is_err());
    }

    #[test]
    fn lists_and_flags_only_settings_layer_too() {
        let c = Config::merge(cli(&[]), file("dns_upstream = [\"198.51.100.53\"]\nstop_timeout = 3\n")).unwrap();
        assert_eq!((c.dns().upstreams.len(), c.stop_timeout()), (1, Duration::from_secs(3)));
        let c = Config::merge(
            cli(&["--dns-upstream", "198.51.100.1", "--dns-upstream", "198.51.100.2:5353"]),
            file("dns_upstream = [\"198.51.100.53\"]"),
        )
        .unwrap();
        assert_eq!(c.dns().upstreams.len(), 2, "the flag's list wins");
        assert!(toml::from_str::<Config>("config = \"/etc/x\"").is_err(), "the file cannot name another file");
        assert!(toml::from_str::<Config>("proc_root = \"/x\"").is_err(), "roots are not settings");
    }

    #[test]
    fn unknown_keys_bad_bounds_and_relative_paths_are_refused() {
        assert!(toml::from_str::<Config>("sockett = \"/x\"").is_err());
        for (args, f, says) in [
            (&["--state-dir", "rel"][..], "", "absolute"),
            (&[], "log_max_size = \"1KiB\"", "below 64KiB"),
            (&[], "default_disk = 1", "below 1MiB"),
            (&["--audit-max-space", "1MiB"], "audit_segment_size = \"2MiB\"", "below 2MiB"),
            (&["--request-timeout", "0"], "", "below 1s"),
            (&["--parallel", "0"], "", "at least 1"),
            (&["--dns-min-ttl", "100", "--dns-max-ttl", "10"], "", "above"),
            (&["--uplink", "a/b"], "", "interface"),
        ] {
            let e = Config::merge(cli(args), file(f)).unwrap_err().to_string();
            assert!(e.contains(says), "{args:?} {f}: {e}");
        }
    }

    /// The packaged configuration, every commented key uncommented, is a valid configuration
    /// (a key misspelt there would be refused by the daemon).
    #[test]
    fn every_key_of_the_packaged_configuration_is_known() {
        let text = include_str!("../../../packaging/etc/hoodyd.toml");
        let keys: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')))
            .map(|l| format!("{}\n", l.split("  #").next().unwrap_or(l).trim_end()))
            .collect();
        assert!(keys.contains("dns_upstream") && keys.contains("firewall_shards"), "{keys}");
        let file: Config = toml::from_str(&keys).unwrap_or_else(|e| panic!("{e}\n{keys}"));
        assert!(Config::merge(cli(&[]), file).is_ok());
    }

    #[test]
    fn firewall_shards_are_a_power_of_two_up_to_the_maximum() {
        let with = |n: &str| Config::merge(cli(&["--firewall-shards", n]), Config::default());
        assert_eq!(Config::merge(cli(&[]), Config::default()).unwrap().firewall_shards, 1024);
        assert_eq!(with("16").unwrap().firewall_shards, 16);
        assert_eq!(with("1").unwrap().firewall_shards, 1);
        for bad in ["0", "3", "2048"] {
            assert!(with(bad).unwrap_err().to_string().contains("power of two"), "{bad}");
        }
    }
}
