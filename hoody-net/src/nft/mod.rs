//! The nftables seam: [`FirewallOps`] applies a list of operations as one transaction and reads
//! the table back. [`kernel::NftFirewall`] talks to the kernel over netlink (nftnl);
//! [`recording::RecordingFirewall`] interprets the operations on a model, so the daemon's
//! firewall logic is tested without root.

pub mod encode;
pub mod kernel;
pub mod monitor;
mod parse;
pub mod recording;
mod sys;

use std::collections::BTreeMap;

use crate::compile::{Expected, Op};
use crate::error::{NetError, Result};

/// A rule as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRule {
    pub handle: u64,
    pub comment: String,
    pub packets: u64,
    pub bytes: u64,
}

/// The table as the kernel has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDump {
    pub chains: BTreeMap<String, Vec<KernelRule>>,
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
}

pub trait FirewallOps: Send + Sync + 'static {
    /// Applies `ops` atomically: all of them or, if the kernel refuses one, none.
    fn apply(&self, ops: &[Op]) -> Result<()>;
    /// The whole table; `None` when it does not exist.
    fn dump(&self) -> Result<Option<TableDump>>;
    /// The rules of one chain, in order (empty when the chain does not exist).
    fn chain(&self, name: &str) -> Result<Vec<KernelRule>>;
}

impl TableDump {
    /// Compares with what the policy expects; the error names the first difference.
    pub fn verify(&self, x: &Expected, only: Option<&[String]>) -> Result<()> {
        let wanted = |n: &String| only.is_none_or(|o| o.contains(n));
        for (chain, comments) in x.chains.iter().filter(|(n, _)| wanted(n)) {
            let got: Vec<&str> = self.chains.get(chain).map(|r| r.iter().map(|r| r.comment.as_str()).collect()).unwrap_or_default();
            if !self.chains.contains_key(chain) {
                return Err(NetError::Verify(format!("chain {chain} is missing")));
            }
            if got != comments.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(NetError::Verify(format!("chain {chain} holds {got:?}, expected {comments:?}")));
            }
        }
        if only.is_none()
            && let Some(extra) = self.chains.keys().find(|c| !x.chains.contains_key(*c))
        {
            return Err(NetError::Verify(format!("unexpected chain {extra}")));
        }
        for (map, elems) in &x.maps {
            let got = self.maps.get(map).ok_or_else(|| NetError::Verify(format!("map {map} is missing")))?;
            for (ifname, chain) in elems.iter().filter(|(_, c)| wanted(c)) {
                if got.get(ifname) != Some(chain) {
                    return Err(NetError::Verify(format!("map {map}: {ifname} → {:?}, expected {chain}", got.get(ifname))));
                }
            }
            if only.is_none() && got.len() != elems.len() {
                return Err(NetError::Verify(format!("map {map} has {} entries, expected {}", got.len(), elems.len())));
            }
        }
        Ok(())
    }
}
