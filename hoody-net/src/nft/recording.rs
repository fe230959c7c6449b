//! A recording double of [`FirewallOps`]: keeps every transaction and interprets it on an
//! in-memory table with the kernel's rules (a transaction applies wholly or not at all; a rule
//! needs its chain; a referenced or non-empty chain cannot be deleted; …).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{FirewallOps, KernelRule, TableDump};
use crate::compile::{Expr, Op, Verdict};
use crate::error::{NetError, Result};

#[derive(Clone, Debug, Default)]
struct Model {
    table: Option<Table>,
}

#[derive(Clone, Debug, Default)]
struct Table {
    chains: BTreeMap<String, Vec<(u64, String, Vec<Expr>)>>,
    maps: BTreeMap<String, BTreeMap<String, String>>,
    next_handle: u64,
}

#[derive(Default)]
pub struct RecordingFirewall {
    model: Mutex<Model>,
    /// Every transaction that was submitted, applied or not.
    pub transactions: Mutex<Vec<Vec<Op>>>,
    /// When set, the next transaction is refused (as a kernel would refuse a bad batch).
    pub fail_next: AtomicBool,
}

fn refuse(why: String) -> NetError {
    NetError::Rejected { ops: 0, source: std::io::Error::other(why) }
}

fn targets(exprs: &[Expr]) -> Option<&str> {
    exprs.iter().find_map(|e| match e {
        Expr::Verdict(Verdict::Jump(c) | Verdict::Goto(c)) => Some(c.as_str()),
        _ => None,
    })
}

impl Table {
    fn apply(&mut self, op: &Op) -> std::result::Result<(), String> {
        match op {
            Op::AddTable | Op::DelTable => unreachable!("handled on the model"),
            Op::AddBaseChain { name, .. } => {
                self.chains.entry(name.to_string()).or_default();
            }
            Op::AddChain(n) => {
                self.chains.entry(n.clone()).or_default();
            }
            Op::FlushChain(n) => self.chains.get_mut(n).ok_or(format!("flush: no chain {n}"))?.clear(),
            Op::DelChain(n) => {
                let rules = self.chains.get(n).ok_or(format!("delete: no chain {n}"))?;
                if !rules.is_empty() {
                    return Err(format!("delete: chain {n} is not empty"));
                }
                let referenced = self.chains.values().flatten().any(|(_, _, e)| targets(e) == Some(n))
                    || self.maps.values().any(|m| m.values().any(|c| c == n));
                if referenced {
                    return Err(format!("delete: chain {n} is still referenced"));
                }
                self.chains.remove(n);
            }
            Op::AddMap(m) => {
                self.maps.entry(m.to_string()).or_default();
            }
            Op::AddMapElem { map, ifname, chain } => {
                if !self.chains.contains_key(chain) {
                    return Err(format!("map element jumps to missing chain {chain}"));
                }
                self.maps.get_mut(*map).ok_or(format!("no map {map}"))?.insert(ifname.clone(), chain.clone());
            }
            Op::DelMapElem { map, ifname } => {
                self.maps.get_mut(*map).ok_or(format!("no map {map}"))?.remove(ifname).ok_or(format!("no element {ifname} in {map}"))?;
            }
            Op::AddRule { chain, rule, after } => {
                if let Some(t) = targets(&rule.exprs)
                    && !self.chains.contains_key(t)
                {
                    return Err(format!("rule jumps to missing chain {t}"));
                }
                self.next_handle += 1;
                let h = self.next_handle;
                let rules = self.chains.get_mut(chain).ok_or(format!("no chain {chain}"))?;
                let pos = match after {
                    None => rules.len(),
                    Some(a) => rules.iter().position(|(hh, _, _)| hh == a).ok_or(format!("no rule with handle {a} in {chain}"))? + 1,
                };
                rules.insert(pos, (h, rule.comment.clone(), rule.exprs.clone()));
            }
            Op::ReplaceRule { chain, handle, rule } => {
                let rules = self.chains.get_mut(chain).ok_or(format!("no chain {chain}"))?;
                let r = rules.iter_mut().find(|(h, _, _)| h == handle).ok_or(format!("no rule with handle {handle}"))?;
                r.1 = rule.comment.clone();
                r.2 = rule.exprs.clone();
            }
            Op::DelRule { chain, handle } => {
                let rules = self.chains.get_mut(chain).ok_or(format!("no chain {chain}"))?;
                let pos = rules.iter().position(|(h, _, _)| h == handle).ok_or(format!("no rule with handle {handle}"))?;
                rules.remove(pos);
            }
        }
        Ok(())
    }
}

impl RecordingFirewall {
    pub fn new() -> Self {
        Self::default()
    }

    /// The expressions of every rule in `chain`, in order.
    pub fn exprs(&self, chain: &str) -> Vec<Vec<Expr>> {
        let m = self.model.lock().expect("poisoned");
        m.table.as_ref().and_then(|t| t.chains.get(chain)).map(|r| r.iter().map(|(_, _, e)| e.clone()).collect()).unwrap_or_default()
    }

    /// Number of submitted transactions.
    pub fn transaction_count(&self) -> usize {
        self.transactions.lock().expect("poisoned").len()
    }
}

impl FirewallOps for RecordingFirewall {
    fn apply(&self, ops: &[Op]) -> Result<()> {
        self.transactions.lock().expect("poisoned").push(ops.to_vec());
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(refuse("injected failure".into()));
        }
        let mut m = self.model.lock().expect("poisoned");
        let mut next = m.clone();
        for op in ops {
            match op {
                Op::AddTable => {
                    next.table.get_or_insert_with(Table::default);
                }
                Op::DelTable => {
                    next.table.take().ok_or_else(|| refuse("delete: no table".into()))?;
                }
                other => next.table.as_mut().ok_or_else(|| refuse("no table".into()))?.apply(other).map_err(refuse)?,
            }
        }
        *m = next;
        Ok(())
    }

    fn dump(&self) -> Result<Option<TableDump>> {
        let m = self.model.lock().expect("poisoned");
        Ok(m.table.as_ref().map(|t| TableDump {
            chains: t
                .chains
                .iter()
                .map(|(n, r)| {
                    (n.clone(), r.iter().map(|(h, c, _)| KernelRule { handle: *h, comment: c.clone(), packets: 0, bytes: 0 }).collect())
                })
                .collect(),
            maps: t.maps.clone(),
        }))
    }

    fn chain(&self, name: &str) -> Result<Vec<KernelRule>> {
        Ok(self.dump()?.and_then(|mut d| d.chains.remove(name)).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{self, expected, full, install, uninstall};
    use crate::policy::*;

    fn cfg() -> TableConfig {
        TableConfig { subnet: "10.77.0.0/16".parse().unwrap(), uplink: None, deny_action: DenyAction::Reject, nflog_group: 1, log_rate: 10 }
    }

    fn ctr(id: &str, n: u8) -> ContainerFirewall {
        ContainerFirewall {
            id: id.into(),
            ipv4: std::net::Ipv4Addr::new(10, 77, 0, n),
            egress_policy: EgressPolicy::Deny,
            egress: vec![],
            ingress: vec![],
        }
    }

    #[test]
    fn full_then_install_then_uninstall_verifies() {
        let fw = RecordingFirewall::new();
        let (a, b) = (ctr(&"a".repeat(24), 1), ctr(&"b".repeat(24), 2));
        fw.apply(&full(&cfg(), std::slice::from_ref(&a))).unwrap();
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), std::slice::from_ref(&a)), None).unwrap();
        fw.apply(&install(&cfg(), &b)).unwrap();
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), &[a.clone(), b.clone()]), None).unwrap();
        fw.apply(&uninstall(&a.id)).unwrap();
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), std::slice::from_ref(&b)), None).unwrap();
        // A second full rebuild replaces everything in one transaction.
        fw.apply(&full(&cfg(), &[])).unwrap();
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), &[]), None).unwrap();
    }

    #[test]
    fn a_refused_transaction_changes_nothing() {
        let fw = RecordingFirewall::new();
        let a = ctr(&"a".repeat(24), 1);
        fw.apply(&full(&cfg(), std::slice::from_ref(&a))).unwrap();
        let before = fw.dump().unwrap();
        // Deleting a chain still referenced by the map is refused, with the rest of the batch.
        let bad = vec![Op::AddChain("x".into()), Op::DelChain(crate::names::egress_chain(&a.id))];
        assert!(fw.apply(&bad).is_err());
        assert_eq!(fw.dump().unwrap(), before);
        fw.fail_next.store(true, Ordering::SeqCst);
        assert!(fw.apply(&install(&cfg(), &ctr(&"b".repeat(24), 2))).is_err());
        assert_eq!(fw.dump().unwrap(), before);
    }

    #[test]
    fn verify_notices_tampering() {
        let fw = RecordingFirewall::new();
        let a = ctr(&"a".repeat(24), 1);
        fw.apply(&full(&cfg(), std::slice::from_ref(&a))).unwrap();
        let chain = crate::names::egress_chain(&a.id);
        let policy = fw.chain(&chain).unwrap().last().unwrap().handle;
        fw.apply(&[Op::DelRule { chain: chain.clone(), handle: policy }]).unwrap();
        let err = fw.dump().unwrap().unwrap().verify(&expected(&cfg(), &[a]), None).unwrap_err();
        assert!(err.to_string().contains(&chain), "{err}");
        let _ = compile::TABLE;
    }
}
