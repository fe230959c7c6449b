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

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::{Elem, Expected, Op, SET_LOGRATE};
use crate::error::{NetError, Result};

/// A rule as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRule {
    pub handle: u64,
    pub comment: String,
    pub packets: u64,
    pub bytes: u64,
}

pub use crate::compile::KernelElem;

/// The table as the kernel has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDump {
    pub chains: BTreeMap<String, Vec<KernelRule>>,
    pub sets: BTreeMap<String, Vec<KernelElem>>,
}

pub trait FirewallOps: Send + Sync + 'static {
    /// Applies `ops` atomically: all of them or, if the kernel refuses one, none.
    fn apply(&self, ops: &[Op]) -> Result<()>;
    /// The whole table (every chain and every set's elements); `None` when it does not exist.
    fn dump(&self) -> Result<Option<TableDump>>;
    /// Every element of one set; `None` when the table or the set does not exist.
    fn set_elems(&self, set: &str) -> Result<Option<Vec<KernelElem>>>;
    /// The elements of `set` that hold these elements' keys (an interval set answers with the
    /// interval containing the start key), one lookup each, whatever the set's size.
    fn get_elems(&self, set: &str, probes: &[Elem]) -> Result<Vec<KernelElem>>;
}

impl TableDump {
    /// Compares with what the policy expects; the error names the first difference.
    pub fn verify(&self, x: &Expected) -> Result<()> {
        for (chain, comments) in &x.chains {
            let Some(rules) = self.chains.get(chain) else {
                return Err(NetError::Verify(format!("chain {chain} is missing")));
            };
            let got: Vec<&str> = rules.iter().map(|r| r.comment.as_str()).collect();
            if got != comments.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(NetError::Verify(format!("chain {chain} holds {got:?}, expected {comments:?}")));
            }
        }
        if let Some(extra) = self.chains.keys().find(|c| !x.chains.contains_key(*c)) {
            return Err(NetError::Verify(format!("unexpected chain {extra}")));
        }
        for (set, elems) in &x.sets {
            let Some(got) = self.sets.get(set) else {
                return Err(NetError::Verify(format!("set {set} is missing")));
            };
            if set == SET_LOGRATE || set == crate::compile::SET_ALLOW_LOGRATE {
                continue; // filled by the packet path
            }
            // Learned addresses come and go with their timeouts, beside the compiled elements.
            let got: Vec<KernelElem> = got.iter().filter(|e| !crate::compile::is_learned(set, &e.elem.key)).cloned().collect();
            verify_elems(set, &got, elems)?;
        }
        Ok(())
    }
}

/// `got` holds exactly `want` (in any order).
pub fn verify_elems(set: &str, got: &[KernelElem], want: &[Elem]) -> Result<()> {
    let g: BTreeSet<&Elem> = got.iter().map(|e| &e.elem).collect();
    let w: BTreeSet<&Elem> = want.iter().collect();
    if let Some(e) = w.difference(&g).next() {
        return Err(NetError::Verify(format!("set {set} lacks {e:?}")));
    }
    if let Some(e) = g.difference(&w).next() {
        return Err(NetError::Verify(format!("set {set} holds an unexpected {e:?}")));
    }
    if g.len() != got.len() {
        return Err(NetError::Verify(format!("set {set} holds an element twice")));
    }
    Ok(())
}
