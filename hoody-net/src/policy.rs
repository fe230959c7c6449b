//! The declarative firewall: what the table should contain.

use std::net::Ipv4Addr;

use crate::addr::Ipv4Net;
use crate::names;
use crate::rules::Rule;

/// What happens to a packet the rules do not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyAction {
    /// TCP gets a reset and UDP an ICMP port-unreachable (fail fast); the rest is dropped.
    Reject,
    Drop,
}

/// The container's egress policy, applied after its last rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EgressPolicy {
    Deny,
    Allow,
}

/// What the container's resolver answers (the gateway's DNS, policed by hoodyd).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    /// Only names one of its rules by name allows (CNAME chains followed).
    Filtered,
    /// Any name.
    Open,
    /// Nothing: DNS to the gateway is denied like any packet.
    Off,
}

impl DnsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsMode::Filtered => "filtered",
            DnsMode::Open => "open",
            DnsMode::Off => "off",
        }
    }

    /// The mode a container gets with `policy` when none is given.
    pub fn default_for(policy: EgressPolicy) -> DnsMode {
        match policy {
            EgressPolicy::Deny => DnsMode::Filtered,
            EgressPolicy::Allow => DnsMode::Open,
        }
    }
}

impl std::str::FromStr for DnsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "filtered" => Ok(DnsMode::Filtered),
            "open" => Ok(DnsMode::Open),
            "off" => Ok(DnsMode::Off),
            o => Err(format!("{o:?} is not a dns mode (filtered, open, off)")),
        }
    }
}

/// Host-wide settings of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    pub subnet: Ipv4Net,
    /// Interface through which allowed traffic leaves, masqueraded.
    pub uplink: Option<String>,
    pub deny_action: DenyAction,
    /// NFLOG group that denied egress attempts are logged to.
    pub nflog_group: u16,
    /// Denied attempts logged per second and container (burst twice that).
    pub log_rate: u32,
    /// How many shards the containers' interval regions are spread over (a power of two,
    /// 1..=[`crate::compile::MAX_SHARDS`]): a rule change costs O(the elements of one shard),
    /// a table costs two chains and a set per shard.
    pub shards: u16,
}

/// One container's part of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFirewall {
    pub id: String,
    pub ipv4: Ipv4Addr,
    pub egress_policy: EgressPolicy,
    pub dns: DnsMode,
    /// Egress rules in the order they were added.
    pub egress: Vec<Rule>,
    /// The ingress allow-list, in order.
    pub ingress: Vec<Rule>,
}

impl ContainerFirewall {
    pub fn ifname(&self) -> String {
        names::host_ifname(&self.id)
    }
}
