//! What the daemon hands to its single-threaded helper (`hoodyd __start` / `hoodyd __exec-shim`) and
//! what the helper answers. Serialised as JSON over a pipe.

use std::path::PathBuf;

use hoody_snapshot::ContainerRoot;
use serde::{Deserialize, Serialize};

/// The host side of a container's private id range: container id `n` is host id `base + n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub host_base: u32,
    pub size: u32,
}

/// Network configuration applied by the helper before the container's init runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Host end of the veth pair (`hv<8 hex>`).
    pub host_ifname: String,
    /// Container address (a /32).
    pub address: std::net::Ipv4Addr,
    /// Address of the host end, the container's gateway (link-local, shared by all host ends).
    pub gateway: std::net::Ipv4Addr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartSpec {
    pub id: String,
    pub hostname: String,
    pub idmap: IdMap,
    pub root: ContainerRoot,
    /// The container's cgroup (v2) directory; the init is born in it (CLONE_INTO_CGROUP).
    pub cgroup: PathBuf,
    /// Console log: the init's stdout and stderr, kept by the container's shim.
    pub log: PathBuf,
    /// The console log is rotated when it would pass this many bytes (one rotation kept).
    pub log_max: u64,
    /// The cgroup the shim is born in (outside the container's).
    pub shim_cgroup: PathBuf,
    pub command: Vec<String>,
    pub env: Vec<String>,
    /// Where procfs is mounted on the host (normally `/proc`).
    pub proc_root: PathBuf,
    pub network: Option<NetSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecSpec {
    pub id: String,
    /// Host pid of the container's init and its start time (clock ticks since boot), which
    /// together name the process without a pid-reuse race.
    pub init_pid: i32,
    pub init_start: u64,
    pub cgroup: PathBuf,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub tty: bool,
    pub rows: u16,
    pub cols: u16,
    pub proc_root: PathBuf,
}

/// The helper's answer on stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperReply {
    Started { pid: i32, start_time: u64, shim_pid: i32 },
    Failed(HelperFailure),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HelperFailure {
    /// `exec` when the command itself could not be executed (bad input: 422), `setup` otherwise.
    pub kind: FailureKind,
    pub message: String,
    pub causes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Exec,
    Setup,
}

/// Default environment of a container's processes.
/// Sets `KEY=VALUE` in `env`, in place of any value `KEY` had.
pub fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or_default();
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix));
    env.push(kv);
}

pub fn default_env(hostname: &str) -> Vec<String> {
    vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "HOME=/root".into(),
        "container=hoody".into(),
        format!("HOSTNAME={hostname}"),
    ]
}
